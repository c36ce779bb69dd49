// moeforge sample -w WS --run NAME [--tags "blonde_hair blue_eyes smile"] [--n 16] [--seed S]
//                 [--interpolate-to SEED2] [--by GROUP] -o OUT.png
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/options.h"
#include "trainer/trainer.h"

namespace moeforge::cli {

Command AddSampleCommand(CLI::App& root) {
  auto* app = root.add_subcommand("sample", "Generate faces with chosen tags from a trained run");
  auto ws = std::make_shared<std::string>();
  auto o = std::make_shared<trainer::SampleOptions>();
  app->add_option("-w,--workspace", *ws, "Workspace folder")->required();
  SampleOptionTable(o.get()).AddFlags(app);
  return {app, [ws, o]() -> int {
            auto p = trainer::Sample(Workspace(*ws), *o);
            if (!p.ok()) return Fail("sample", p.status());
            std::printf("%s\n", p->c_str());
            return 0;
          }};
}

}  // namespace moeforge::cli
