// moeforge merge WS_OUT WS_IN... [--copy]: fold workspaces (shards) into one (db/merge.h).
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "db/merge.h"

namespace moeforge::cli {

Command AddMergeCommand(CLI::App& root) {
  auto* app = root.add_subcommand(
      "merge", "Fold workspaces (e.g. --shard parts) into one, without duplicates; resumable after a kill");
  struct Opts {
    std::string out;
    std::vector<std::string> ins;
    db::MergeOptions m;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  app->add_option("WS_OUT", o->out, "The workspace to merge into (created when missing)")->required();
  app->add_option("WS_IN", o->ins, "Workspaces to merge, in order (what is merged first wins)")->required();
  app->add_flag("--copy", o->m.copy, "Copy blobs and crops instead of hard-linking them");
  app->add_flag("--json", o->json, "Print the summary as one JSON object");
  return {app, [o]() -> int {
            std::vector<Workspace> ins;
            for (const auto& p : o->ins) ins.emplace_back(p);
            auto s = db::MergeWorkspaces(Workspace(o->out), ins, o->m);
            if (!s.ok()) return Fail("merge", s.status());
            db::PrintSummary(*s, o->json);
            return 0;
          }};
}

}  // namespace moeforge::cli
