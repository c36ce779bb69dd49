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
#include "tagger/builtin/builtin_tagger.h"
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

torch::Tensor FeaturesInBatches(tagger::BuiltinTagger& t, const torch::Tensor& x, int batch = 128) {
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < x.size(0); i += batch) out.push_back(t.Features(x.slice(0, i, i + batch)));
  return torch::cat(out).to(torch::kDouble);
}

}  // namespace

Result<nlohmann::json> Eval(const Workspace& ws, const EvalOptions& o) {
  if (o.n < 8) return Status::InvalidArgument("--n must be >= 8");
  if (o.max_real < 8) return Status::InvalidArgument("--max-real must be >= 8");
  torch::set_num_threads(o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency()));
  RunConfig config;
  MF_ASSIGN_OR_RETURN(Generator g, LoadGenerator(ws, o.run, &config));
  std::string model_path = o.tagger_model;
  std::string tagger_name = config.options.value("tagger", std::string());
  if (model_path.empty()) {
    MF_ASSIGN_OR_RETURN(model_path, FindTaggerModel(ws, tagger_name));
  }
  MF_ASSIGN_OR_RETURN(auto tagger, tagger::BuiltinTagger::Load(model_path));
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
  auto probs = tagger->Probabilities(fake).to(torch::kFloat).contiguous();
  const TagSchema& ts = tagger->schema();
  std::vector<int> col(t, -1);
  for (int c = 0; c < t; ++c) col[c] = ts.IndexOf(schema.tags()[c]);
  std::vector<float> thr(t, 0.5f);
  for (int c = 0; c < t; ++c)
    if (col[c] >= 0 && col[c] < static_cast<int>(tagger->thresholds().size())) thr[c] = tagger->thresholds()[col[c]];
  std::vector<std::vector<bool>> decided(o.n);
  for (int i = 0; i < o.n; ++i) {
    std::vector<float> s(t, 0.0f);
    for (int c = 0; c < t; ++c) s[c] = col[c] >= 0 ? probs[i][col[c]].item<float>() : 0.0f;
    decided[i] = schema.Decide(s, thr);
  }
  nlohmann::json fidelity = nlohmann::json::object();
  int start = 0;
  for (const auto& grp : schema.groups()) {
    const int k = static_cast<int>(grp.tags.size());
    bool covered = true;
    for (int c = start; c < start + k; ++c) covered = covered && col[c] >= 0;
    if (covered) {
      double hits = 0, total = 0;
      for (int i = 0; i < o.n; ++i) {
        if (grp.exclusive) {
          int want = -1;
          for (int c = start; c < start + k; ++c)
            if (asked[i][c].item<float>() > 0.5f) want = c;
          hits += want >= 0 && decided[i][want];
          total += 1;
        } else {
          for (int c = start; c < start + k; ++c) {
            hits += decided[i][c] == (asked[i][c].item<float>() > 0.5f);
            total += 1;
          }
        }
      }
      fidelity[grp.name] = total > 0 ? hits / total : 0.0;
    }
    start += k;
  }

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

  auto f_fake = FeaturesInBatches(*tagger, fake);
  auto f_real = FeaturesInBatches(*tagger, real);
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
                        {"step", step},
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
