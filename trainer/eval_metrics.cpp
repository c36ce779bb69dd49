#include "trainer/eval_metrics.h"

namespace moeforge::trainer {

namespace {

torch::Tensor Cov(const torch::Tensor& x) {
  auto c = x - x.mean(0, true);
  return c.t().mm(c) / std::max<int64_t>(1, x.size(0) - 1);
}

// Square root of a symmetric positive semi-definite matrix by eigendecomposition.
torch::Tensor SqrtPsd(const torch::Tensor& m) {
  auto [w, v] = torch::linalg_eigh(m, "L");
  return v.mm(torch::diag(w.clamp_min(0).sqrt())).mm(v.t());
}

// The k-th nearest neighbour distance of each row of x among the other rows.
torch::Tensor KthRadius(const torch::Tensor& x, int k) {
  auto d = torch::cdist(x, x);
  return std::get<0>(d.topk(std::min<int64_t>(k + 1, x.size(0)), 1, /*largest=*/false)).select(1, -1);
}

}  // namespace

double FrechetDistance(const torch::Tensor& a_in, const torch::Tensor& b_in) {
  auto a = a_in.to(torch::kDouble), b = b_in.to(torch::kDouble);
  auto sa = Cov(a), sb = Cov(b);
  auto root_a = SqrtPsd(sa);
  // tr((Sa Sb)^(1/2)) = tr((Sa^(1/2) Sb Sa^(1/2))^(1/2)), the latter symmetric PSD.
  auto m = root_a.mm(sb).mm(root_a);
  auto ev = torch::linalg_eigvalsh(0.5 * (m + m.t()), "L").clamp_min(0);
  double tr_sqrt = ev.sqrt().sum().item<double>();
  double mean_term = (a.mean(0) - b.mean(0)).pow(2).sum().item<double>();
  return mean_term + sa.trace().item<double>() + sb.trace().item<double>() - 2 * tr_sqrt;
}

PrecisionRecallResult PrecisionRecall(const torch::Tensor& real_in, const torch::Tensor& fake_in, int k) {
  auto real = real_in.to(torch::kDouble), fake = fake_in.to(torch::kDouble);
  auto r_real = KthRadius(real, k);  // per real
  auto r_fake = KthRadius(fake, k);  // per fake
  auto d = torch::cdist(fake, real);  // fakes x reals
  PrecisionRecallResult out;
  out.precision = (d <= r_real.unsqueeze(0)).any(1).to(torch::kDouble).mean().item<double>();
  out.recall = (d <= r_fake.unsqueeze(1)).any(0).to(torch::kDouble).mean().item<double>();
  return out;
}

}  // namespace moeforge::trainer
