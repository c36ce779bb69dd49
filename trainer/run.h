// One run's files (private to trainer/): its config, its atomic checkpoint and its
// sample grids. Shared by train, sample, eval and the tests.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/status.h"
#include "core/tag_schema.h"
#include "core/workspace.h"
#include "trainer/data_cache.h"
#include "trainer/gan.h"

namespace moeforge::trainer {

// What config.json holds: everything needed to rebuild the models and draw tags.
struct RunConfig {
  GanConfig gan;
  TagSchema schema;
  std::vector<double> tag_freq;  // per tag, in the training data
  nlohmann::json options;        // the TrainOptions the run was started with
  nlohmann::json ToJson() const;
  static Result<RunConfig> FromJson(const nlohmann::json& j);
};

std::string RunDir(const Workspace& ws, const std::string& run);
std::string CheckpointPath(const Workspace& ws, const std::string& run);
// The training grid at `step`: WS/runs/<run>/samples/step_<6-digit step>.png (the studio's
// catalog, which stays free of torch, spells the same name).
std::string SamplePath(const Workspace& ws, const std::string& run, int64_t step);
Status SaveRunConfig(const Workspace& ws, const std::string& run, const RunConfig& c);
Result<RunConfig> LoadRunConfig(const Workspace& ws, const std::string& run);

// The state the training loop resumes from.
struct TrainState {
  int64_t step = 0;                // steps done
  std::string data_rng;            // std::mt19937_64 state (flips, fake tags), as text
  torch::Tensor torch_rng;         // CPU generator state (noise, perturbation, alpha)
  std::vector<int64_t> order;      // the current epoch's permutation of the cache
  int64_t epoch = 0;
  int64_t position = 0;            // next index into order
};

// Writes models, optimizers and state to `path` atomically (tmp, fsync, rename).
// g_ema may be null (a run without the moving average).
Status SaveCheckpoint(const std::string& path, Generator& g, Generator* g_ema, Discriminator& d,
                      torch::optim::Adam& opt_g, torch::optim::Adam& opt_d, const TrainState& st);
// Reads what SaveCheckpoint wrote; g_ema, optimizers and state may be null (sampling).
// A checkpoint without a moving average fills g_ema with G. Tensors land on `device`
// (the models' and optimizers' device); RNG state and data order stay on the CPU.
Status LoadCheckpoint(const std::string& path, Generator& g, Generator* g_ema, Discriminator& d,
                      torch::optim::Adam* opt_g, torch::optim::Adam* opt_d, TrainState* st,
                      torch::Device device = torch::kCPU);

// Snapshots: the sampling generator (the moving average where the run keeps one) every
// K steps, WS/runs/<run>/snapshots/g_<step>.pt, the newest `keep` kept.
std::string SnapshotPath(const Workspace& ws, const std::string& run, int64_t step);
Status SaveSnapshot(const std::string& path, Generator& g);
// Deletes all but the newest `keep` snapshots of a run.
Status PruneSnapshots(const Workspace& ws, const std::string& run, int keep);
// The steps of a run's snapshots, oldest first.
std::vector<int64_t> ListSnapshots(const Workspace& ws, const std::string& run);

// Which generator sampling, eval and serve use.
struct GeneratorChoice {
  int64_t snapshot = -1;  // >= 0: that step's snapshot; -1: the checkpoint; kBestSnapshot:
                          // the one of lowest FD that EvalSnapshots recorded
  bool raw = false;       // the checkpoint's raw G instead of its moving average
};
// Rebuilds a run's generator (eval mode) from config.json and the checkpoint (or a
// snapshot).
Result<Generator> LoadGenerator(const Workspace& ws, const std::string& run, RunConfig* config,
                                const GeneratorChoice& choice = {});

// The fixed tag rows of the training-time sample grids: one row per tag of the first
// exclusive group that the data has (most frequent first, at most `rows`), cycling through the second
// exclusive group's tags likewise; binary tags off. Labels name each row's tags.
torch::Tensor FixedTagRows(const TagSchema& schema, const std::vector<double>& freq, int rows,
                           std::vector<std::string>* labels);

// Writes N x 3 x R x R images in [-1, 1] as a PNG grid of `cols` columns, with a label
// strip on the left when `row_labels` is not empty; `scale` > 1 enlarges every image
// (bicubic) and the labels with it, for viewing.
Status WriteGrid(const torch::Tensor& images, int cols, const std::vector<std::string>& row_labels,
                 const std::string& path, int scale = 1);

}  // namespace moeforge::trainer
