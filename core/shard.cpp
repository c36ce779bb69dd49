#include "core/shard.h"

#include <cstdlib>

namespace moeforge {

Result<Shard> Shard::Parse(const std::string& spec) {
  if (spec.empty()) return Shard{};
  const auto slash = spec.find('/');
  auto bad = [&] { return Status::InvalidArgument("--shard '" + spec + "': expected i/N with 0 <= i < N, e.g. 0/4"); };
  if (slash == std::string::npos || slash == 0 || slash + 1 == spec.size()) return bad();
  char* end = nullptr;
  const std::string a = spec.substr(0, slash), b = spec.substr(slash + 1);
  long i = std::strtol(a.c_str(), &end, 10);
  if (*end != '\0') return bad();
  long n = std::strtol(b.c_str(), &end, 10);
  if (*end != '\0' || n < 1 || n > 1 << 20 || i < 0 || i >= n) return bad();
  return Shard{static_cast<int>(i), static_cast<int>(n)};
}

uint64_t Shard::StableHash(std::string_view key) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  // MurmurHash3's finaliser: FNV's low bits alone split short numeric ids unevenly.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

}  // namespace moeforge
