// Scoring a tagger against truth: accuracy of each exclusive group (argmax), F1 of each
// binary tag (threshold), a confusion table per exclusive group, and the per-tag
// thresholds that maximise F1 on a calibration set. No torch here: scores are plain
// floats so every backend is scored the same way.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tag_schema.h"

namespace moeforge::tagger {

struct GroupScore {
  std::string group;
  int n = 0;           // faces with exactly one truth tag in the group
  int correct = 0;
  double accuracy() const { return n ? static_cast<double>(correct) / n : 0.0; }
  std::vector<std::vector<int>> confusion;  // [truth][predicted], group tag order
};

struct TagScore {
  std::string tag;
  int tp = 0, fp = 0, fn = 0, tn = 0;
  double f1() const { return tp ? 2.0 * tp / (2.0 * tp + fp + fn) : (fp + fn ? 0.0 : 1.0); }
};

struct EvalReport {
  std::vector<GroupScore> groups;  // exclusive groups
  std::vector<TagScore> tags;      // binary tags
  nlohmann::json ToJson() const;
  // Human-readable lines: group accuracies, binary F1s, confusion tables.
  std::string ToText(const TagSchema& schema) const;
};

// scores[i] and truth[i] have one value per schema tag; truth is 0/1. `known_binary`
// false skips binary tags (for data labelled only with exclusive groups).
EvalReport Evaluate(const TagSchema& schema, const std::vector<std::vector<float>>& scores,
                    const std::vector<std::vector<float>>& truth, const std::vector<float>& thresholds,
                    bool known_binary = true);

// Per-tag threshold maximising F1 on (scores, truth); 0.5 for exclusive-group tags and
// for tags with no positive example.
std::vector<float> CalibrateThresholds(const TagSchema& schema, const std::vector<std::vector<float>>& scores,
                                       const std::vector<std::vector<float>>& truth);

}  // namespace moeforge::tagger
