// `moeforge eval`: how well a run draws what it is asked for, and how close its faces
// are to the real ones, both judged in the built-in tagger's eyes (no Inception weights).
#include <algorithm>
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

}  // namespace

Result<nlohmann::json> Eval(const Workspace& ws, const EvalOptions& o) {
  if (o.n < 8) return Status::InvalidArgument("--n must be >= 8");
  if (o.max_real < 8) return Status::InvalidArgument("--max-real must be >= 8");
  torch::set_num_threads(o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency()));
  RunConfig config;
  MF_ASSIGN_OR_RETURN(Generator g, LoadGenerator(ws, o.run, &config, GeneratorChoice{o.snapshot, o.raw}));
  std::string model_path = o.tagger_model;
  std::string tagger_name = config.options.value("tagger", std::string());
  if (model_path.empty()) {
    MF_ASSIGN_OR_RETURN(model_path, FindTaggerModel(ws, tagger_name));
  }
  MF_ASSIGN_OR_RETURN(auto tagger, tagger::LoadJudge(model_path));
  const TagSchema& schema = config.schema;
  const int t = schema.size();

  // Generated faces for tags drawn like the data's.
  std::mt19937_64 rng(o.seed);
  TagSampler sampler(schema, config.tag_freq);
  auto asked = torch::zeros({o.n, t});
  for (int i = 0; i < o.n; ++i) {
    auto v = sampler.Sample(rng);
    std::memcpy(asked.data_ptr<float>() + int64_t(i) * t, v.data(), sizeof(float) * t);
  }
  auto z = torch::randn({o.n, config.gan.z_dim}, at::detail::createCPUGenerator(o.seed));
  torch::Tensor fake;
  {
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> parts;
    for (int i = 0; i < o.n; i += 64) parts.push_back(g->forward(z.slice(0, i, i + 64), asked.slice(0, i, i + 64)));
    fake = torch::cat(parts);
  }

  // The tagger's decisions, in the run's schema order (by tag name).
  torch::Tensor probs, f_fake;
  Judge(*tagger, fake, &probs, &f_fake);
  nlohmann::json fidelity = LabelFidelity(schema, tagger->schema(), tagger->thresholds(), probs, asked);

  // Real faces from the run's cache (a seeded subset).
  const std::string cache_path = RunDir(ws, o.run) + "/data_" + std::to_string(config.gan.resolution) + ".u8";
  MF_ASSIGN_OR_RETURN(ImageCache cache, ImageCache::Open(cache_path));
  std::vector<int64_t> idx(cache.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::shuffle(idx.begin(), idx.end(), rng);
  idx.resize(std::min<size_t>(idx.size(), static_cast<size_t>(o.max_real)));
  const int r = cache.resolution();
  auto real = torch::empty({static_cast<int64_t>(idx.size()), 3, r, r});
  std::vector<float> tag_buf(idx.size() * cache.num_tags());
  cache.Gather(idx, std::vector<bool>(idx.size(), false), real.data_ptr<float>(), tag_buf.data());

  torch::Tensor f_real;
  Judge(*tagger, real, nullptr, &f_real);
  // Reference: two halves of the real faces against each other.
  const int64_t half = f_real.size(0) / 2;
  double fd = FrechetDistance(f_real, f_fake);
  double fd_real = FrechetDistance(f_real.slice(0, 0, half), f_real.slice(0, half));
  auto pr = PrecisionRecall(f_real, f_fake, 3);

  MF_ASSIGN_OR_RETURN(auto dbp, db::OpenWorkspace(ws));
  int64_t step = -1;
  if (auto sel = dbp->Cached("SELECT step FROM runs WHERE name = ?"); sel.ok()) {
    (*sel)->Bind(1, o.run);
    if (auto row = (*sel)->Step(); row.ok() && *row) step = (*sel)->Int(0);
    (*sel)->Reset();
  }
  return nlohmann::json{{"run", o.run},
                        {"step", o.snapshot >= 0 ? o.snapshot : step},
                        {"generator", o.snapshot >= 0                                 ? "snapshot"
                                      : (o.raw || config.options.value("ema_kimg", 0.0) <= 0) ? "raw"
                                                                                              : "ema"},
                        {"tagger_model", model_path},
                        {"tagger_sha256", tagger->sha256()},
                        {"generated", o.n},
                        {"real", static_cast<int64_t>(idx.size())},
                        {"label_fidelity", fidelity},
                        {"frechet_distance", fd},
                        {"frechet_distance_real_halves", fd_real},
                        {"precision_k3", pr.precision},
                        {"recall_k3", pr.recall}};
}

}  // namespace moeforge::trainer
