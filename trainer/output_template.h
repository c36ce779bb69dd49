// The generator's output template (GanConfig::output_template): G adds a learned bias
// image ("mean") and a learned linear map from its tag vector to an image ("tags") to its
// output before the tanh. Both start as the least-squares fit of the training images in
// atanh space, so at step 0 G draws the training set's mean face, or the mean face of the
// tags it is asked for (blonde hair, red eyes, ...), and the GAN learns what differs from
// it. On few steps and small data this is the difference between blobs and faces
// (docs/runs/README.md, "Session 8").
#pragma once

#include <torch/torch.h>

#include "trainer/data_cache.h"
#include "trainer/gan.h"

namespace moeforge::trainer {

class TemplateFit {
 public:
  // tags: T; use_tags false fits the bias image alone.
  TemplateFit(int tags, int resolution, bool use_tags);
  // A batch: images N x 3 x R x R in [-1, 1], tags N x T (0/1).
  void Add(const torch::Tensor& images, const torch::Tensor& tags);
  // Every image of the cache, unmirrored and mirrored (training draws each half the time).
  void AddCache(const ImageCache& cache);
  int64_t count() const { return count_; }
  // Solves the ridge least squares (the intercept unpenalised) and sets G's out_bias and
  // out_tags; a G without a template is left as it is. `ridge` keeps a tag no training
  // face has (an all-zero column) at weight 0.
  void Apply(Generator& g, double ridge = 1.0) const;

 private:
  // Pixel values are clamped to +-kClamp before the atanh, so the targets stay finite and
  // the tanh's gradient at the start does not vanish.
  static constexpr double kClamp = 0.95;
  int tags_, resolution_;
  bool use_tags_;
  int64_t count_ = 0;
  torch::Tensor ata_;  // (1 + T') x (1 + T'), double: [1, tags]^T [1, tags]
  torch::Tensor aty_;  // (1 + T') x 3RR, double: [1, tags]^T atanh(images)
};

}  // namespace moeforge::trainer
