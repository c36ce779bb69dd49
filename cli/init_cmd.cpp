// moeforge init WS: create a workspace (moeforge.db at the current schema, blobs/ ...).
#include <cstdio>

#include "cli/command.h"
#include "db/db.h"

namespace moeforge::cli {

Command AddInitCommand(CLI::App& root) {
  auto* app = root.add_subcommand("init", "Create a workspace (moeforge.db, blobs/, crops/, runs/)");
  auto ws = std::make_shared<std::string>();
  app->add_option("WS", *ws, "Workspace folder to create (an existing one is migrated, not wiped)")->required();
  return {app, [ws]() -> int {
            Workspace w(*ws);
            auto db = db::OpenWorkspace(w, /*create=*/true);
            if (!db.ok()) return Fail("init", db.status());
            std::printf("workspace %s ready (schema version %d)\n", w.root().c_str(), db::CurrentSchemaVersion());
            return 0;
          }};
}

}  // namespace moeforge::cli
