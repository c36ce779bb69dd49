// The built-in tagger: a small LibTorch CNN (conv blocks with BatchNorm, global average
// pool, one logit per schema tag) and its model file. The one file carries weights,
// schema TOML, per-tag thresholds and input size, and its SHA-256 is the tagger's
// provenance. The trainer's evaluation uses Logits() for label fidelity and Features()
// for Frechet distance and precision/recall. Only tagger/builtin/ includes torch headers.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "core/status.h"
#include "core/tag_schema.h"

namespace moeforge::tagger {

struct TaggerNetOptions {
  int num_tags = 34;
  int width = 16;    // channels of the first block; doubles in each of the next blocks (max 8x)
  int blocks = 4;    // conv-BN-ReLU x2 + 2x2 max-pool each
  // The global pool before the head: "avg" (files from before it was a choice), or
  // "avgmax", average and max concatenated, so a small local feature (a ribbon, a blush)
  // is not averaged away over the whole crop.
  std::string pool = "avgmax";
};

// x: N x 3 x S x S, RGB in [-1, 1]. Outputs N x T logits; features are the N x F
// globally pooled activations before the last linear layer (F doubles with "avgmax").
struct TaggerNetImpl : torch::nn::Module {
  explicit TaggerNetImpl(const TaggerNetOptions& o);
  torch::Tensor features(const torch::Tensor& x);
  torch::Tensor forward(const torch::Tensor& x);
  TaggerNetOptions opts;
  torch::nn::Sequential body{nullptr};
  torch::nn::Dropout drop{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(TaggerNet);

class BuiltinTagger {
 public:
  // Reads a model file written by Save (or TrainTagger). NotFound / Corrupt on failure.
  static Result<std::shared_ptr<BuiltinTagger>> Load(const std::string& path);
  // Builds a tagger around a network (for training); sha256() is empty until Save.
  BuiltinTagger(TagSchema schema, TaggerNetOptions net_opts, int input_size);

  // Writes the model file atomically and sets sha256() to the file's hash.
  Status Save(const std::string& path);

  const TagSchema& schema() const { return schema_; }
  const std::vector<float>& thresholds() const { return thresholds_; }
  void set_thresholds(std::vector<float> t) { thresholds_ = std::move(t); }
  // Logits() averages the crop's and its mirror image's (the tags are all mirror
  // symmetric: a ribbon on the left is a ribbon). Recorded in the model file, so its
  // thresholds are used as they were calibrated; files from before read as false.
  bool flip_average() const { return flip_average_; }
  void set_flip_average(bool on) { flip_average_ = on; }
  int input_size() const { return input_size_; }
  const TaggerNetOptions& net_options() const { return net_opts_; }
  TaggerNet& net() { return net_; }
  // SHA-256 of the model file (the provenance); "" for an unsaved model.
  const std::string& sha256() const { return sha256_; }

  // Eval-mode forward passes, no grad. x: N x 3 x S x S float RGB in [-1, 1]; other
  // sizes are resized (bilinear) to input_size(). Logits (and so Probabilities) of a
  // flip_average() model are the mean of x's and its mirror's; Features are x's alone.
  torch::Tensor Logits(const torch::Tensor& x);
  torch::Tensor Features(const torch::Tensor& x);
  // N x T probabilities: sigmoid for binary tags, softmax within exclusive groups.
  torch::Tensor Probabilities(const torch::Tensor& x);

  // BGR 8-bit crops -> N x 3 x S x S input tensor (resize, RGB, [-1, 1]).
  torch::Tensor ToInput(const std::vector<cv::Mat>& bgr) const;

 private:
  torch::Tensor Resize(const torch::Tensor& x) const;
  TagSchema schema_;
  TaggerNetOptions net_opts_;
  int input_size_;
  std::vector<float> thresholds_;
  bool flip_average_ = false;
  std::string sha256_;
  TaggerNet net_{nullptr};
};

// Group-aware probabilities from logits (softmax within each exclusive group).
torch::Tensor GroupProbabilities(const TagSchema& schema, const torch::Tensor& logits);

}  // namespace moeforge::tagger
