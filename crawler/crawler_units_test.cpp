// Unit tests: robots.txt (RFC 9309, the two real files in ../shared/assets/api/robots),
// magic-byte sniffing and header dimensions, the perceptual hash and its multi-index
// table against brute force, and the HTTP client's own refusals.
#include <gtest/gtest.h>

#include <random>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/http.h"
#include "core/workspace.h"
#include "crawler/image_probe.h"
#include "crawler/near_dup.h"
#include "crawler/png_grey.h"
#include "crawler/robots.h"

namespace moeforge::crawler {
namespace {

std::string Asset(const std::string& rel) { return std::string(MOEFORGE_SOURCE_DIR) + "/../shared/assets/" + rel; }

TEST(Robots, Rfc9309Matching) {
  const std::string body =
      "User-agent: *\n"
      "Disallow: /*.json\n"
      "Disallow: /posts/random\n"
      "Allow: /posts\n"
      "Disallow: /private/\n"
      "Allow: /private/ok$\n"
      "\n"
      "User-agent: moeforge\n"
      "User-agent: otherbot\n"
      "Disallow: /only-for-us\n";
  struct Case {
    const char* agent;
    const char* path;
    bool allowed;
  };
  const Case kCases[] = {
      // Our own group replaces `*` entirely.
      {"moeforge", "/posts.json", true},
      {"moeforge", "/only-for-us/x", false},
      {"MoeForge", "/only-for-us", false},  // product token case-insensitive
      {"somebot", "/posts.json?tags=a", false},
      {"somebot", "/posts", true},
      {"somebot", "/posts/random", false},  // longer Disallow beats shorter Allow
      {"somebot", "/posts/12", true},
      {"somebot", "/private/x", false},
      {"somebot", "/private/ok", true},     // $ anchors the end
      {"somebot", "/private/ok2", false},
      {"somebot", "/robots.txt", true},
      {"somebot", "/", true},
  };
  for (const auto& c : kCases)
    EXPECT_EQ(RobotsRules::Parse(body, c.agent).Allowed(c.path), c.allowed) << c.agent << " " << c.path;
}

TEST(Robots, StatusHandling) {
  EXPECT_TRUE(RobotsRules::FromFetch(404, "", "moeforge").Allowed("/x"));   // 4xx: allow all
  EXPECT_FALSE(RobotsRules::FromFetch(503, "", "moeforge").Allowed("/x"));  // 5xx: disallow all
  EXPECT_FALSE(RobotsRules::FromFetch(0, "", "moeforge").Allowed("/x"));    // unreachable
  EXPECT_TRUE(RobotsRules::FromFetch(200, "", "moeforge").Allowed("/x"));   // empty file
}

TEST(Robots, RealFiles) {
  auto dan = ReadFile(Asset("api/robots/danbooru_software_static_robots.txt"));
  auto moe = ReadFile(Asset("api/robots/moebooru_software_default_robots.txt"));
  ASSERT_TRUE(dan.ok() && moe.ok());
  auto d = RobotsRules::Parse(*dan, "moeforge");
  auto m = RobotsRules::Parse(*moe, "moeforge");
  // Whatever the files say, a parse must not allow everything AND disallow everything.
  int dan_allowed = 0, moe_allowed = 0;
  for (const char* p : {"/", "/posts", "/posts.json", "/post", "/post.json", "/data/ab.jpg", "/wiki", "/user"}) {
    dan_allowed += d.Allowed(p);
    moe_allowed += m.Allowed(p);
  }
  EXPECT_GT(dan_allowed + moe_allowed, 0);
  EXPECT_LT(dan_allowed + moe_allowed, 16);
}

TEST(ImageProbe, FormatsAndDimensionsFromHeadersOnly) {
  cv::Mat img(37, 53, CV_8UC3, cv::Scalar(10, 200, 30));
  for (const char* ext : {".png", ".jpg", ".bmp", ".webp"}) {
    std::vector<uchar> buf;
    ASSERT_TRUE(cv::imencode(ext, img, buf)) << ext;
    auto p = ProbeImage(buf.data(), buf.size());
    EXPECT_EQ(p.width, 53) << ext;
    EXPECT_EQ(p.height, 37) << ext;
    EXPECT_FALSE(p.format.empty()) << ext;
  }
  // A GIF header, and only the first 26 bytes of a PNG whose IHDR declares 100000^2.
  const unsigned char gif[] = {'G', 'I', 'F', '8', '9', 'a', 0x10, 0x00, 0x20, 0x00};
  EXPECT_EQ(ProbeImage(gif, sizeof gif).format, "gif");
  EXPECT_EQ(ProbeImage(gif, sizeof gif).height, 32);
  unsigned char png[26] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                           0x00, 0x01, 0x86, 0xA0, 0x00, 0x01, 0x86, 0xA0, 8, 2};
  auto big = ProbeImage(png, sizeof png);
  EXPECT_EQ(big.format, "png");
  EXPECT_EQ(big.width * big.height, 10'000'000'000LL);
  // AVIF by its ftyp brand (major or compatible); another ISO-BMFF file (MP4) is no image.
  auto avif = ReadFile(std::string(MOEFORGE_SOURCE_DIR) + "/tests/fixtures/formats/header.avif");
  ASSERT_TRUE(avif.ok());
  EXPECT_EQ(ProbeImage(avif->data(), avif->size()).format, "avif");
  const unsigned char compat[] = {0, 0, 0, 0x18, 'f', 't', 'y', 'p', 'm', 'i', 'f', '1', 0, 0, 0, 0,
                                  'm', 'i', 'f', '1', 'a', 'v', 'i', 'f'};
  EXPECT_EQ(ProbeImage(compat, sizeof compat).format, "avif");
  const unsigned char mp4[] = {0, 0, 0, 0x18, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm', 0, 0, 2, 0,
                               'i', 's', 'o', 'm', 'm', 'p', '4', '1'};
  EXPECT_EQ(ProbeImage(mp4, sizeof mp4).format, "");
  // HTML is no image whatever the Content-Type says.
  std::string html = "<!DOCTYPE html><html>";
  EXPECT_EQ(ProbeImage(html.data(), html.size()).format, "");
}

// The perceptual hash reads a GIF's first frame and an APNG's default image (the PNG fast
// path skips the animation chunks and agrees with libpng).
TEST(NearDup, HashesGifFirstFrameAndApngDefaultImage) {
  const std::string dir = std::string(MOEFORGE_SOURCE_DIR) + "/tests/fixtures/formats/";
  auto gif = ReadFile(dir + "animated.gif");
  ASSERT_TRUE(gif.ok());
  auto hg = DHashOfEncoded(*gif);
  ASSERT_TRUE(hg.ok()) << hg.status().ToString();
  EXPECT_NE(*hg, 0u) << "a blank (all black) second frame would hash to 0";
  EXPECT_FALSE(DHashOfEncoded(gif->substr(0, 120)).ok()) << "a truncated GIF is corrupt";
  auto apng = ReadFile(dir + "apng.png");
  ASSERT_TRUE(apng.ok());
  auto grey = DecodePngGrey(*apng);
  ASSERT_TRUE(grey.has_value()) << "the fast path gave up on an APNG";
  cv::Mat lib = cv::imdecode(cv::Mat(1, static_cast<int>(apng->size()), CV_8U, apng->data()), cv::IMREAD_GRAYSCALE);
  ASSERT_FALSE(lib.empty());
  EXPECT_EQ(cv::norm(*grey, lib, cv::NORM_INF), 0);
  EXPECT_EQ(lib.at<uint8_t>(0, 0), 76);  // the red default image, not the blue frame
}

TEST(NearDup, HashSurvivesReencodingAndResizing) {
  auto bytes = ReadFile(Asset("faces/mlds_extra_96/33431.jpg"));
  ASSERT_TRUE(bytes.ok());
  auto h0 = DHashOfEncoded(*bytes);
  ASSERT_TRUE(h0.ok());
  cv::Mat img = cv::imdecode(cv::Mat(1, static_cast<int>(bytes->size()), CV_8U, bytes->data()), cv::IMREAD_COLOR);
  cv::Mat big;
  cv::resize(img, big, cv::Size(), 3.0, 3.0, cv::INTER_CUBIC);
  std::vector<uchar> png;
  cv::imencode(".png", big, png);
  auto h1 = DHashOfEncoded(std::string(png.begin(), png.end()));
  ASSERT_TRUE(h1.ok());
  EXPECT_LE(Hamming(*h0, *h1), 4);
  auto other = ReadFile(Asset("faces/mlds_extra_96/33433.jpg"));
  auto h2 = DHashOfEncoded(*other);
  EXPECT_GT(Hamming(*h0, *h2), 7);
  EXPECT_FALSE(DHashOfEncoded("not an image").ok());
}

TEST(NearDup, IndexFindsWhatBruteForceFinds) {
  std::mt19937_64 rng(42);
  NearDupIndex idx;
  std::vector<uint64_t> all;
  for (int i = 0; i < 50000; ++i) {
    uint64_t h = rng();
    all.push_back(h);
    idx.Add(h, std::to_string(i));
  }
  for (int q = 0; q < 300; ++q) {
    // Queries near an indexed hash (flip d random bits) and random ones.
    uint64_t h = all[static_cast<size_t>(rng() % all.size())];
    int flips = q % 9;
    for (int k = 0; k < flips; ++k) h ^= 1ull << (rng() % 64);
    if (q % 10 == 9) h = rng();
    for (int thr : {3, 7}) {
      int best = 99;
      for (uint64_t x : all) best = std::min(best, Hamming(x, h));
      auto m = idx.Find(h, thr);
      if (best <= thr) {
        ASSERT_TRUE(m.has_value()) << "query " << q << " thr " << thr << " best " << best;
        EXPECT_EQ(m->second, best);
      } else {
        EXPECT_FALSE(m.has_value()) << "query " << q << " thr " << thr;
      }
    }
  }
}

TEST(HttpClient, RefusesWhatItMustAndParsesRetryAfter) {
  http::Client c;
  http::Request rq;
  rq.url = "file:///etc/passwd";
  auto r = c.Get(rq);
  EXPECT_EQ(r.error, "bad_url");
  EXPECT_TRUE(r.body.empty());
  rq.url = "ftp://127.0.0.1/x";
  EXPECT_EQ(c.Get(rq).error, "bad_url");
  EXPECT_EQ(http::ParseRetryAfter("7", 0), 7);
  EXPECT_EQ(http::ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0), 10);
  EXPECT_LT(http::ParseRetryAfter("soon", 0), 0);
  EXPECT_EQ(http::OriginOf("HTTP://Example.COM/a?b"), "http://example.com:80");
  EXPECT_EQ(http::ResolveUrl("http://h/a/b.html", "../c.png#x"), "http://h/c.png");
  EXPECT_EQ(http::PathAndQuery("http://h:1/p.json?tags=a"), "/p.json?tags=a");
  EXPECT_NE(c.user_agent().find("moeforge/"), std::string::npos);
}

}  // namespace
}  // namespace moeforge::crawler
