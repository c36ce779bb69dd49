// moeforge eval -w WS --run NAME [--json]: label fidelity, Frechet distance and
// precision/recall in the tagger's feature space.
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "trainer/trainer.h"

namespace moeforge::cli {

Command AddEvalCommand(CLI::App& root) {
  auto* app = root.add_subcommand("eval", "Evaluate a run with the tagger: label fidelity, FD, precision/recall");
  auto ws = std::make_shared<std::string>();
  auto o = std::make_shared<trainer::EvalOptions>();
  auto json = std::make_shared<bool>(false);
  app->add_option("-w,--workspace", *ws, "Workspace folder")->required();
  app->add_option("--run", o->run, "Run name")->required();
  app->add_option("--tagger-model", o->tagger_model, "Built-in tagger model file (\"\": the run's tagger)")
      ->capture_default_str();
  app->add_option("--n", o->n, "Generated images to score")->capture_default_str();
  app->add_option("--max-real", o->max_real, "Real faces for FD and precision/recall")->capture_default_str();
  app->add_option("--seed", o->seed, "Seed for noise and tags")->capture_default_str();
  app->add_option("--snapshot", o->snapshot, "Evaluate the snapshot of this step (-1: the checkpoint)")
      ->capture_default_str();
  app->add_flag("--raw", o->raw, "The raw generator instead of its moving average");
  app->add_option("--threads", o->threads, "CPU threads (0: all cores)")->capture_default_str();
  app->add_flag("--json", *json, "Print the result as one JSON object");
  return {app, [ws, o, json]() -> int {
            auto r = trainer::Eval(Workspace(*ws), *o);
            if (!r.ok()) return Fail("eval", r.status());
            if (*json) {
              std::printf("%s\n", r->dump().c_str());
            } else {
              std::printf("%s\n", r->dump(2).c_str());
            }
            return 0;
          }};
}

}  // namespace moeforge::cli
