// `moeforge sample`: faces for chosen tags from a run's checkpoint, as a grid, or an
// interpolation between two seeds' noise.
#include <cmath>
#include <sstream>
#include <thread>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "trainer/data_cache.h"
#include "trainer/run.h"
#include "trainer/trainer.h"

namespace moeforge::trainer {

namespace {

// Spherical interpolation: Gaussian noise keeps its norm along the path.
torch::Tensor Slerp(const torch::Tensor& a, const torch::Tensor& b, double t) {
  auto an = a / a.norm(), bn = b / b.norm();
  double omega = std::acos(std::clamp((an * bn).sum().item<double>(), -1.0, 1.0));
  if (omega < 1e-6) return (1 - t) * a + t * b;
  return (std::sin((1 - t) * omega) * a + std::sin(t * omega) * b) / std::sin(omega);
}

Status CheckSampleOptions(const SampleOptions& o) {
  if (o.n < 1) return Status::InvalidArgument("--n must be >= 1");
  if (o.out.empty()) return Status::InvalidArgument("-o OUT.png is required");
  if (o.interpolate_to_seed >= 0 && o.n < 2) return Status::InvalidArgument("interpolation needs --n >= 2");
  if (!(o.truncation >= 0 && o.truncation <= 2)) return Status::InvalidArgument("--truncation must be in [0, 2]");
  if (o.scale < 1 || o.scale > 16) return Status::InvalidArgument("--scale must be in 1..16");
  return Status::Ok();
}

// The images of `o` from a loaded generator `g` and its run's `config`.
Result<std::string> SampleWith(Generator& g, const RunConfig& config, const SampleOptions& o) {
  MF_RETURN_IF_ERROR(CheckSampleOptions(o));
  torch::set_num_threads(o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency()));
  const TagSchema& schema = config.schema;

  // The named tags; at most one per exclusive group.
  std::vector<int> named;
  std::vector<int> group_named(schema.groups().size(), -1);
  std::istringstream words(o.tags);
  for (std::string w; words >> w;) {
    for (auto& ch : w)
      if (ch == ',') ch = ' ';
    std::istringstream parts(w);
    for (std::string tag; parts >> tag;) {
      int c = schema.IndexOf(tag);
      if (c < 0) {
        std::string known;
        for (const auto& t : schema.tags()) known += (known.empty() ? "" : " ") + t;
        return Status::InvalidArgument("unknown tag '" + tag + "'; the run's schema has: " + known);
      }
      int grp = schema.group_of()[c];
      if (schema.groups()[grp].exclusive && group_named[grp] >= 0 && group_named[grp] != c)
        return Status::InvalidArgument("tags '" + schema.tags()[group_named[grp]] + "' and '" + tag +
                                       "' are both in the exclusive group " + schema.groups()[grp].name);
      group_named[grp] = c;
      named.push_back(c);
    }
  }

  // --by: the group's tags the data has, as rows.
  std::vector<int> by_cols;
  if (!o.by.empty()) {
    if (o.interpolate_to_seed >= 0) return Status::InvalidArgument("--by and --interpolate-to do not combine");
    int col = 0, grp = -1;
    for (size_t k = 0; k < schema.groups().size(); ++k) {
      const auto& g = schema.groups()[k];
      if (g.name == o.by) {
        if (!g.exclusive) return Status::InvalidArgument("--by " + o.by + ": not an exclusive group");
        grp = static_cast<int>(k);
        for (size_t j = 0; j < g.tags.size(); ++j)
          if (config.tag_freq[col + j] > 0) by_cols.push_back(col + static_cast<int>(j));
      }
      col += static_cast<int>(g.tags.size());
    }
    if (grp < 0) {
      std::string known;
      for (const auto& g : schema.groups())
        if (g.exclusive) known += (known.empty() ? "" : ", ") + g.name;
      return Status::InvalidArgument("--by " + o.by + ": no such exclusive group (the run's schema has: " + known + ")");
    }
    if (group_named[grp] >= 0) return Status::InvalidArgument("--by " + o.by + " and --tags both set that group");
    if (by_cols.empty()) return Status::InvalidArgument("--by " + o.by + ": the run's data has none of its tags");
    group_named[grp] = by_cols[0];  // drawn per row below, not from the data
  }

