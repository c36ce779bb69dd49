// The training loop: dataset -> packed cache -> DRAGAN steps, with per-step metrics in
// the database, atomic checkpoints and sample grids under WS/runs/<run>/.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <sstream>
#include <thread>

#include <sys/resource.h>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include "core/process.h"
#include "core/progress.h"
#include "db/dataset.h"
#include "db/db.h"
#include "torch_common/cpu_autocast.h"
#include "trainer/data_cache.h"
#include "trainer/distributed.h"
#include "trainer/gan.h"
#include "trainer/output_template.h"
#include "trainer/run.h"
#include "trainer/trainer.h"

namespace moeforge::trainer {

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

nlohmann::json OptionsJson(const TrainOptions& o) {
  return {{"view", o.view},
          {"run", o.run},
          {"tagger", o.tagger},
          {"resolution", o.resolution},
          {"steps", o.steps},
          {"batch", o.batch},
          {"threads", o.threads},
          {"z_dim", o.z_dim},
          {"g_channels", o.g_channels},
          {"g_blocks", o.g_blocks},
          {"d_channels", o.d_channels},
          {"d_blocks", o.d_blocks},
          {"upsample", o.upsample},
          {"d_down", o.d_down},
          {"d_mbstd", o.d_mbstd},
          {"template", o.output_template},
          {"lr", o.lr},
          {"lr_d", o.lr_d},
          {"beta1", o.beta1},
          {"beta2", o.beta2},
          {"l_adv", o.l_adv},
          {"l_gp", o.l_gp},
          {"gp_every", o.gp_every},
          {"ema_kimg", o.ema_kimg},
          {"ema_rampup", o.ema_rampup},
          {"icnr", o.icnr},
          {"augment", o.augment},
          {"snapshot_every", o.snapshot_every},
          {"keep_snapshots", o.keep_snapshots},
          {"seed", o.seed},
          {"deterministic", o.deterministic},
          {"memory_format", o.memory_format},
          {"bf16", o.bf16},
          {"nproc", o.nproc}};
}

// A resumed run keeps the model, data and optimisation settings it was started with;
// only the length, threads, snapshots and reporting may change. Settings a run's
// config.json does not name predate them: the run trained without them.
void ApplyStored(const nlohmann::json& j, TrainOptions& o) {
  o.view = j.value("view", o.view);
  o.tagger = j.value("tagger", o.tagger);
  o.resolution = j.value("resolution", o.resolution);
  o.batch = j.value("batch", o.batch);
  o.z_dim = j.value("z_dim", o.z_dim);
  o.g_channels = j.value("g_channels", o.g_channels);
  o.g_blocks = j.value("g_blocks", o.g_blocks);
  o.d_channels = j.value("d_channels", o.d_channels);
  o.d_blocks = j.value("d_blocks", o.d_blocks);
  o.upsample = j.value("upsample", std::string("shuffle"));
  o.d_down = j.value("d_down", std::string("conv"));
  o.d_mbstd = j.value("d_mbstd", 0);
  o.output_template = j.value("template", std::string("none"));
  o.lr = j.value("lr", o.lr);
  o.lr_d = j.value("lr_d", 0.0);
  o.beta1 = j.value("beta1", o.beta1);
  o.beta2 = j.value("beta2", o.beta2);
  o.l_adv = j.value("l_adv", o.l_adv);
  o.l_gp = j.value("l_gp", o.l_gp);
  o.gp_every = j.value("gp_every", 1);
  o.ema_kimg = j.value("ema_kimg", 0.0);
  o.ema_rampup = j.value("ema_rampup", o.ema_rampup);
  o.icnr = j.value("icnr", false);
  o.augment = j.value("augment", std::string("none"));
  o.seed = j.value("seed", o.seed);
  o.deterministic = j.value("deterministic", o.deterministic);
  o.memory_format = j.value("memory_format", o.memory_format);
  o.bf16 = j.value("bf16", o.bf16);
}

Status Validate(const TrainOptions& o) {
  if (UpsampleBlocks(o.resolution) < 0) return Status::InvalidArgument("--resolution must be 32, 64 or 128");
  if (o.steps < 0) return Status::InvalidArgument("--steps must be >= 0");
  if (o.batch < 1) return Status::InvalidArgument("--batch must be >= 1");
  if (o.threads < 0) return Status::InvalidArgument("--threads must be >= 0");
  if (o.g_channels < 1 || o.g_blocks < 0 || o.d_channels < 1 || o.d_blocks < 0 || o.z_dim < 1)
    return Status::InvalidArgument("model sizes must be positive");
  if (o.upsample != "shuffle" && o.upsample != "nearest")
    return Status::InvalidArgument("--upsample must be shuffle or nearest");
  if (o.d_down != "conv" && o.d_down != "pool") return Status::InvalidArgument("--d-down must be conv or pool");
  if (o.d_mbstd < 0) return Status::InvalidArgument("--d-mbstd must be >= 0");
  if (o.output_template != "none" && o.output_template != "mean" && o.output_template != "tags")
    return Status::InvalidArgument("--template must be none, mean or tags");
  if (o.gp_every < 1) return Status::InvalidArgument("--gp-every must be >= 1");
  if (o.lr <= 0 || o.lr_d < 0) return Status::InvalidArgument("--lr must be > 0 (and --lr-d >= 0)");
  if (o.ema_kimg < 0 || o.ema_rampup < 0) return Status::InvalidArgument("--ema-kimg and --ema-rampup must be >= 0");
  if (o.checkpoint_every < 1 || o.sample_every < 1 || o.snapshot_every < 1)
    return Status::InvalidArgument("--checkpoint-every, --sample-every and --snapshot-every must be >= 1");
  if (o.keep_snapshots < 0) return Status::InvalidArgument("--keep-snapshots must be >= 0");
  MF_RETURN_IF_ERROR(AugmentPolicy::Parse(o.augment).status());
  if (o.memory_format != "auto" && o.memory_format != "contiguous" && o.memory_format != "channels_last")
    return Status::InvalidArgument("--memory-format must be auto, contiguous or channels_last");
  if (o.run.empty() || o.run.find('/') != std::string::npos || o.run == "." || o.run == "..")
    return Status::InvalidArgument("--run must be a plain name");
  if (o.nproc < 1) return Status::InvalidArgument("--nproc must be >= 1");
  if (o.dist_timeout < 1) return Status::InvalidArgument("--dist-timeout must be >= 1 (seconds)");
  return Status::Ok();
}

std::string RngToString(const std::mt19937_64& rng) {
  std::ostringstream s;
  s << rng;
  return s.str();
}

// The next batch's cache indexes, walking the epoch permutation; a new permutation
// (from the data RNG) at each epoch.
std::vector<int64_t> NextIndexes(TrainState& st, int64_t n, int batch, std::mt19937_64& rng) {
  std::vector<int64_t> idx;
  idx.reserve(batch);
  for (int j = 0; j < batch; ++j) {
    if (st.position >= static_cast<int64_t>(st.order.size())) {
      st.order.resize(n);
      std::iota(st.order.begin(), st.order.end(), 0);
      std::shuffle(st.order.begin(), st.order.end(), rng);
      ++st.epoch;
      st.position = 0;
    }
    idx.push_back(st.order[st.position++]);
  }
  return idx;
}

// What a run trains on: its config (new, or as stored) and its packed image cache.
struct RunData {
  RunConfig config;
  std::string cache_path;
  int64_t unreadable = 0;  // crops left out of a new cache
};

// A new run: the dataset view's faces packed into the cache, config.json written. An
// existing one: its stored settings applied to `o`.
Result<RunData> PrepareRunData(const Workspace& ws, db::Database& database, TrainOptions& o, int threads) {
  RunData r;
  const std::string dir = RunDir(ws, o.run);
  const bool exists = std::filesystem::exists(dir + "/config.json");
  if (exists && !o.resume)
    return Status::InvalidArgument("run '" + o.run + "' already exists in " + dir +
                                   ": pass --resume to continue it, or choose another --run");
  if (!exists && o.resume) return Status::NotFound("--resume: run '" + o.run + "' has no " + dir + "/config.json");
  if (exists) {
    MF_ASSIGN_OR_RETURN(r.config, LoadRunConfig(ws, o.run));
    ApplyStored(r.config.options, o);
    // Its data order, noise and global batch are those of its number of ranks.
    const int stored_nproc = r.config.options.value("nproc", 1);
    if (stored_nproc != o.nproc)
      return Status::InvalidArgument(fmt::format(
          "run '{}' was trained by {} rank(s) (global batch {} x {}); resume it with --nproc {}", o.run, stored_nproc,
          stored_nproc, o.batch, stored_nproc));
    r.cache_path = dir + "/data_" + std::to_string(o.resolution) + ".u8";
    if (r.config.options.value("threads_used", threads) != threads && o.deterministic)
      std::fprintf(stderr, "train: warning: run started with %d threads, now %d: results may differ bit for bit\n",
                   r.config.options.value("threads_used", threads), threads);
    return r;
  }
  MF_ASSIGN_OR_RETURN(db::Dataset data, db::LoadDataset(database, o.view, o.tagger));
  if (data.size() == 0)
    return Status::InvalidArgument("the dataset" + (o.view.empty() ? std::string() : " '" + o.view + "'") +
                                   " has no tagged faces: run detect and tag first");
  CacheSource src;
  src.num_tags = data.schema.size();
  for (size_t i = 0; i < data.size(); ++i) {
    src.face_ids.push_back(data.face_ids[i]);
    src.paths.push_back(ws.Abs(data.crop_paths[i]));
    auto v = data.TagVector(i);
    src.tags.insert(src.tags.end(), v.begin(), v.end());
  }
  r.cache_path = dir + "/data_" + std::to_string(o.resolution) + ".u8";
  std::fprintf(stderr, "train: caching %zu faces at %d px into %s\n", data.size(), o.resolution, r.cache_path.c_str());
  MF_ASSIGN_OR_RETURN(CacheBuildStats cs, BuildImageCache(src, o.resolution, r.cache_path));
  r.unreadable = cs.unreadable;
  MF_ASSIGN_OR_RETURN(ImageCache probe, ImageCache::Open(r.cache_path));
  r.config.schema = data.schema;
  r.config.tag_freq = TagSampler(data.schema, probe.tags(0), probe.size()).frequencies();
  r.config.gan = GanConfig{o.resolution, data.schema.size(), o.z_dim,     o.g_channels,     o.g_blocks,
                           o.d_channels, o.d_blocks,          o.upsample, o.d_down,         o.output_template,
                           o.d_mbstd};
  o.tagger = data.tagger;
  r.config.options = OptionsJson(o);
  r.config.options["threads_used"] = threads;
  MF_RETURN_IF_ERROR(SaveRunConfig(ws, o.run, r.config));
  return r;
}

// G, its moving average, D and their optimisers, on one device.
struct Models {
  Generator g{nullptr};
  Generator g_ema{nullptr};  // null without a moving average
  Discriminator d{nullptr};
  std::unique_ptr<torch::optim::Adam> opt_g, opt_d;
};

// fit_template: fit G's output template to the cache (a new run's rank 0); otherwise a
// checkpoint or rank 0's broadcast sets it, and the pass over the cache would be wasted.
Models BuildModels(const GanConfig& gan, const TrainOptions& o, const ImageCache& cache, bool fit_template,
                   torch::Device device, bool channels_last) {
  Models m;
  m.g = Generator(gan);
  if (o.icnr) IcnrInit(m.g);
  if (fit_template && gan.output_template != "none") {
    TemplateFit fit(gan.tags, gan.resolution, gan.output_template == "tags");
    fit.AddCache(cache);
    fit.Apply(m.g);
  }
  m.d = Discriminator(gan);
  m.g->to(device);
  m.d->to(device);
  m.g->channels_last = m.d->channels_last = channels_last;
  ToMemoryFormat(*m.g, channels_last);
  ToMemoryFormat(*m.d, channels_last);
  if (o.ema_kimg > 0) {
    m.g_ema = Generator(gan);
    m.g_ema->to(device);
    m.g_ema->channels_last = channels_last;
    ToMemoryFormat(*m.g_ema, channels_last);
    EmaUpdate(*m.g_ema, *m.g, 0.0);  // starts as G
    for (auto& p : m.g_ema->parameters()) p.requires_grad_(false);
  }
  auto adam = [&](std::vector<torch::Tensor> p, double lr) {
    return std::make_unique<torch::optim::Adam>(std::move(p),
                                                torch::optim::AdamOptions(lr).betas({o.beta1, o.beta2}));
  };
  m.opt_g = adam(m.g->parameters(), o.lr);
  m.opt_d = adam(m.d->parameters(), o.lr_d > 0 ? o.lr_d : o.lr);
  return m;
}

// Rank 0 makes (or checks) the run; the others wait for its word, then read it (and
// take its stored settings into `o`).
Result<RunData> ShareRunData(const Workspace& ws, db::Database& database, TrainOptions& o, int threads,
                             ProcessGroupComm* comm, bool lead) {
  if (lead) {
    auto prepared = PrepareRunData(ws, database, o, threads);
    if (comm) comm->Publish("run_ready", prepared.ok() ? std::string("ok") : prepared.status().message());
    return prepared;
  }
  // Packing a large view may take rank 0 a while; if it dies, the store's socket closes.
  MF_ASSIGN_OR_RETURN(std::string word, comm->Await("run_ready", std::chrono::hours(2)));
  if (word != "ok") return Status::InvalidArgument("rank 0 could not prepare the run: " + word);
  TrainOptions stored = o;
  stored.resume = true;  // the run rank 0 has just made or checked
  MF_ASSIGN_OR_RETURN(RunData data, PrepareRunData(ws, database, stored, threads));
  stored.resume = o.resume;
  o = stored;
  return data;
}

// The models, optimisers, step, data order and both random streams as the checkpoint left them.
Status Restore(const std::string& ckpt, Models& m, torch::Device device, const ImageCache& cache, TrainState& st,
               std::mt19937_64& data_rng) {
  Generator* g_ema = m.g_ema ? &m.g_ema : nullptr;
  MF_RETURN_IF_ERROR(LoadCheckpoint(ckpt, m.g, g_ema, m.d, m.opt_g.get(), m.opt_d.get(), &st, device));
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(st.torch_rng);
  std::istringstream(st.data_rng) >> data_rng;
  if (st.order.size() != static_cast<size_t>(cache.size()))
    return Status::Corrupt(ckpt + ": its data order does not match the cache");
  return Status::Ok();
}

// The run's `runs` row (kept on resume); returns its id.
Result<int64_t> UpsertRunRow(db::Database& database, const TrainOptions& o, const RunConfig& config, int64_t step) {
  const std::string now = db::NowIso();
  MF_ASSIGN_OR_RETURN(db::Stmt * ins, database.Cached(
      "INSERT INTO runs(name, view, tagger, config_json, dir, state, step, created_at, updated_at) "
      "VALUES(?,?,?,?,?,'running',?,?,?) ON CONFLICT(name) DO UPDATE SET state='running', "
      "step=excluded.step, updated_at=excluded.updated_at"));
  MF_RETURN_IF_ERROR(ins->BindAll(o.run, o.view, config.options.value("tagger", std::string()), config.ToJson().dump(),
                                  "runs/" + o.run, step, now, now)
                         .Run());
  MF_ASSIGN_OR_RETURN(db::Stmt * sel, database.Cached("SELECT id FROM runs WHERE name = ?"));
  sel->Bind(1, o.run);
  MF_ASSIGN_OR_RETURN(bool row, sel->Step());
  int64_t id = row ? sel->Int(0) : 0;
  sel->Reset();
  if (!row) return Status::Internal("the runs row of '" + o.run + "' vanished");
  return id;
}

// The training-time grid: fixed noise down the columns and one fixed tag row per grid
// row, the same at every sample step and across resumes; drawn by the sampling
// generator (the moving average where there is one).
class SampleGrid {
 public:
  SampleGrid(const RunConfig& config, uint64_t seed, torch::Device device) {
    tags_ = FixedTagRows(config.schema, config.tag_freq, 8, &labels_);
    const int64_t rows = tags_.size(0);
    auto gen = at::detail::createCPUGenerator(seed ^ 0x9e3779b97f4a7c15ULL);
    z_ = torch::randn({kCols, config.gan.z_dim}, gen).repeat({rows, 1}).to(device);
    tags_ = tags_.repeat_interleave(kCols, 0).to(device);
  }
  Status Write(Generator& g, const std::string& path) {
    torch::NoGradGuard ng;
    const bool was_training = g->is_training();
    g->eval();
    auto img = g->forward(z_, tags_);
    if (was_training) g->train();
    return WriteGrid(img, kCols, labels_, path);
  }

