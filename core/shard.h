// `--shard i/N`: which part of a stage's work this machine does. Work is split by a
// stable hash of its identity (a post's remote id, an image's SHA-256), so every machine
// agrees without talking, and a rerun takes the same part. `moeforge merge` folds the
// shards' workspaces back into one (docs/scaling.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace moeforge {

struct Shard {
  int index = 0;  // 0 .. count-1
  int count = 1;  // 1: everything

  // "i/N" with 0 <= i < N; "" is the whole (0/1).
  static Result<Shard> Parse(const std::string& spec);
  // FNV-1a 64 of the key (then MurmurHash3's finaliser), modulo count: the same on every machine and every run.
  static uint64_t StableHash(std::string_view key);
  bool Owns(std::string_view key) const { return count <= 1 || StableHash(key) % uint64_t(count) == uint64_t(index); }
  bool whole() const { return count <= 1; }
  std::string ToString() const { return std::to_string(index) + "/" + std::to_string(count); }
};

}  // namespace moeforge
