// moeforge train -w WS [--view NAME] [--run NAME] [--resolution 32|64|128] [--steps N]
//                [--batch B] [--threads T] [--resume] [--nproc N] ...
#include <chrono>
#include <memory>
#include <string>

#include "cli/command.h"
#include "cli/options.h"
#include "trainer/trainer.h"

namespace moeforge::cli {

Command AddTrainCommand(CLI::App& root) {
  auto* app = root.add_subcommand("train", "Train the conditional DRAGAN on a dataset view's faces and tags");
  auto ws = std::make_shared<std::string>();
  auto o = std::make_shared<trainer::TrainOptions>();
  app->add_option("-w,--workspace", *ws, "Workspace folder")->required();
  TrainOptionTable(o.get()).AddFlags(app);
  app->add_flag("--json", o->json, "Print the summary as one JSON object");
  return {app, [ws, o]() -> int {
            // --nproc N here (not under a launcher): start N ranks of this same command.
            if (o->nproc > 1 && !trainer::IsRankOfMany()) {
              Status s = trainer::LaunchLocalRanks(o->nproc, std::chrono::seconds(o->dist_timeout));
              if (!s.ok()) return Fail("train", s);
              return 0;
            }
            auto s = trainer::Train(Workspace(*ws), *o);
            if (!s.ok()) return Fail("train", s.status());
            if (trainer::RankFromEnvironment() == 0) db::PrintSummary(*s, o->json);  // rank 0 speaks for the run
            return 0;
          }};
}

}  // namespace moeforge::cli