 private:
  static constexpr int kCols = 8;
  std::vector<std::string> labels_;
  torch::Tensor z_, tags_;
};

// One step's metrics rows, through the batched writer.
Status SubmitMetrics(db::BatchWriter& writer, int64_t run_id, int64_t step, const StepLosses& l) {
  return writer.Submit([=](db::Database& dbc) -> Status {
    MF_ASSIGN_OR_RETURN(db::Stmt * m,
                        dbc.Cached("INSERT OR REPLACE INTO metrics(run_id, step, key, value) VALUES(?,?,?,?)"));
    for (auto [k, v] : {std::pair<const char*, double>{"d_loss", l.d_total}, {"d_adv", l.d_adv}, {"d_cls", l.d_cls},
                        {"gp", l.gp}, {"g_loss", l.g_total}, {"g_adv", l.g_adv}, {"g_cls", l.g_cls}})
      if (!std::isnan(v)) MF_RETURN_IF_ERROR(m->BindAll(run_id, step, std::string(k), v).Run());
    return Status::Ok();
  });
}

// This process's place among the ranks; a launcher's WORLD_SIZE sets o.nproc.
Result<RankEnv> ResolveRanks(TrainOptions& o) {
  MF_ASSIGN_OR_RETURN(const RankEnv env, RankEnvFromEnvironment());
  if (env.world > 1) {
    if (o.nproc != 1 && o.nproc != env.world)
      return Status::InvalidArgument(
          fmt::format("--nproc {} but WORLD_SIZE={}: one rank of several takes the world size from its launcher",
                      o.nproc, env.world));
    o.nproc = env.world;
  } else if (o.nproc > 1) {
    return Status::InvalidArgument(fmt::format(
        "--nproc {}: data-parallel ranks are started by `moeforge train --nproc {}` or by a launcher that sets RANK, "
        "WORLD_SIZE, MASTER_ADDR and MASTER_PORT (torchrun, srun); this command trains in one process",
        o.nproc, o.nproc));
  }
  return env;
}

// Every rank loaded the same checkpoint (or none); rank 0's step and models are the truth.
Status TakeRankZerosModels(ProcessGroupComm& comm, const RankEnv& env, const std::string& run, int64_t step,
                           Models& m) {
  try {
    auto step0 = torch::tensor({step}, torch::kLong);
    comm.Broadcast({step0});
    if (step0.item<int64_t>() != step)
      return Status::InvalidArgument(fmt::format(
          "rank {} resumes at step {} but rank 0 at step {}: every rank must see the same WS/runs/{}/ (a shared "
          "workspace)",
          env.rank, step, step0.item<int64_t>(), run));
    std::vector<torch::Tensor> state = ModuleState(*m.g);
    for (auto& t : ModuleState(*m.d)) state.push_back(t);
    if (m.g_ema)
      for (auto& t : ModuleState(*m.g_ema)) state.push_back(t);
    comm.Broadcast(state);
  } catch (const std::exception& e) {
    return Status::Network(fmt::format("rank {}: broadcasting rank 0's models failed: {}", env.rank, ErrorText(e)));
  }
  return Status::Ok();
}

// One step's inputs for this rank: real faces (mirrored at random) with their tags, noise,
// and the tags asked of the fakes. Everything is drawn for the global batch of `world`
// ranks in one order, and each rank keeps its own rows, so the run is one run whatever
// the number of ranks.
struct StepBatch {
  torch::Tensor real, real_tags, z, fake_tags;
};
class BatchDrawer {
 public:
  BatchDrawer(const ImageCache& cache, const TagSampler& sampler, int batch, const RankEnv& env, int z_dim,
              torch::Device device)
      : cache_(cache), sampler_(sampler), b_(batch), world_(env.world), offset_(int64_t(env.rank) * batch),
        z_dim_(z_dim), device_(device), real_buf_(size_t(batch) * 3 * cache.resolution() * cache.resolution()),
        tag_buf_(size_t(batch) * cache.num_tags()) {}

