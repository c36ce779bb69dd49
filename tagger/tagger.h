// The tag stage (DESIGN.md, issue 6): scores every face crop of a workspace with a
// tagger and stores one face_tags row per (face, schema tag), under the tagger's
// provenance (name + model SHA-256 + parameters), so a second tagger's rows sit beside
// the first's. Also trains the built-in tagger from the source tags of
// single-character posts.
//
// Taggers ("--tagger" spec):
//   builtin:MODEL   a model file written by TrainTagger (LibTorch CNN)
//   wd14:DIR|FILE   WD14 ONNX (model.onnx + selected_tags.csv), through OpenCV dnn
//   i2v:DIR|FILE    Illustration2Vec Caffe (*.prototxt + *.caffemodel + tag_list.json)
// External vocabularies are mapped onto the tag schema by Danbooru tag name.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tag_schema.h"
#include "core/workspace.h"
#include "db/stage_run.h"

namespace moeforge::tagger {

struct TagTrainOptions {
  std::string out;             // model file; "" = WS/models/builtin-tagger.pt
  // The most epochs: training stops earlier when `patience` epochs in a row did not
  // beat the best on validation, and the best epoch's weights are kept. Binary tags
  // need many passes: on a 1,500-post crawl (1,520 faces with the multi-character
  // posts') validation still rose at epoch 40; 16 epochs at batch 16 (more steps, fewer
  // passes) were far worse. With 80 (the cosine schedule spans them) every binary tag
  // but ribbon and ponytail reached F1 0.92-1.00 on an unseen seed (docs/runs, session 7).
  int epochs = 80;
  int patience = 15;
  // Crops are resized to input_size x input_size. 96 with 5 blocks (session 12): with the
  // multi-instance labels it took ribbon F1 0.855 -> 0.927 and long hair 0.894 -> 0.969 on
  // an unseen seed, at 2.2x the CPU of 64 px with 4 (docs/runs/tagger-small-crawl.md). The
  // demo, whose crops are 64 px, reads them at 64 with 4 blocks.
  int input_size = 96;
  int batch = 64;
  int threads = 0;             // 0 = all cores
  double val_fraction = 0.1;   // share of POSTS held out to calibrate thresholds
  double lr = 2e-3;            // AdamW
  int width = 16;              // channels of the first conv block (doubles per block)
  int blocks = 5;              // conv blocks, each halving the side (the receptive field grows with them)
  std::string pool = "avgmax";  // global pool before the head: avg | avgmax
  bool bf16 = true;            // bf16 autocast in training where the CPU has it natively (~3x faster)
  uint64_t seed = 1;
  // Faces of multi-character posts as negatives for every binary tag the post lacks,
  // and with the post's colours as candidates (LabelFromPostTags).
  bool multi_character = true;
  bool augment = true;           // flip, small zoom and shift (never colour)
  double label_smoothing = 0.0;  // binary targets pulled this far towards 0.5
  // A binary tag present on a multi-character post as a multiple-instance label for its
  // faces ("at least one of them has it"): none | noisy-or | max (TrainCoreOptions).
  // "max": on the 1,500-post crawl it took ribbon from F1 0.66 to 0.86 and ponytail 0.88
  // to 0.93 on an unseen seed (noisy-or: 0.78, 0.93); without it a tag of a
  // multi-character post teaches nothing, and ribbon's positives were mostly solo posts'
  // (docs/runs/tagger-small-crawl.md). Posts of one face are unaffected.
  std::string multi_instance = "max";
  // The model averages each crop's logits with its mirror image's (validation too).
  bool flip_average = false;
  std::string schema;          // "" = the default 34; else a TOML file
  std::string detector;        // only faces of this detector name; "" = any
  int max_faces = 0;           // cap on training faces (0 = all); for quick runs
  bool json = false;           // summary as JSON
  bool quiet = false;          // no progress line
};

// Trains the built-in tagger on the face crops of single-character posts (source tag
// `solo`, or exactly one face found in the image) against their source tags mapped
// onto the schema, and on the faces of multi-character posts for what their posts'
// tags say of every character (LabelFromPostTags in builtin/train.h); splits
// train/validation by post; keeps the best epoch on validation; calibrates per-tag
// thresholds on validation (max F1). summary.extra carries model path, sha256, validation accuracy of
// each exclusive group and F1 of each binary tag.
Result<db::StageSummary> TrainTagger(const Workspace& ws, const TagTrainOptions& o);
// The options a trained model depends on (not where it is written, threads or output),
// as given: recorded with the stage run and hashed by `moeforge run` to tell whether the
// model must be trained again. One list for both.
nlohmann::json TagTrainParams(const TagTrainOptions& o);
// Whether a post's source tags speak for the binary tags too: true when any tag falls
// outside the schema's exclusive groups (a booru post's full tag list), false when they
// only name colours (a labelled folder like mlds_extra_96). Unknown binaries are left
// out of the tagger's loss.
bool BinaryTagsKnown(const TagSchema& schema, const std::vector<std::string>& source_tags);

struct TagOptions {
  std::string tagger;              // builtin:MODEL | wd14:PATH | i2v:PATH
  std::vector<float> thresholds;   // one value for every tag, or one per schema tag; {} = the model's
  int batch = 64;
  int threads = 0;                 // 0 = all cores
  std::string schema;              // external taggers: schema to map onto ("" = default)
  std::string detector;            // only faces of this detector name; "" = any
  int limit = 0;                   // at most this many faces this run (0 = all)
  std::string shard;               // "i/N": only faces of images whose SHA-256 hashes to part i (core/shard.h)
  bool json = false;
  bool quiet = false;
};

// Scores every face this tagger (name + model sha + params) has not scored yet and
// writes its rows; resumable. summary.extra: tagger_id, tagger name, model sha256.
Result<db::StageSummary> Tag(const Workspace& ws, const TagOptions& o);

// A tagger as the judge of generated faces (the trainer's `eval`): its decisions and its
// feature space, without torch types in this header.
class FaceJudge {
 public:
  virtual ~FaceJudge() = default;
  virtual const TagSchema& schema() const = 0;
  // Per schema tag: the binary tags' decision thresholds (exclusive groups use argmax).
  virtual const std::vector<float>& thresholds() const = 0;
  virtual const std::string& sha256() const = 0;  // the model file's, its provenance
  // images: n RGB images, planar (3 x size x size each, row-major), values in [-1, 1];
  // any size (resized to the model's input). probs (n x T, group-aware probabilities)
  // and features (n x F, the pooled activations before the head) may each be null.
  virtual void Score(const float* images, int64_t n, int size, std::vector<float>* probs,
                     std::vector<float>* features) = 0;
};

// The built-in tagger's model file (as written by `tag train`) as a judge.
Result<std::unique_ptr<FaceJudge>> LoadJudge(const std::string& model_path);

}  // namespace moeforge::tagger
