// What the tag stage needs from a tagger, whatever its format: provenance (name, model
// SHA-256, parameters), the schema it scores, and batched scoring of BGR crops. Private
// to tagger/.
#pragma once

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "core/status.h"
#include "core/tag_schema.h"

namespace moeforge::tagger {

// A schema column the tagger's vocabulary has no word for.
constexpr float kNoScore = std::numeric_limits<float>::quiet_NaN();

class TaggerBackend {
 public:
  virtual ~TaggerBackend() = default;
  virtual std::string name() const = 0;          // "builtin:demo", "wd14:wd-v1-4-convnext"
  virtual std::string model_sha256() const = 0;  // of the weights (and vocabulary)
  virtual nlohmann::json params() const = 0;     // what changes the scores or decisions
  virtual const TagSchema& schema() const = 0;
  virtual std::vector<float> thresholds() const = 0;  // per schema tag
  // One row of per-schema-tag scores in [0, 1] per crop; kNoScore where unknown.
  // Callers serialise calls on one backend.
  virtual Result<std::vector<std::vector<float>>> Score(const std::vector<cv::Mat>& bgr) = 0;
  // How many crops one Score call should get.
  virtual int preferred_batch() const { return 64; }
};

// "builtin:MODEL" | "wd14:PATH" | "i2v:PATH". `schema` ("" = default) is the schema
// external taggers map their vocabulary onto (the built-in tagger carries its own).
Result<std::unique_ptr<TaggerBackend>> OpenBuiltinTagger(const std::string& path);
Result<std::unique_ptr<TaggerBackend>> OpenWd14Tagger(const std::string& path, const TagSchema& schema);
Result<std::unique_ptr<TaggerBackend>> OpenI2vTagger(const std::string& path, const TagSchema& schema);
Result<std::unique_ptr<TaggerBackend>> OpenTagger(const std::string& spec, const std::string& schema = "");

// Sets the intra-op threads of the built-in backend's LibTorch (0 = all cores):
// Debian's libtorch starts with one.
void SetTorchThreads(int threads);

// Maps a vocabulary (Danbooru-style names, '_' or ' ' between words) onto schema
// columns: result[c] is the vocabulary index for column c, or -1.
std::vector<int> MapVocabulary(const TagSchema& schema, const std::vector<std::string>& vocab);

}  // namespace moeforge::tagger