  StepBatch Draw(TrainState& st, std::mt19937_64& data_rng) {
    const int gb = b_ * world_, t = cache_.num_tags(), r = cache_.resolution();
    auto idx = NextIndexes(st, cache_.size(), gb, data_rng);
    std::vector<bool> flip(gb);
    std::bernoulli_distribution coin(0.5);
    for (int j = 0; j < gb; ++j) flip[j] = coin(data_rng);
    auto fake_tags = torch::empty({gb, t});
    for (int j = 0; j < gb; ++j) {
      auto v = sampler_.Sample(data_rng);
      std::memcpy(fake_tags.data_ptr<float>() + j * t, v.data(), sizeof(float) * t);
    }
    if (world_ > 1) {
      idx = std::vector<int64_t>(idx.begin() + offset_, idx.begin() + offset_ + b_);
      flip = std::vector<bool>(flip.begin() + offset_, flip.begin() + offset_ + b_);
    }
    cache_.Gather(idx, flip, real_buf_.data(), tag_buf_.data());
    StepBatch s;
    s.real = torch::from_blob(real_buf_.data(), {b_, 3, r, r}).to(device_);
    s.real_tags = torch::from_blob(tag_buf_.data(), {b_, t}).to(device_);
    s.z = Mine(torch::randn({gb, z_dim_})).to(device_);
    s.fake_tags = Mine(fake_tags).to(device_);
    return s;
  }

