// Training the built-in tagger on labelled crops, independent of where they come from
// (the workspace's single-character posts, or a labelled folder for evaluation).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>

#include "core/status.h"
#include "core/tag_schema.h"
#include "tagger/builtin/builtin_tagger.h"
#include "tagger/metrics.h"
#include "tagger/tagger.h"

namespace moeforge::tagger {

struct LabeledCrop {
  cv::Mat bgr;                 // 8UC3, any size (resized to the input size)
  // 0/1 per schema tag. A binary column is the tag's truth where `known` says so. An
  // exclusive group's columns are the tags the face may have: exactly one for a face
  // labelled alone, several for a face of a post that names several (one of them is
  // its own), all or none when the group says nothing about it.
  std::vector<float> target;
  // 0/1 per schema tag: whether a binary column is a label (empty: all are). Exclusive
  // groups ignore it: their `target` says what is known.
  std::vector<float> known;
  std::string split_key;       // crops with the same key land on the same side (the post)
  // Labelled for itself (a single-character post, a labelled file), not through a
  // post's union: only these validate and calibrate. On a face that is not complete, a
  // binary column with target 1 and known 0 says that at least one face of its post
  // (the crops of its split_key) has the tag: a multiple-instance label (TrainCoreOptions::
  // multi_instance).
  bool complete = true;
};

// The labels a face gets from its post's source tags (issue 15: every label the data
// carries). A single-character post's tags are its face's. A multi-character post's
// tags are the union of its characters': a binary tag it lacks is a negative for each
// of its faces, a binary tag it has is left out (whose is it?), and an exclusive
// group's tags it names are the faces' candidates. `binaries_known` false (a folder
// labelled with colours only) leaves every binary out.
LabeledCrop LabelFromPostTags(const TagSchema& schema, const std::vector<std::string>& post_tags,
                              bool single_character, bool binaries_known);

struct TrainCoreOptions {
  // The most epochs; the model kept is the best epoch on validation (early stopping).
  int epochs = 12;
  // Stop when this many epochs in a row did not beat the best (0 = run every epoch).
  int patience = 0;
  int input_size = 64;
  int batch = 64;
  double lr = 2e-3;
  double weight_decay = 1e-4;
  int width = 16;
  std::string pool = "avgmax";  // avg | avgmax (TaggerNetOptions)
  int blocks = 4;
  double val_fraction = 0.1;
  uint64_t seed = 1;
  // Flip, small shifts and scales; never colour (the colour tags are what is learnt).
  bool augment = true;
  // Targets of binary tags pulled this far towards 0.5 (0 = none).
  double label_smoothing = 0.0;
  // What a binary tag present on a multi-character post teaches its faces: "none"
  // (left out), or a multiple-instance label, "at least one of the post's faces has it",
  // through the post's probability "noisy-or" (1 - prod(1 - p_i)) or "max" (max_i p_i).
  // Other than none, a batch holds whole posts (MultiInstanceLoss).
  std::string multi_instance = "none";
  // The model scores a crop and its mirror image and averages (BuiltinTagger::
  // flip_average), in validation and calibration as after.
  bool flip_average = false;
  // bf16 autocast for the training passes where the CPU has native bf16 (ignored
  // elsewhere); scoring and calibration stay fp32.
  bool bf16 = false;
  bool quiet = false;
};

// The training settings of `tag train`'s options (shared by the tag stage and
// moeforge-tag-eval, so the tool trains as the product does).
TrainCoreOptions CoreOptions(const TagTrainOptions& o);

struct TrainOutcome {
  std::shared_ptr<BuiltinTagger> model;  // thresholds calibrated on validation
  EvalReport val;                        // on the validation split (empty without one)
  int n_train = 0, n_val = 0;
  int epochs_run = 0;                    // epochs trained before stopping
  int best_epoch = 0;                    // 1-based epoch whose weights were kept (0: no validation)
  std::vector<double> val_curve;         // validation score after each epoch (ValidationScore)
  bool bf16 = false;                     // trained under bf16 autocast
  std::vector<std::string> val_keys;     // the split keys held out
};

// Splits `crops` by split_key (seeded), trains, calibrates thresholds on validation.
// InvalidArgument when there is nothing to train on.
Result<TrainOutcome> TrainOnCrops(const TagSchema& schema, const std::vector<LabeledCrop>& crops,
                                  const TrainCoreOptions& o);

// What early stopping maximises: the mean of the exclusive groups' accuracies and the
// binary tags' F1 at thresholds calibrated on the same faces (the tagger's own
// decisions once calibrated).
double ValidationScore(const TagSchema& schema, const std::vector<std::vector<float>>& scores,
                       const std::vector<std::vector<float>>& truth, bool binaries_known);

// The multiple-instance term of the binary tags' loss. logits: N x T; bag: N (int64,
// each row's bag in 0..B-1, or -1 for none); positive: N x T 0/1, whether the row's bag
// says "at least one of us has this tag" (every row of a bag says the same). For each
// (bag, tag) so labelled, -log P(bag has the tag), P by `kind` ("noisy-or": 1 - prod(1 -
// sigmoid(z_i)), "max": sigmoid(max z_i)). Returns {sum, count}: each tag's summed loss
// over its labelled bags and how many there were (T each), so the caller counts a bag as
// one labelled face.
std::pair<torch::Tensor, torch::Tensor> MultiInstanceLoss(const torch::Tensor& logits, const torch::Tensor& bag,
                                                          const torch::Tensor& positive, const std::string& kind);

// Scores crops with a model: one row of group-aware probabilities per crop.
std::vector<std::vector<float>> ScoreCrops(BuiltinTagger& model, const std::vector<cv::Mat>& bgr, int batch = 128);

}  // namespace moeforge::tagger
