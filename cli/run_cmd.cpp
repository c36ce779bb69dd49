// moeforge run CONFIG.toml [--set KEY=VALUE ...]: crawl -> detect -> tag -> train -> sample.
#include <cstdio>

#include "cli/command.h"
#include "cli/pipeline.h"

namespace moeforge::cli {

Command AddRunCommand(CLI::App& root) {
  auto* app = root.add_subcommand("run", "Run crawl -> detect -> tag -> train -> sample from one TOML config "
                                         "(see docs/run-example.toml)");
  struct Opts {
    std::string config;
    std::vector<std::string> overrides;
    std::string from, until;
  };
  auto o = std::make_shared<Opts>();
  app->add_option("CONFIG", o->config, "TOML config file")->required();
  app->add_option("--set", o->overrides, "Override a config key, e.g. --set train.steps=200 (repeatable)");
  app->add_option("--from", o->from, "Start at this stage (crawl detect tag_train tag view train sample)");
  app->add_option("--until", o->until, "Stop after this stage");
  return {app, [o]() -> int {
            auto cfg = Config::Load(o->config);
            if (!cfg.ok()) return Fail("run", cfg.status());
            for (const auto& ov : o->overrides) {
              Status s = cfg->ApplyOverride(ov);
              if (!s.ok()) return Fail("run", s);
            }
            PipelineConfig p;
            Status s = BindPipelineConfig(*cfg, &p);
            if (!s.ok()) return Fail("run", s);
            p.from = o->from;
            p.until = o->until;
            auto out = RunPipeline(p);
            if (!out.ok()) return Fail("run", out.status());
            if (!out->empty()) std::printf("run: done; sample grid at %s\n", out->c_str());
            return 0;
          }};
}

}  // namespace moeforge::cli
