// Training the built-in tagger on labelled crops, independent of where they come from
// (the workspace's single-character posts, or a labelled folder for evaluation).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "core/status.h"
#include "core/tag_schema.h"
#include "tagger/builtin/builtin_tagger.h"
#include "tagger/metrics.h"

namespace moeforge::tagger {

struct LabeledCrop {
  cv::Mat bgr;                 // 8UC3, any size (resized to the input size)
  std::vector<float> target;   // 0/1 per schema tag (TagSchema::Encode)
  std::string split_key;       // crops with the same key land on the same side (the post)
  bool binary_known = true;    // false: only exclusive groups are labelled
};

struct TrainCoreOptions {
  int epochs = 12;
  int input_size = 64;
  int batch = 64;
  double lr = 2e-3;
  double weight_decay = 1e-4;
  int width = 16;
  std::string pool = "avgmax";  // avg | avgmax (TaggerNetOptions)
  int blocks = 4;
  double val_fraction = 0.1;
  uint64_t seed = 1;
  bool augment = true;
  // bf16 autocast for the training passes where the CPU has native bf16 (ignored
  // elsewhere); scoring and calibration stay fp32.
  bool bf16 = false;
  bool quiet = false;
};

struct TrainOutcome {
  std::shared_ptr<BuiltinTagger> model;  // thresholds calibrated on validation
  EvalReport val;                        // on the validation split (empty without one)
  int n_train = 0, n_val = 0;
  bool bf16 = false;                     // trained under bf16 autocast
  std::vector<std::string> val_keys;     // the split keys held out
};

// Splits `crops` by split_key (seeded), trains, calibrates thresholds on validation.
// InvalidArgument when there is nothing to train on.
Result<TrainOutcome> TrainOnCrops(const TagSchema& schema, const std::vector<LabeledCrop>& crops,
                                  const TrainCoreOptions& o);

// Scores crops with a model: one row of group-aware probabilities per crop.
std::vector<std::vector<float>> ScoreCrops(BuiltinTagger& model, const std::vector<cv::Mat>& bgr, int batch = 128);

}  // namespace moeforge::tagger
