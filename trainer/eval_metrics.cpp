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

nlohmann::json LabelFidelity(const TagSchema& schema, const TagSchema& judge_schema,
                             const std::vector<float>& judge_thresholds, const torch::Tensor& judge_probs,
                             const torch::Tensor& asked) {
  const int t = schema.size();
  const int64_t n = asked.size(0);
  std::vector<int> col(t, -1);
  for (int c = 0; c < t; ++c) col[c] = judge_schema.IndexOf(schema.tags()[c]);
  std::vector<float> thr(t, 0.5f);
  for (int c = 0; c < t; ++c)
    if (col[c] >= 0 && col[c] < static_cast<int>(judge_thresholds.size())) thr[c] = judge_thresholds[col[c]];
  auto p = judge_probs.to(torch::kFloat).contiguous();
  auto q = asked.to(torch::kFloat).contiguous();
  auto pa = p.accessor<float, 2>();
  auto qa = q.accessor<float, 2>();
  std::vector<std::vector<bool>> decided(n);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<float> s(t, 0.0f);
    for (int c = 0; c < t; ++c) s[c] = col[c] >= 0 ? pa[i][col[c]] : 0.0f;
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
      for (int64_t i = 0; i < n; ++i) {
        if (grp.exclusive) {
          int want = -1;
          for (int c = start; c < start + k; ++c)
            if (qa[i][c] > 0.5f) want = c;
          hits += want >= 0 && decided[i][want];
          total += 1;
        } else {
          for (int c = start; c < start + k; ++c) {
            hits += decided[i][c] == (qa[i][c] > 0.5f);
            total += 1;
          }
        }
      }
      fidelity[grp.name] = total > 0 ? hits / total : 0.0;
    }
    start += k;
  }
  return fidelity;
}

}  // namespace moeforge::trainer
