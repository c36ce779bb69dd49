// The train, sample and eval stages (DESIGN.md, "Trainer"): a DRAGAN with an ACGAN tag
// head, trained on a dataset view's face crops and one tagger's tag vectors.
//
// A run lives in WS/runs/<name>/: config.json (everything needed to rebuild the models),
// checkpoint.pt (models, optimizers, step, RNG, data order; replaced atomically),
// samples/step_<N>.png (a grid at fixed noise, one fixed tag row per grid row) and
// data_<res>.u8 (the packed uint8 image cache). The database holds a `runs` row and
// per-step `metrics`. Torch types stay out of this header: the CLI includes it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "core/workspace.h"
#include "db/stage_run.h"
#include "trainer/snapshot_metrics.h"

namespace moeforge::trainer {

struct TrainOptions {
  std::string view;            // "" = all faces
  std::string run = "run";     // the run's name: WS/runs/<run>/
  std::string tagger;          // "" = the newest tagger
  int resolution = 64;         // 32, 64 or 128: 1, 2 or 3 upsampling blocks after 16x16
  int64_t steps = 10000;       // total steps (a resumed run continues up to this)
  double minutes = 0;          // > 0: also stop (checkpoint, grid) after this much wall time
  double cpu_minutes = 0;      // > 0: also stop after this much CPU time of the process (all threads)
  int batch = 64;
  int threads = 0;             // 0 = all cores
  bool resume = false;         // continue WS/runs/<run>/checkpoint.pt
  // Data-parallel ranks (c10d; docs/scaling.md). > 1: --batch is per rank, the global
  // batch nproc x batch; every rank takes its own rows of each global batch. Recorded in
  // config.json: a run resumes with the same number of ranks only.
  int nproc = 1;
  int dist_timeout = 300;      // seconds a collective waits for the other ranks before failing
  // Model size. The report's G: 64 channels, 16 residual blocks; D: 32 channels at the
  // first stage, 2 residual blocks per stage.
  int z_dim = 128;
  int g_channels = 64;
  int g_blocks = 16;
  int d_channels = 32;
  int d_blocks = 2;
  // The defaults below were chosen by measurement (docs/runs/README.md, "Session 8"); runs
  // made before an option existed resume with the report's choice (shuffle, conv, none).
  std::string upsample = "nearest";  // G: shuffle (sub-pixel conv) | nearest (resize-conv)
  std::string d_down = "pool";       // D: conv (4x4 stride 2) | pool (2x2 average, 3x3 conv)
  int d_mbstd = 0;                   // D's minibatch-stddev group size (0: off)
  std::string output_template = "tags";  // none | mean | tags: G's output starts at the (tags') mean face
  // Optimisation (the report's Adam settings).
  double lr = 2e-4;            // G's learning rate (and D's unless lr_d is set)
  double lr_d = 0;             // > 0: D's learning rate
  double beta1 = 0.5;
  double beta2 = 0.999;
  // Weight of the real/fake term; the report's l_adv = T (< 0 here) let the tag terms
  // count for 1/T of D's loss and the generator ignored its tags (issue 14); with 1 the
  // tags are learned within a few hundred steps (docs/runs/README.md).
  double l_adv = 1;
  double l_gp = 0.5;
  int gp_every = 1;            // the penalty on every Nth step only, weighted N times (lazy)
  // The few-step recipe (docs/runs/README.md, "Recipe"). Each is recorded in config.json.
  double ema_kimg = 10;        // half-life of G's moving average in thousands of images; 0: none
  double ema_rampup = 0;       // > 0: the half-life is at most this share of the images seen so far
  bool icnr = true;            // ICNR initialisation of the sub-pixel convolutions
  std::string augment = "translation,cutout";  // what D sees: color,translation,cutout | none
  int checkpoint_every = 500;
  int sample_every = 500;
  int snapshot_every = 500;    // a snapshot of the sampling generator every K steps
  int keep_snapshots = 10;     // the newest N snapshots are kept; 0: none written
  uint64_t seed = 1;
  bool deterministic = false;  // deterministic algorithms (resume reproduces bit for bit)
  std::string memory_format = "auto";  // auto|contiguous|channels_last
  // CPU bf16 autocast; on by default where the CPU has native bf16 (AVX512-BF16 or AMX),
  // where it measured 1.4-1.9x faster than fp32 with the same losses (see bench/).
  bool bf16 = true;
  bool json = false;
};

// `moeforge train --nproc N` on one machine: starts N ranks of this same command line
// (/proc/self/exe, /proc/self/cmdline) with RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR=127.0.0.1 and a free MASTER_PORT (or the one in the environment) and waits.
// When a rank fails, the others get `grace` to end on their own (they do at once when it
// died: their collectives fail), then SIGTERM, then SIGKILL. The error names each rank
// that failed and how. SIGINT/SIGTERM to the launcher are passed on to the ranks.
Status LaunchLocalRanks(int nproc, std::chrono::seconds grace);
// True in a process started as one rank of several (WORLD_SIZE > 1 in the environment).
bool IsRankOfMany();
// This process's RANK (0 without one).
int RankFromEnvironment();

// Trains (or resumes) a run to o.steps. The summary's done is the number of steps run
// in this invocation; extra carries images/s and the last losses.
Result<db::StageSummary> Train(const Workspace& ws, const TrainOptions& o);

struct SampleOptions {
  std::string run;
  std::string tags;                // "blonde_hair blue_eyes smile"; unnamed groups drawn from the data
  int n = 16;
  uint64_t seed = 0;
  std::string out;                 // PNG path (a grid of n images)
  int64_t interpolate_to_seed = -1;  // >= 0: n frames from seed's noise to this seed's, same tags
  int columns = 0;                 // 0 = about sqrt(n)
  // An exclusive group ("hair_color"): one labelled row per tag of it the data has, n
  // images per row, the same noise down each column (what the conditioning changes).
  std::string by;
  double truncation = 1.0;         // psi: z <- psi * z (the mean of z is 0); 0 = one face per tag set
  int scale = 1;                   // enlarge each image this many times (bicubic), labels too
  int64_t snapshot = -1;           // >= 0: sample that step's snapshot instead of the checkpoint;
                                   // kBestSnapshot: the best one EvalSnapshots scored
  bool raw = false;                // the raw generator instead of its moving average
  int threads = 0;
};

// Writes a grid PNG of generated faces; returns its path.
Result<std::string> Sample(const Workspace& ws, const SampleOptions& o);

// A run's generator read once and sampled many times (`moeforge serve`): Sample(o) draws
// the images trainer::Sample(ws, o) would, without re-reading the checkpoint. One call at
// a time.
class LoadedSampler {
 public:
  // Reads the weights that o.run, o.snapshot and o.raw name, as trainer::Sample does.
  static Result<std::unique_ptr<LoadedSampler>> Load(const Workspace& ws, const SampleOptions& o);
  ~LoadedSampler();
  // Like trainer::Sample; o.run, o.snapshot and o.raw are the loaded ones, not read again.
  Result<std::string> Sample(const SampleOptions& o);

 private:
  struct Impl;
  explicit LoadedSampler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct EvalOptions {
  std::string run;
  std::string tagger_model;   // path of a builtin tagger model; "" = the run's tagger
  int n = 512;                // generated images
  int max_real = 2000;        // real faces for Fréchet distance and precision/recall
  uint64_t seed = 7;
  int64_t snapshot = -1;      // >= 0: evaluate that step's snapshot; kBestSnapshot: the best scored
  bool raw = false;           // the raw generator instead of its moving average
  int threads = 0;
};

// Label fidelity per group, Fréchet distance and precision/recall (k=3) in the tagger's
// feature space. Returns the JSON the CLI prints.
Result<nlohmann::json> Eval(const Workspace& ws, const EvalOptions& o);

// Eval of every kept snapshot and of the checkpoint's sampling generator, each against
// the same noise, tags and real faces, recorded in WS/runs/<run>/snapshot-metrics.json as
// each is scored (a rerun with the same options scores only what is new). Returns
// {"run", "scored": [per generator, by step], "scored_now", "best": the lowest FD}.
Result<nlohmann::json> EvalSnapshots(const Workspace& ws, const EvalOptions& o);

}  // namespace moeforge::trainer
