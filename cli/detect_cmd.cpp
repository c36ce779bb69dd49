// moeforge detect -w WS [--detector cascade|haar|yunet|yolo|whole|a+b] [--model NAME_OR_PATH]
//                 [--crop-size 128] [--margin M] ...
#include <memory>

#include "cli/command.h"
#include "cli/options.h"
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
            return 0;
          }};
}

}  // namespace moeforge::cli
