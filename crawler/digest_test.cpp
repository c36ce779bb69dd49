// Md5AndSha256 against OpenSSL: every length across the padding's one-or-two-block edge,
// whole and partial blocks, and files of a crawl's size.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "core/hash.h"
#include "crawler/digest.h"

namespace moeforge::crawler {
namespace {

std::string RandomBytes(std::mt19937& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(Md5Sha256, MatchesOpenSslAtEveryLengthUpTo600) {
  if (!HaveFusedMd5Sha256()) GTEST_SKIP() << "no SHA extensions on this CPU: OpenSSL's path is the one taken";
  std::mt19937 rng(7);
  for (size_t n = 0; n <= 600; ++n) {
    std::string s = RandomBytes(rng, n);
    Md5Sha256 ours = Md5AndSha256Fused(s), ref = Md5AndSha256OpenSsl(s);
    ASSERT_EQ(ours.md5_hex, ref.md5_hex) << n << " bytes";
    ASSERT_EQ(ours.sha256_hex, ref.sha256_hex) << n << " bytes";
  }
}

TEST(Md5Sha256, MatchesOpenSslOnLargeFilesAndKnownValues) {
  std::mt19937 rng(8);
  for (size_t n : {size_t{46000}, size_t{65536}, size_t{1} << 20, size_t{3000001}}) {
    std::string s = RandomBytes(rng, n);
    Md5Sha256 ours = Md5AndSha256(s), ref = Md5AndSha256OpenSsl(s);
    EXPECT_EQ(ours.md5_hex, ref.md5_hex) << n << " bytes";
    EXPECT_EQ(ours.sha256_hex, ref.sha256_hex) << n << " bytes";
    EXPECT_EQ(ours.sha256_hex, Sha256Hex(s)) << n << " bytes";
  }
  Md5Sha256 abc = Md5AndSha256("abc");
  EXPECT_EQ(abc.md5_hex, "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(abc.sha256_hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace moeforge::crawler
