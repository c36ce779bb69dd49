#include "trainer/output_template.h"

#include <algorithm>
#include <numeric>
#include <vector>

namespace moeforge::trainer {

TemplateFit::TemplateFit(int tags, int resolution, bool use_tags)
    : tags_(tags), resolution_(resolution), use_tags_(use_tags) {
  const int64_t k = 1 + (use_tags ? tags : 0);
  ata_ = torch::zeros({k, k}, torch::kDouble);
  aty_ = torch::zeros({k, int64_t{3} * resolution * resolution}, torch::kDouble);
}

void TemplateFit::Add(const torch::Tensor& images, const torch::Tensor& tags) {
  torch::NoGradGuard ng;
  const int64_t n = images.size(0);
  auto y = torch::atanh(images.to(torch::kDouble).clamp(-kClamp, kClamp)).reshape({n, -1});
  auto a = torch::ones({n, 1}, torch::kDouble);
  if (use_tags_) a = torch::cat({a, tags.to(torch::kDouble)}, 1);
  ata_ += a.t().mm(a);
  aty_ += a.t().mm(y);
  count_ += n;
}

void TemplateFit::AddCache(const ImageCache& cache) {
  const int r = cache.resolution();
  const int64_t chunk = 256;
  std::vector<float> px, tags;
  for (int64_t i = 0; i < cache.size(); i += chunk) {
    const int64_t k = std::min(chunk, cache.size() - i);
    std::vector<int64_t> idx(k);
    std::iota(idx.begin(), idx.end(), i);
    px.resize(k * 3 * r * r);
    tags.resize(k * cache.num_tags());
    for (bool flip : {false, true}) {
      cache.Gather(idx, std::vector<bool>(k, flip), px.data(), tags.data());
      Add(torch::from_blob(px.data(), {k, 3, r, r}, torch::kFloat),
          torch::from_blob(tags.data(), {k, cache.num_tags()}, torch::kFloat));
    }
  }
}

void TemplateFit::Apply(Generator& g, double ridge) const {
  if (!g->out_bias.defined() || count_ == 0) return;
  torch::NoGradGuard ng;
  auto penalty = torch::full({ata_.size(0)}, ridge, torch::kDouble);
  penalty[0] = 0;  // the intercept: the mean face itself
  auto w = torch::linalg::solve(ata_ + torch::diag(penalty), aty_, /*left=*/true);  // (1 + T') x 3RR
  g->out_bias.copy_(w[0].view_as(g->out_bias).to(torch::kFloat));
  if (g->out_tags && use_tags_) g->out_tags->weight.copy_(w.slice(0, 1).t().to(torch::kFloat));
}

}  // namespace moeforge::trainer
