// The tag schema: which attributes a dataset, tagger and generator speak about. It is
// data (TOML), not code; the default is the MakeGirlsMoe 34 (DESIGN.md, "Tag schema").
//
//   name = "makegirlsmoe34"
//   [[group]]
//   name = "hair_color"
//   exclusive = true            # tagged by argmax; false: each tag by threshold
//   tags = ["blonde_hair", ...] # Danbooru tag names
//   [aliases]                   # other source-tag names mapped onto schema tags
//   gray_hair = "grey_hair"
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace moeforge {

struct TagGroup {
  std::string name;
  bool exclusive = false;
  std::vector<std::string> tags;
};

class TagSchema {
 public:
  // The built-in MakeGirlsMoe 34-tag schema.
  static const TagSchema& Default();
  static Result<TagSchema> FromToml(const std::string& text);
  // "makegirlsmoe34" (or "") for the default, otherwise a path to a TOML file.
  static Result<TagSchema> Load(const std::string& name_or_path);

  const std::string& name() const { return name_; }
  int size() const { return static_cast<int>(tags_.size()); }
  // All tags, flattened in group order; index i is column i of every tag vector.
  const std::vector<std::string>& tags() const { return tags_; }
  const std::vector<TagGroup>& groups() const { return groups_; }
  // The group index of each tag column.
  const std::vector<int>& group_of() const { return group_of_; }
  // Column of a tag or alias; -1 when the schema does not know it.
  int IndexOf(const std::string& tag) const;
  // Multi-hot vector (0/1) of the schema tags named by `source_tags` (aliases applied).
  std::vector<float> Encode(const std::vector<std::string>& source_tags) const;
  // Turns per-tag scores into decisions: argmax within exclusive groups (a face always
  // has some hair colour), threshold elsewhere. `thresholds` empty means 0.5 each.
  std::vector<bool> Decide(const std::vector<float>& scores, const std::vector<float>& thresholds = {}) const;
  // Canonical TOML text (round-trips through FromToml) and its SHA-256.
  std::string ToToml() const;
  std::string Hash() const;

 private:
  std::string name_;
  std::vector<TagGroup> groups_;
  std::vector<std::string> tags_;
  std::vector<int> group_of_;
  std::map<std::string, int> index_;  // tags and aliases -> column
  std::map<std::string, std::string> aliases_;
};

}  // namespace moeforge