  // Per image: unnamed exclusive groups drawn from the data's frequencies, unnamed
  // binary tags off, named tags on. With --by, image (row r, column c) takes column c's
  // draw and row r's tag of the group.
  std::mt19937_64 rng(o.seed);
  TagSampler sampler(schema, config.tag_freq);
  const int t = schema.size();
  const int draws = o.interpolate_to_seed >= 0 ? 1 : o.n;
  auto drawn = torch::zeros({o.n, t});
  for (int i = 0; i < draws; ++i) {
    auto v = sampler.Sample(rng);
    for (int c = 0; c < t; ++c) {
      int grp = schema.group_of()[c];
      bool keep = schema.groups()[grp].exclusive && group_named[grp] < 0;
      drawn[i][c] = keep ? v[c] : 0.0f;
    }
    for (int c : named) drawn[i][c] = 1.0f;
  }
  torch::Tensor tags = drawn;
  std::vector<std::string> row_labels;
  if (!by_cols.empty()) {
    std::vector<torch::Tensor> rows;
    for (int c : by_cols) {
      auto r = drawn.clone();
      r.select(1, c).fill_(1.0f);
      rows.push_back(r);
      row_labels.push_back(schema.tags()[c]);
    }
    tags = torch::cat(rows);
  }
  torch::Tensor z;
  const int zd = config.gan.z_dim;
  if (!by_cols.empty()) {
    z = torch::randn({o.n, zd}, at::detail::createCPUGenerator(o.seed)).repeat({static_cast<int64_t>(by_cols.size()), 1});
  } else if (o.interpolate_to_seed >= 0) {
    tags = tags[0].unsqueeze(0).repeat({o.n, 1});
    auto za = torch::randn({zd}, at::detail::createCPUGenerator(o.seed));
    auto zb = torch::randn({zd}, at::detail::createCPUGenerator(static_cast<uint64_t>(o.interpolate_to_seed)));
    std::vector<torch::Tensor> frames;
    for (int i = 0; i < o.n; ++i) frames.push_back(Slerp(za, zb, double(i) / (o.n - 1)));
    z = torch::stack(frames);
  } else {
    z = torch::randn({o.n, zd}, at::detail::createCPUGenerator(o.seed));
  }
  // Truncation towards the mean of z (0 for Gaussian noise): psi < 1 trades variety for
  // typical faces; psi = 0 gives every noise the same face for one set of tags.
  z = z * o.truncation;
  torch::NoGradGuard ng;
  auto img = g->forward(z, tags);
  int cols = !by_cols.empty() ? o.n
             : o.columns > 0  ? o.columns
                              : (o.interpolate_to_seed >= 0 ? o.n : static_cast<int>(std::ceil(std::sqrt(double(o.n)))));
  MF_RETURN_IF_ERROR(WriteGrid(img, cols, row_labels, o.out, o.scale));
  return o.out;
}

}  // namespace

Result<std::string> Sample(const Workspace& ws, const SampleOptions& o) {
  MF_RETURN_IF_ERROR(CheckSampleOptions(o));
  RunConfig config;
  MF_ASSIGN_OR_RETURN(Generator g, LoadGenerator(ws, o.run, &config, GeneratorChoice{o.snapshot, o.raw}));
  return SampleWith(g, config, o);
}

struct LoadedSampler::Impl {
  Generator g{nullptr};
  RunConfig config;
};

LoadedSampler::LoadedSampler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LoadedSampler::~LoadedSampler() = default;

Result<std::unique_ptr<LoadedSampler>> LoadedSampler::Load(const Workspace& ws, const SampleOptions& o) {
  auto impl = std::make_unique<Impl>();
  MF_ASSIGN_OR_RETURN(impl->g, LoadGenerator(ws, o.run, &impl->config, GeneratorChoice{o.snapshot, o.raw}));
  return std::unique_ptr<LoadedSampler>(new LoadedSampler(std::move(impl)));
}

Result<std::string> LoadedSampler::Sample(const SampleOptions& o) { return SampleWith(impl_->g, impl_->config, o); }

}  // namespace moeforge::trainer
