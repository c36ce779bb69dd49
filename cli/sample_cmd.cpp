// moeforge sample -w WS --run NAME [--tags "blonde_hair blue_eyes smile"] [--n 16] [--seed S]
//                 [--interpolate-to SEED2] [--by GROUP] [--truncation PSI] [--snapshot STEP] [--raw] -o OUT.png
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "trainer/trainer.h"

namespace moeforge::cli {

Command AddSampleCommand(CLI::App& root) {
  auto* app = root.add_subcommand("sample", "Generate faces with chosen tags from a trained run");
  auto ws = std::make_shared<std::string>();
  auto o = std::make_shared<trainer::SampleOptions>();
  app->add_option("-w,--workspace", *ws, "Workspace folder")->required();
  app->add_option("--run", o->run, "Run name")->required();
  app->add_option("--tags", o->tags,
                  "Tags to draw (schema names); exclusive groups not named are drawn from the data, "
                  "binary tags not named are off")
      ->capture_default_str();
  app->add_option("--n", o->n, "Number of images")->capture_default_str();
  app->add_option("--seed", o->seed, "Noise seed")->capture_default_str();
  app->add_option("--interpolate-to", o->interpolate_to_seed,
                  "Second seed: n frames from --seed's noise to this one's, same tags (-1: off)")
      ->capture_default_str();
  app->add_option("--columns", o->columns, "Grid columns (0: about sqrt(n); a row for interpolation)")
      ->capture_default_str();
  app->add_option("--by", o->by,
                  "Exclusive group (e.g. hair_color): one labelled row per tag of it, --n images per row, "
                  "the same noise down each column")
      ->capture_default_str();
  app->add_option("--scale", o->scale, "Enlarge every image this many times (bicubic), for viewing")
      ->capture_default_str();
  app->add_option("--truncation", o->truncation,
                  "Truncation psi: noise scaled towards its mean (1: off; 0: one face per set of tags)")
      ->capture_default_str();
  app->add_option("--snapshot", o->snapshot, "Sample the snapshot of this step (-1: the checkpoint)")
      ->capture_default_str();
  app->add_flag("--raw", o->raw, "The raw generator instead of its moving average");
  app->add_option("--threads", o->threads, "CPU threads (0: all cores)")->capture_default_str();
  app->add_option("-o,--out", o->out, "Output PNG")->required();
  return {app, [ws, o]() -> int {
            auto p = trainer::Sample(Workspace(*ws), *o);
            if (!p.ok()) return Fail("sample", p.status());
            std::printf("%s\n", p->c_str());
            return 0;
          }};
}

}  // namespace moeforge::cli
