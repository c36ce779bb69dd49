// NearDupIndex::Remove, which the best-copy rule uses when a better copy replaces a
// group's kept one: a removed hash is never found again, every other one still is, and
// Find still answers what a brute-force scan of the remaining hashes answers.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "crawler/near_dup.h"

namespace moeforge::crawler {
namespace {

TEST(NearDupIndex, RemovedHashesAreNotFoundAndTheOthersStill) {
  std::mt19937_64 rng(7);
  NearDupIndex idx;
  std::vector<uint64_t> hashes;
  for (int i = 0; i < 3000; ++i) {
    // Clusters of near hashes, so that removal leaves near neighbours behind.
    uint64_t h = i % 3 == 0 ? rng() : hashes.back() ^ (uint64_t{1} << (rng() % 64));
    hashes.push_back(h);
    idx.Add(h, std::to_string(i));
  }
  std::vector<bool> live(hashes.size(), true);
  for (size_t i = 0; i < hashes.size(); i += 2) {
    idx.Remove(hashes[i], std::to_string(i));
    live[i] = false;
  }
  idx.Remove(hashes[1], "not a key");  // a key never added: nothing happens
  EXPECT_EQ(idx.size(), hashes.size() / 2);
  for (size_t q = 0; q < hashes.size(); ++q) {
    int best = NearDupIndex::kMaxThreshold + 1;
    for (size_t i = 0; i < hashes.size(); ++i)
      if (live[i]) best = std::min(best, Hamming(hashes[q], hashes[i]));
    auto m = idx.Find(hashes[q], NearDupIndex::kMaxThreshold);
    if (best > NearDupIndex::kMaxThreshold) {
      EXPECT_FALSE(m.has_value()) << q;
      continue;
    }
    ASSERT_TRUE(m.has_value()) << q;
    EXPECT_EQ(m->second, best) << q;
    size_t found = std::stoul(m->first);
    EXPECT_TRUE(live[found]) << q << " found the removed " << found;
  }
}

}  // namespace
}  // namespace moeforge::crawler
