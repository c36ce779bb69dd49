// Distribution metrics in a feature space (private to trainer/): Fréchet distance
// between Gaussian fits, and precision/recall by k-nearest-neighbour balls
// (Kynkäänniemi et al. 2019).
#pragma once

#include <torch/torch.h>

namespace moeforge::trainer {

// ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)); a, b: N x F.
double FrechetDistance(const torch::Tensor& a, const torch::Tensor& b);

struct PrecisionRecallResult {
  double precision = 0;  // share of fakes inside some real's k-NN ball
  double recall = 0;     // share of reals inside some fake's k-NN ball
};
PrecisionRecallResult PrecisionRecall(const torch::Tensor& real, const torch::Tensor& fake, int k);

}  // namespace moeforge::trainer
