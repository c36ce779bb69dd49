// Distribution metrics in a feature space (private to trainer/): Fréchet distance
// between Gaussian fits, and precision/recall by k-nearest-neighbour balls
// (Kynkäänniemi et al. 2019).
#pragma once

#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/tag_schema.h"

namespace moeforge::trainer {

// ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)); a, b: N x F.
double FrechetDistance(const torch::Tensor& a, const torch::Tensor& b);

struct PrecisionRecallResult {
  double precision = 0;  // share of fakes inside some real's k-NN ball
  double recall = 0;     // share of reals inside some fake's k-NN ball
};
PrecisionRecallResult PrecisionRecall(const torch::Tensor& real, const torch::Tensor& fake, int k);

// Label fidelity per tag group of `schema` (the run's): how often the judge's decisions
// match what each image was asked for. judge_probs: n x (judge's tags), the judge's
// group-aware probabilities; asked: n x T, 0/1 in `schema` order. The judge decides as
// it tags (argmax in exclusive groups, its thresholds for binaries); tags are matched by
// name. An exclusive group scores the share of images whose asked tag the judge decided;
// a binary group the share of (image, tag) pairs decided as asked. Groups the judge
// cannot see (a tag it lacks) are left out.
nlohmann::json LabelFidelity(const TagSchema& schema, const TagSchema& judge_schema,
                             const std::vector<float>& judge_thresholds, const torch::Tensor& judge_probs,
                             const torch::Tensor& asked);

}  // namespace moeforge::trainer
