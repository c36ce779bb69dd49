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

}  // namespace

Result<std::string> Sample(const Workspace& ws, const SampleOptions& o) {
  if (o.n < 1) return Status::InvalidArgument("--n must be >= 1");
  if (o.out.empty()) return Status::InvalidArgument("-o OUT.png is required");
  if (o.interpolate_to_seed >= 0 && o.n < 2) return Status::InvalidArgument("interpolation needs --n >= 2");
  torch::set_num_threads(o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency()));
  RunConfig config;
  MF_ASSIGN_OR_RETURN(Generator g, LoadGenerator(ws, o.run, &config));
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

  // Per image: unnamed exclusive groups drawn from the data's frequencies, unnamed
  // binary tags off, named tags on.
  std::mt19937_64 rng(o.seed);
  TagSampler sampler(schema, config.tag_freq);
  const int t = schema.size();
  const int rows = o.interpolate_to_seed >= 0 ? 1 : o.n;
  auto tags = torch::zeros({o.n, t});
  for (int i = 0; i < rows; ++i) {
    auto v = sampler.Sample(rng);
    for (int c = 0; c < t; ++c) {
      int grp = schema.group_of()[c];
      bool keep = schema.groups()[grp].exclusive && group_named[grp] < 0;
      tags[i][c] = keep ? v[c] : 0.0f;
    }
    for (int c : named) tags[i][c] = 1.0f;
  }
  torch::Tensor z;
  const int zd = config.gan.z_dim;
  if (o.interpolate_to_seed >= 0) {
    tags = tags[0].unsqueeze(0).repeat({o.n, 1});
    auto za = torch::randn({zd}, at::detail::createCPUGenerator(o.seed));
    auto zb = torch::randn({zd}, at::detail::createCPUGenerator(static_cast<uint64_t>(o.interpolate_to_seed)));
    std::vector<torch::Tensor> frames;
    for (int i = 0; i < o.n; ++i) frames.push_back(Slerp(za, zb, double(i) / (o.n - 1)));
    z = torch::stack(frames);
  } else {
    z = torch::randn({o.n, zd}, at::detail::createCPUGenerator(o.seed));
  }
  torch::NoGradGuard ng;
  auto img = g->forward(z, tags);
  int cols = o.columns > 0 ? o.columns
                           : (o.interpolate_to_seed >= 0 ? o.n : static_cast<int>(std::ceil(std::sqrt(double(o.n)))));
  MF_RETURN_IF_ERROR(WriteGrid(img, cols, {}, o.out));
  return o.out;
}

}  // namespace moeforge::trainer
