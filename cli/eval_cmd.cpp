// moeforge eval -w WS --run NAME [--json]: label fidelity, Frechet distance and
// precision/recall in the tagger's feature space.
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/options.h"
#include "trainer/trainer.h"

namespace moeforge::cli {

namespace {

// One line per scored generator, the best marked, then a summary line.
void PrintSnapshotTable(const nlohmann::json& r) {
  std::printf("%-9s %8s %8s %7s %7s %9s %7s\n", "generator", "step", "FD", "hair", "eyes", "precision", "recall");
  const auto& best = r["best"];
  for (const auto& e : r["scored"]) {
    const bool is_best = e["step"] == best["step"] && e["generator"] == best["generator"];
    std::printf("%-9s %8lld %8.1f %6.1f%% %6.1f%% %9.3f %7.3f%s\n", e["generator"].get<std::string>().c_str(),
                static_cast<long long>(e["step"].get<int64_t>()), e["frechet_distance"].get<double>(),
                100 * e["label_fidelity"].value("hair_color", 0.0), 100 * e["label_fidelity"].value("eye_color", 0.0),
                e["precision_k3"].get<double>(), e["recall_k3"].get<double>(), is_best ? "  <- best" : "");
  }
  std::printf("eval: %zu generators of run %s scored (%d now); best: %s %lld, FD %.1f\n", r["scored"].size(),
              r["run"].get<std::string>().c_str(), r["scored_now"].get<int>(),
              best["generator"].get<std::string>().c_str(), static_cast<long long>(best["step"].get<int64_t>()),
              best["frechet_distance"].get<double>());
}

}  // namespace

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
  app->add_option("--snapshot", o->snapshot,
                  "Evaluate the snapshot of this step (-1: the checkpoint; best: the lowest FD --all-snapshots "
                  "recorded)")
      ->capture_default_str()
      ->transform(BestSnapshotWord());
  auto all = std::make_shared<bool>(false);
  app->add_flag("--all-snapshots", *all,
                "Score every kept snapshot and the checkpoint alike, record each in runs/<run>/snapshot-metrics.json "
                "(a rerun scores only what is new), and name the best (lowest FD)");
  app->add_flag("--raw", o->raw, "The raw generator instead of its moving average");
  app->add_option("--threads", o->threads, "CPU threads (0: all cores)")->capture_default_str();
  app->add_flag("--json", *json, "Print the result as one JSON object");
  return {app, [ws, o, json, all]() -> int {
            auto r = *all ? trainer::EvalSnapshots(Workspace(*ws), *o) : trainer::Eval(Workspace(*ws), *o);
            if (!r.ok()) return Fail("eval", r.status());
            if (*all && !*json) {
              PrintSnapshotTable(*r);
            } else if (*json) {
              std::printf("%s\n", r->dump().c_str());
            } else {
              std::printf("%s\n", r->dump(2).c_str());
            }
            return 0;
          }};
}

}  // namespace moeforge::cli
