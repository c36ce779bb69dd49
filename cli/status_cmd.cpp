// moeforge status -w WS [--json]: per-stage counts.
#include <cstdio>

#include "cli/command.h"
#include "db/db.h"
#include "db/status.h"

namespace moeforge::cli {

Command AddStatusCommand(CLI::App& root) {
  auto* app = root.add_subcommand("status", "Per-stage counts: posts, images, faces, tagged, runs");
  struct Opts {
    std::string ws;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  app->add_option("-w,--workspace", o->ws, "Workspace folder")->required();
  app->add_flag("--json", o->json, "Print one JSON object");
  return {app, [o]() -> int {
            auto db = db::OpenWorkspace(Workspace(o->ws));
            if (!db.ok()) return Fail("status", db.status());
            auto st = db::WorkspaceStatus(**db);
            if (!st.ok()) return Fail("status", st.status());
            std::printf("%s\n", o->json ? st->dump().c_str() : db::FormatStatus(*st).c_str());
            return 0;
          }};
}

}  // namespace moeforge::cli
