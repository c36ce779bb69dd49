// Known published models and where to find them. A model is named by a path, by a
// registry name ("lbpcascade_animeface") or by a file name; it is looked up on the
// search path: every folder in MOEFORGE_MODEL_PATH (colon-separated), then the user's
// cache ($XDG_CACHE_HOME/moeforge/models or ~/.cache/moeforge/models), where
// `moeforge models pull` puts what it downloads.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace moeforge {

struct ModelInfo {
  std::string name;      // registry name
  std::string kind;      // cascade|yunet|tag-table
  std::string file;      // file name on the search path
  std::string url;       // where `models pull` fetches it
  std::string sha256;    // what the fetched bytes must hash to
  int64_t bytes = 0;
  std::string licence;
  std::string note;
};

// The models moeforge knows by name.
const std::vector<ModelInfo>& KnownModels();
const ModelInfo* FindKnownModel(const std::string& name);

// The folders searched, in order.
std::vector<std::string> ModelSearchPath();
// The folder `models pull` writes to.
std::string ModelCacheDir();

// A path to an existing file for `name_or_path`: the path itself when it exists, else the
// registry name's file or the bare file name on the search path. NotFound names the
// folders searched and what to do. A registry model (by name or file name) found on the
// search path is used only when its SHA-256 is the registry's: a copy that does not match
// is passed over with a warning on stderr, and when no copy matches the result is Corrupt,
// naming each rejected file and its hash. An explicit path is the user's choice and is
// not checked.
Result<std::string> ResolveModel(const std::string& name_or_path);

}  // namespace moeforge
