// moeforge detect -w WS [--detector cascade|haar|yunet|yolo|whole|a+b] [--model NAME_OR_PATH]
//                 [--crop-size 128] [--margin M] ...
#include <memory>

#include "cli/command.h"
#include "cli/options.h"
#include "core/workspace.h"
#include "db/db.h"
#include "detector/detector.h"

namespace moeforge::cli {

Command AddDetectCommand(CLI::App& root) {
  auto* app = root.add_subcommand("detect", "Find and crop anime faces in the workspace's images");
  auto ws = std::make_shared<std::string>();
  auto o = std::make_shared<detector::DetectOptions>();
  app->add_option("-w,--workspace", *ws, "Workspace folder")->required();
  DetectOptionTable(o.get()).AddFlags(app);
  app->add_flag("--json", o->json, "Print the summary as one JSON object");
  return {app, [ws, o]() -> int {
            Status v = detector::ValidateOptions(*o);
            if (!v.ok()) return Fail("detect", v);
            auto s = detector::Detect(Workspace(*ws), *o);
            if (!s.ok()) return Fail("detect", s.status());
            db::PrintSummary(*s, o->json);
            // A stored image whose file is gone, or a crop that could not be written, is
            // a fault of the workspace: say which files, and exit non-zero so that scripts
            // notice. The next run asks for those images again.
            int64_t faults = 0;
            for (const char* kind : {"missing_blob", "crop_write_error"})
              if (auto it = s->failures.find(kind); it != s->failures.end()) faults += it->second;
            if (faults > 0) {
              std::string files;
              if (auto db = db::OpenWorkspace(Workspace(*ws)); db.ok()) {
                auto st = (*db)->Prepare(
                    "SELECT error FROM detections_done WHERE state = 'failed' AND (error LIKE 'missing_blob%' OR "
                    "error LIKE 'crop_write_error%') LIMIT 3");
                while (st.ok()) {
                  auto row = st->Step();
                  if (!row.ok() || !*row) break;
                  files += "\n  " + st->Text(0);
                }
              }
              return Fail("detect", Status::IoError(std::to_string(faults) +
                                                    " image(s) failed for a fault of the workspace (a missing blob, "
                                                    "a crop that could not be written):" + files +
                                                    "\nClear the fault (restore the files, free space) and run "
                                                    "detect again: those images are asked for on every run."));
            }
            return 0;
          }};
}

}  // namespace moeforge::cli
