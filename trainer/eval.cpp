// `moeforge eval`: how well a run draws what it is asked for, and how close its faces
// are to the real ones, both judged in the built-in tagger's eyes (no Inception weights).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <thread>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "core/models.h"
#include "db/db.h"
#include "tagger/tagger.h"
#include "trainer/data_cache.h"
#include "trainer/eval_metrics.h"
#include "trainer/run.h"
#include "trainer/snapshot_metrics.h"
#include "trainer/trainer.h"

namespace moeforge::trainer {

namespace {

// The run's tagger ("builtin:<stem>") as a model file: WS/models/<stem>.pt or the model
// search path.
Result<std::string> FindTaggerModel(const Workspace& ws, const std::string& tagger_name) {
  const std::string prefix = "builtin:";
  if (tagger_name.rfind(prefix, 0) != 0)
    return Status::InvalidArgument("eval needs a built-in tagger; the run was tagged by '" + tagger_name +
                                   "': pass --tagger-model PATH");
  std::string stem = tagger_name.substr(prefix.size());
  for (const std::string& p : {ws.models_dir() + "/" + stem + ".pt", ws.models_dir() + "/" + stem})
    if (std::filesystem::exists(p)) return p;
  auto r = ResolveModel(stem + ".pt");
  if (r.ok()) return r;
  r = ResolveModel(stem);
  if (r.ok()) return r;
  return Status::NotFound("the run's tagger model '" + stem + "' is not in " + ws.models_dir() +
                          " nor on MOEFORGE_MODEL_PATH: pass --tagger-model PATH");
}

// The judge's probabilities (n x T) and features (n x F) of N x 3 x R x R images.
void Judge(tagger::FaceJudge& judge, const torch::Tensor& images, torch::Tensor* probs, torch::Tensor* features) {
  auto x = images.to(torch::kFloat32).contiguous();
  const int64_t n = x.size(0);
  std::vector<float> p, f;
  judge.Score(x.data_ptr<float>(), n, static_cast<int>(x.size(2)), probs ? &p : nullptr, features ? &f : nullptr);
  if (probs) *probs = torch::from_blob(p.data(), {n, static_cast<int64_t>(p.size()) / n}).clone();
  if (features) *features = torch::from_blob(f.data(), {n, static_cast<int64_t>(f.size()) / n}).to(torch::kDouble);
}

// What every generator of one run is scored against: the judge, the asked-for tags and
// noise, and the real faces' features. Drawn in one order from o.seed (tags, then the
// real subset), so every generator of a run sees the same.
struct Bench {
  RunConfig config;
  std::string model_path;
  std::unique_ptr<tagger::FaceJudge> judge;
  torch::Tensor asked, z, f_real;
  double fd_real = 0;
};

Result<Bench> PrepareBench(const Workspace& ws, const EvalOptions& o) {
  Bench b;
  MF_ASSIGN_OR_RETURN(b.config, LoadRunConfig(ws, o.run));
  b.model_path = o.tagger_model;
  if (b.model_path.empty()) {
    MF_ASSIGN_OR_RETURN(b.model_path, FindTaggerModel(ws, b.config.options.value("tagger", std::string())));
  }
  MF_ASSIGN_OR_RETURN(b.judge, tagger::LoadJudge(b.model_path));
  const int t = b.config.schema.size();

  // Tags drawn like the data's.
  std::mt19937_64 rng(o.seed);
  TagSampler sampler(b.config.schema, b.config.tag_freq);
  b.asked = torch::zeros({o.n, t});
  for (int i = 0; i < o.n; ++i) {
    auto v = sampler.Sample(rng);
    std::memcpy(b.asked.data_ptr<float>() + int64_t(i) * t, v.data(), sizeof(float) * t);
  }
  b.z = torch::randn({o.n, b.config.gan.z_dim}, at::detail::createCPUGenerator(o.seed));

  // Real faces from the run's cache (a seeded subset).
  const std::string cache_path = RunDir(ws, o.run) + "/data_" + std::to_string(b.config.gan.resolution) + ".u8";
  MF_ASSIGN_OR_RETURN(ImageCache cache, ImageCache::Open(cache_path));
  std::vector<int64_t> idx(cache.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::shuffle(idx.begin(), idx.end(), rng);
  idx.resize(std::min<size_t>(idx.size(), static_cast<size_t>(o.max_real)));
  const int r = cache.resolution();
  auto real = torch::empty({static_cast<int64_t>(idx.size()), 3, r, r});
  std::vector<float> tag_buf(idx.size() * cache.num_tags());
  cache.Gather(idx, std::vector<bool>(idx.size(), false), real.data_ptr<float>(), tag_buf.data());
  Judge(*b.judge, real, nullptr, &b.f_real);
  // Reference: two halves of the real faces against each other.
  const int64_t half = b.f_real.size(0) / 2;
  b.fd_real = FrechetDistance(b.f_real.slice(0, 0, half), b.f_real.slice(0, half));
  return b;
}

// One generator's figures; `step` and `generator` name it in the JSON.
nlohmann::json Score(Bench& b, Generator& g, const EvalOptions& o, int64_t step, const std::string& generator) {
  torch::Tensor fake;
  {
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> parts;
    for (int i = 0; i < o.n; i += 64) parts.push_back(g->forward(b.z.slice(0, i, i + 64), b.asked.slice(0, i, i + 64)));
    fake = torch::cat(parts);
  }
  // The tagger's decisions, in the run's schema order (by tag name).
  torch::Tensor probs, f_fake;
  Judge(*b.judge, fake, &probs, &f_fake);
  nlohmann::json fidelity =
      LabelFidelity(b.config.schema, b.judge->schema(), b.judge->thresholds(), probs, b.asked);
  auto pr = PrecisionRecall(b.f_real, f_fake, 3);
  return nlohmann::json{{"run", o.run},
                        {"step", step},
                        {"generator", generator},
                        {"tagger_model", b.model_path},
                        {"tagger_sha256", b.judge->sha256()},
                        {"generated", o.n},
                        {"seed", o.seed},
                        {"real", b.f_real.size(0)},
                        {"label_fidelity", fidelity},
                        {"frechet_distance", FrechetDistance(b.f_real, f_fake)},
                        {"frechet_distance_real_halves", b.fd_real},
                        {"precision_k3", pr.precision},
                        {"recall_k3", pr.recall}};
}

Status CheckEvalOptions(const EvalOptions& o) {
  if (o.n < 8) return Status::InvalidArgument("--n must be >= 8");
  if (o.max_real < 8) return Status::InvalidArgument("--max-real must be >= 8");
  torch::set_num_threads(o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency()));
  return Status::Ok();
}

}  // namespace

Result<nlohmann::json> Eval(const Workspace& ws, const EvalOptions& o) {
  MF_RETURN_IF_ERROR(CheckEvalOptions(o));
  int64_t snapshot = o.snapshot;
  if (snapshot == kBestSnapshot) {
    MF_ASSIGN_OR_RETURN(snapshot, ResolveBestSnapshot(ws, o.run));
  }
  MF_ASSIGN_OR_RETURN(Generator g, LoadGenerator(ws, o.run, nullptr, GeneratorChoice{snapshot, o.raw}));
  MF_ASSIGN_OR_RETURN(Bench b, PrepareBench(ws, o));
  MF_ASSIGN_OR_RETURN(int64_t step, CheckpointStep(ws, o.run));
  const std::string generator = snapshot >= 0                                            ? "snapshot"
                                : (o.raw || b.config.options.value("ema_kimg", 0.0) <= 0) ? "raw"
                                                                                          : "ema";
  return Score(b, g, o, snapshot >= 0 ? snapshot : step, generator);
}

Result<nlohmann::json> EvalSnapshots(const Workspace& ws, const EvalOptions& o) {
  MF_RETURN_IF_ERROR(CheckEvalOptions(o));
  if (o.raw || o.snapshot != -1)
    return Status::InvalidArgument("--all-snapshots scores every sampling generator: no --snapshot or --raw with it");
  MF_ASSIGN_OR_RETURN(auto recorded, ReadSnapshotMetrics(ws, o.run));
  MF_ASSIGN_OR_RETURN(int64_t now, CheckpointStep(ws, o.run));
  MF_ASSIGN_OR_RETURN(Bench b, PrepareBench(ws, o));
  // The checkpoint's sampling generator: its moving average, or G where the run keeps none.
  const std::string checkpoint_kind = b.config.options.value("ema_kimg", 0.0) <= 0 ? "raw" : "ema";

  // What is to be scored: every kept snapshot, and the checkpoint unless a snapshot of its
  // step stands for it.
  const auto steps = ListSnapshots(ws, o.run);
  std::vector<std::pair<int64_t, std::string>> todo;
  for (int64_t s : steps) todo.emplace_back(s, "snapshot");
  if (now >= 0 && std::find(steps.begin(), steps.end(), now) == steps.end()) todo.emplace_back(now, checkpoint_kind);

  // Entries scored alike before (same judge, noise and real faces) and still there are
  // kept; the rest are scored now, the file rewritten after each (a kill loses one).
  auto same_bench = [&](const nlohmann::json& e) {
    return e.value("tagger_sha256", "") == b.judge->sha256() && e.value("generated", -1) == o.n &&
           e.value("seed", uint64_t{0}) == o.seed && e.value("real", int64_t{-1}) == b.f_real.size(0);
  };
  std::vector<nlohmann::json> entries;
  for (const auto& e : recorded)
    if (same_bench(e) && StillThere(ws, o.run, e, now)) entries.push_back(e);
  auto have = [&](int64_t step, const std::string& kind) {
    const bool snap = kind == "snapshot";
    return std::any_of(entries.begin(), entries.end(), [&](const nlohmann::json& e) {
      return e["step"].get<int64_t>() == step && (e["generator"] == "snapshot") == snap;
    });
  };
  int scored_now = 0, done = 0;
  for (const auto& [step, kind] : todo) {
    ++done;
    if (have(step, kind)) continue;
    const bool snap = kind == "snapshot";
    MF_ASSIGN_OR_RETURN(Generator g, LoadGenerator(ws, o.run, nullptr, GeneratorChoice{snap ? step : -1, false}));
    auto e = Score(b, g, o, step, kind);
    std::fprintf(stderr, "[eval %d/%zu] %s %lld: FD %.1f, hair %.1f%%, eyes %.1f%%\n", done, todo.size(),
                 kind.c_str(), static_cast<long long>(step), e["frechet_distance"].get<double>(),
                 100 * e["label_fidelity"].value("hair_color", 0.0), 100 * e["label_fidelity"].value("eye_color", 0.0));
    entries.push_back(std::move(e));
    ++scored_now;
    MF_RETURN_IF_ERROR(WriteSnapshotMetrics(ws, o.run, &entries));
  }
  // Nothing new, but entries no longer there were dropped: the file says so too. (Read and
  // written entries are sorted, so `entries` is in step order either way.)
  if (scored_now == 0 && entries.size() != recorded.size())
    MF_RETURN_IF_ERROR(WriteSnapshotMetrics(ws, o.run, &entries));
  MF_ASSIGN_OR_RETURN(auto best, BestEntry(ws, o.run, entries, now));
  return nlohmann::json{{"run", o.run}, {"scored", entries}, {"scored_now", scored_now}, {"best", best}};
}

}  // namespace moeforge::trainer
