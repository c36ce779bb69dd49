// Near-duplicate detection: a 64-bit perceptual hash per image and an index that finds,
// among millions of hashes, one within a Hamming distance. The index is multi-index
// hashing (Norouzi et al.): the hash is cut into four 16-bit bands; two hashes within
// distance d <= 7 agree on some band up to one bit (pigeonhole), so a query probes each
// band's exact value and its 16 one-bit neighbours (68 bucket lookups) and checks only
// those candidates, instead of scanning every hash.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <opencv2/core.hpp>

#include "core/status.h"

namespace moeforge::crawler {

// dHash of the image's grey levels: 9x8 area-resized, one bit per horizontal gradient
// sign. Robust to re-encoding and resizing, which is what re-uploads do.
uint64_t DHash(const cv::Mat& image);
// Decodes (at reduced size where the codec allows) and hashes; Corrupt when undecodable.
Result<uint64_t> DHashOfEncoded(const std::string& bytes);
int Hamming(uint64_t a, uint64_t b);

class NearDupIndex {
 public:
  static constexpr int kMaxThreshold = 7;
  // Finds an indexed key within `threshold` (<= kMaxThreshold) of `h`: the nearest one.
  std::optional<std::pair<std::string, int>> Find(uint64_t h, int threshold) const;
  void Add(uint64_t h, const std::string& key);
  // Forgets (h, key), added before; a no-op when it is not indexed.
  void Remove(uint64_t h, const std::string& key);
  // Atomically: returns the match if there is one, else adds (h, key) and returns none.
  std::optional<std::pair<std::string, int>> FindOrAdd(uint64_t h, const std::string& key, int threshold);
  size_t size() const;

 private:
  std::optional<std::pair<std::string, int>> FindLocked(uint64_t h, int threshold) const;
  void AddLocked(uint64_t h, const std::string& key);
  mutable std::mutex mu_;
  std::vector<uint64_t> hashes_;
  std::vector<std::string> keys_;
  size_t live_ = 0;  // indexed entries (removed ones keep their slot)
  std::unordered_map<uint16_t, std::vector<uint32_t>> bands_[4];
};

}  // namespace moeforge::crawler