 private:
  torch::Tensor Mine(const torch::Tensor& x) const { return world_ > 1 ? x.narrow(0, offset_, b_) : x; }
  const ImageCache& cache_;
  const TagSampler& sampler_;
  const int b_, world_;
  const int64_t offset_;
  const int z_dim_;
  const torch::Device device_;
  std::vector<float> real_buf_, tag_buf_;
};

}  // namespace

Result<db::StageSummary> Train(const Workspace& ws, const TrainOptions& opts) {
  TrainOptions o = opts;
  MF_ASSIGN_OR_RETURN(const RankEnv env, ResolveRanks(o));
  const bool lead = env.rank == 0;  // rank 0 alone writes checkpoints, samples, snapshots, metrics
  MF_RETURN_IF_ERROR(Validate(o));
  MF_RETURN_IF_ERROR(ws.CheckExists());
  MF_ASSIGN_OR_RETURN(auto dbp, db::OpenWorkspace(ws));
  db::Database& database = *dbp;
  auto t0 = std::chrono::steady_clock::now();

  const int threads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  torch::set_num_threads(threads);

  // CUDA when this LibTorch build has it and a GPU is visible (one per local rank); determinism
  // (and the resume-to-the-bit guarantee) is for CPU runs.
  const torch::Device device = torch::cuda::is_available()
                                   ? torch::Device(torch::kCUDA, env.world > 1 ? env.local_rank : 0)
                                   : torch::Device(torch::kCPU);
  const bool cuda = device.is_cuda();
  std::unique_ptr<ProcessGroupComm> comm;
  if (env.world > 1) {
    MF_ASSIGN_OR_RETURN(comm, ProcessGroupComm::Connect(env, device, std::chrono::seconds(o.dist_timeout)));
    if (lead)
      std::fprintf(stderr, "train: %d ranks over c10d (%s), global batch %d x %d\n", env.world,
                   comm->backend().c_str(), env.world, o.batch);
  }

  MF_ASSIGN_OR_RETURN(RunData data, ShareRunData(ws, database, o, threads, comm.get(), lead));
  const RunConfig& config = data.config;
  MF_ASSIGN_OR_RETURN(ImageCache cache, ImageCache::Open(data.cache_path));
  if (cache.num_tags() != config.gan.tags || cache.resolution() != config.gan.resolution)
    return Status::Corrupt(data.cache_path + " does not match the run's config");
  TagSampler sampler(config.schema, config.tag_freq);
  MF_ASSIGN_OR_RETURN(AugmentPolicy augment, AugmentPolicy::Parse(o.augment));

  if (o.bf16 && !torch_common::CpuHasBf16()) o.bf16 = false;
  if (o.deterministic) at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/true);
  torch::manual_seed(o.seed);
  std::mt19937_64 data_rng(o.seed);

  // Measured on this project's 2-core AVX-512/AMX box (bench/train_compare.sh): NHWC is
  // faster for the fp32 convolutions, plain NCHW as fast under bf16 autocast.
  const bool channels_last = o.memory_format == "channels_last" || (o.memory_format == "auto" && !o.bf16 && !cuda);
  const std::string ckpt = CheckpointPath(ws, o.run);
  const bool resuming = o.resume && std::filesystem::exists(ckpt);
  Models m = BuildModels(config.gan, o, cache, /*fit_template=*/lead && !resuming, device, channels_last);
  Generator* g_ema = m.g_ema ? &m.g_ema : nullptr;
  Generator& g_sample = g_ema ? m.g_ema : m.g;
  if (comm) m.g->SetBatchNormSync(comm.get());

  TrainState st;
  if (resuming) MF_RETURN_IF_ERROR(Restore(ckpt, m, device, cache, st, data_rng));
  if (comm) MF_RETURN_IF_ERROR(TakeRankZerosModels(*comm, env, o.run, st.step, m));
  const int64_t start_step = st.step;

  int64_t run_id = 0, stage_id = 0;
  nlohmann::json params = OptionsJson(o);
  if (lead) {
    MF_ASSIGN_OR_RETURN(run_id, UpsertRunRow(database, o, config, st.step));
    MF_ASSIGN_OR_RETURN(stage_id, db::BeginStageRun(database, "train", params));
  }

  SampleGrid grid(config, o.seed, device);
  auto write_sample = [&](int64_t step) {
    return grid.Write(g_sample, SamplePath(ws, o.run, step));
  };
  auto write_snapshot = [&](int64_t step) -> Status {
    if (o.keep_snapshots == 0) return Status::Ok();
    MF_RETURN_IF_ERROR(SaveSnapshot(SnapshotPath(ws, o.run, step), g_sample));
    return PruneSnapshots(ws, o.run, o.keep_snapshots);
  };
  db::BatchWriter writer(database);
  auto checkpoint = [&]() -> Status {
    // Metrics up to this step are committed before the checkpoint exists, so a kill
    // after it loses none: the steps after it are replayed and their rows replaced.
    MF_RETURN_IF_ERROR(writer.Flush());
    st.torch_rng = at::detail::getDefaultCPUGenerator().get_state();
    st.data_rng = RngToString(data_rng);
    MF_RETURN_IF_ERROR(SaveCheckpoint(ckpt, m.g, g_ema, m.d, *m.opt_g, *m.opt_d, st));
    int64_t step = st.step;
    return writer.Submit([=](db::Database& dbc) -> Status {
      MF_ASSIGN_OR_RETURN(db::Stmt * up, dbc.Cached("UPDATE runs SET step=?, updated_at=? WHERE id=?"));
      return up->BindAll(step, db::NowIso(), run_id).Run();
    });
  };

  g_stop = false;
  auto old_int = std::signal(SIGINT, OnSignal);
  auto old_term = std::signal(SIGTERM, OnSignal);

  const int64_t n = cache.size();
  const int world = env.world;
  const int gb = o.batch * world;  // the global batch: every rank draws it, keeps its rows
  BatchDrawer batches(cache, sampler, o.batch, env, config.gan.z_dim, device);
  const StepConfig sc{o.l_adv < 0 ? config.gan.tags : o.l_adv, o.l_gp, o.bf16 && !cuda, augment, o.gp_every,
                      comm.get()};
  StepLosses last;
  double last_gp = 0;  // the newest penalty computed (lazy: not every step has one)
  Progress progress("train", o.steps);
  if (lead) progress.Update(st.step);
  auto loop_start = std::chrono::steady_clock::now();
  const double collective_before = comm ? comm->collective_seconds() : 0.0;  // the start's broadcast left out
  Status status;
  const double cpu_start = CpuSeconds(RUSAGE_SELF);
  auto out_of_time = [&] {
    if (o.minutes > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count() >= o.minutes * 60)
      return true;
    return o.cpu_minutes > 0 && CpuSeconds(RUSAGE_SELF) - cpu_start >= o.cpu_minutes * 60;
  };
  // Ranks stop together: a signal or the time limit on any rank stops all at one step.
  auto should_stop = [&]() {
    bool local = g_stop || out_of_time();
    if (!comm) return local;
    std::vector<torch::Tensor> v{torch::tensor({local ? 1.0 : 0.0}, torch::kDouble)};
    comm->AllReduceSum(v);
    return v[0].item<double>() > 0;
  };
  while (st.step < o.steps) {
    try {
      if (should_stop()) break;
      StepBatch in = batches.Draw(st, data_rng);
      last = TrainStep(m.g, m.d, *m.opt_g, *m.opt_d, in.real, in.real_tags, in.z, in.fake_tags, sc, st.step);
    } catch (const std::exception& e) {
      // A collective that failed: a rank died or stopped answering. This step is half
      // done (data order advanced, no update), so no checkpoint is written now.
      status = Status::Network(fmt::format(
          "rank {} of {}: a collective with the other ranks failed (a rank died or stopped answering within "
          "--dist-timeout {} s): {}; the run resumes from its last checkpoint with --resume",
          env.rank, world, o.dist_timeout, ErrorText(e)));
      break;
    }
    if (!std::isnan(last.gp)) last_gp = last.gp;
    ++st.step;
    if (g_ema) EmaUpdate(**g_ema, *m.g, EmaBeta(st.step * gb, gb, o.ema_kimg * 1000, o.ema_rampup));

    const int64_t step = st.step;
    if (!lead) continue;
    if (!(status = SubmitMetrics(writer, run_id, step, last)).ok()) break;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count();
    progress.Update(step, fmt::format("{:.1f} img/s d {:.3f} g {:.3f} gp {:.3f}",
                                      (step - start_step) * gb / std::max(secs, 1e-9), last.d_total, last.g_total,
                                      last_gp));
    if (step % o.sample_every == 0 && !(status = write_sample(step)).ok()) break;
    if (step % o.snapshot_every == 0 && !(status = write_snapshot(step)).ok()) break;
    if (step % o.checkpoint_every == 0 && !(status = checkpoint()).ok()) break;
  }
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  const double loop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count();
  if (lead) progress.Finish();
  const char* state = !status.ok() ? "failed" : (st.step >= o.steps ? "done" : "stopped");
  db::StageSummary s;
  s.stage = "train";
  s.done = st.step - start_step;
  if (!lead) {
    MF_RETURN_IF_ERROR(status);
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    s.extra = {{"run", o.run}, {"step", st.step}, {"state", state}, {"rank", env.rank}};
    return s;
  }
  // At exit: always a checkpoint and a grid of where the run stopped.
  if (status.ok() && (st.step % o.checkpoint_every != 0 || st.step == start_step)) status = checkpoint();
  if (status.ok() && (st.step % o.sample_every != 0 || st.step == start_step)) status = write_sample(st.step);
  Status flushed = writer.Flush();
  if (status.ok()) status = flushed;
  state = !status.ok() ? "failed" : (st.step >= o.steps ? "done" : "stopped");
  if (auto up = database.Cached("UPDATE runs SET state=?, step=?, updated_at=? WHERE id=?"); up.ok())
    (*up)->BindAll(std::string(state), st.step, db::NowIso(), run_id).Run();

  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (data.unreadable > 0) s.Fail("unreadable_crop", data.unreadable);
  s.params = params;
  s.extra = {{"run", o.run},
             {"step", st.step},
             {"state", state},
             {"faces", n},
             {"device", cuda ? "cuda" : "cpu"},
             {"images_per_s", loop_s > 0 ? s.done * gb / loop_s : 0.0},
             {"ranks", world},
             {"collective_share", comm && loop_s > 0 ? (comm->collective_seconds() - collective_before) / loop_s : 0.0},
             {"d_loss", last.d_total},
             {"g_loss", last.g_total},
             {"gp", last_gp},
             {"checkpoint", ckpt},
             {"sample", SamplePath(ws, o.run, st.step)}};
  Status fin = db::FinishStageRun(database, stage_id, s);
  MF_RETURN_IF_ERROR(status);
  MF_RETURN_IF_ERROR(fin);
  return s;
}

}  // namespace moeforge::trainer
