// DecodePngGrey against cv::imdecode(IMREAD_GRAYSCALE): byte-identical grey images for
// every colour type and every filter type it takes, and a refusal (nullopt, so the caller
// falls back to OpenCV) for everything outside its fast path or damaged.
#include <gtest/gtest.h>

#include <libdeflate.h>

#include <random>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "crawler/near_dup.h"
#include "crawler/png_grey.h"
#include "demo_booru/render.h"

namespace moeforge::crawler {
namespace {

cv::Mat OpenCvGrey(const std::string& bytes) {
  cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
  return cv::imdecode(buf, cv::IMREAD_GRAYSCALE);
}

void ExpectSameAsOpenCv(const std::string& png, const std::string& what) {
  std::optional<cv::Mat> ours = DecodePngGrey(png);
  ASSERT_TRUE(ours.has_value()) << what << ": not taken by the fast path";
  cv::Mat ref = OpenCvGrey(png);
  ASSERT_FALSE(ref.empty()) << what;
  ASSERT_EQ(ours->size(), ref.size()) << what;
  EXPECT_EQ(cv::countNonZero(*ours != ref), 0) << what << ": grey levels differ from libpng's";
}

std::string Encode(const cv::Mat& img) {
  std::vector<uchar> buf;
  EXPECT_TRUE(cv::imencode(".png", img, buf));
  return std::string(buf.begin(), buf.end());
}

// A PNG written by hand, so the test controls what libpng's encoder never varies: the
// filter type of each row (cycled through all five), palette images and ancillary chunks.
struct Chunk {
  std::string type, data;
};
std::string Be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
std::string ChunkBytes(const Chunk& c) {
  std::string td = c.type + c.data;
  return Be32(static_cast<uint32_t>(c.data.size())) + td + Be32(libdeflate_crc32(0, td.data(), td.size()));
}
int PaethPredict(int a, int b, int c) {
  int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}
// `pixels`: rows of width*channels samples. Row y gets filter filters[y % size], or y % 5.
std::string HandPng(int width, int height, int color_type, int channels, const std::vector<uint8_t>& pixels,
                    const std::vector<Chunk>& extra_before_idat = {}, const std::string& palette = "",
                    const std::vector<int>& filters = {}) {
  const size_t stride = static_cast<size_t>(width) * channels;
  std::string raw;
  std::vector<uint8_t> zero(stride, 0);
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = pixels.data() + y * stride;
    const uint8_t* prev = y ? row - stride : zero.data();
    int f = filters.empty() ? y % 5 : filters[static_cast<size_t>(y) % filters.size()];
    raw.push_back(static_cast<char>(f));
    for (size_t i = 0; i < stride; ++i) {
      int a = i >= static_cast<size_t>(channels) ? row[i - channels] : 0;
      int b = prev[i];
      int c = i >= static_cast<size_t>(channels) ? prev[i - channels] : 0;
      int pred = f == 0 ? 0 : f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : PaethPredict(a, b, c);
      raw.push_back(static_cast<char>(row[i] - pred));
    }
  }
  libdeflate_compressor* comp = libdeflate_alloc_compressor(6);
  std::string z(libdeflate_zlib_compress_bound(comp, raw.size()), '\0');
  z.resize(libdeflate_zlib_compress(comp, raw.data(), raw.size(), z.data(), z.size()));
  libdeflate_free_compressor(comp);
  std::string ihdr = Be32(static_cast<uint32_t>(width)) + Be32(static_cast<uint32_t>(height));
  ihdr += std::string{8, static_cast<char>(color_type), 0, 0, 0};
  std::string out = "\x89PNG\r\n\x1a\n";
  out += ChunkBytes({"IHDR", ihdr});
  for (const Chunk& c : extra_before_idat) out += ChunkBytes(c);
  if (!palette.empty()) out += ChunkBytes({"PLTE", palette});
  // Two IDAT chunks: the stream may be split anywhere.
  out += ChunkBytes({"IDAT", z.substr(0, z.size() / 3)});
  out += ChunkBytes({"IDAT", z.substr(z.size() / 3)});
  out += ChunkBytes({"IEND", ""});
  return out;
}

std::vector<uint8_t> RandomSamples(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  // Smooth-ish data with noise, so every filter meets carries and small differences.
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i * 7 / 5) + (rng() % 9));
  // Grey pixels (r == g == b) take libpng's pass-through branch: include some.
  for (size_t i = 0; i + 3 <= n; i += 29) v[i + 1] = v[i + 2] = v[i];
  return v;
}

TEST(PngGrey, MatchesOpenCvOnDemoIllustrations) {
  int pngs = 0;
  for (int64_t id = 1; pngs < 12 && id < 200; ++id) {
    demo::Illustration ill = demo::RenderPost(5, id);
    if (ill.plan.file_ext != "png" || ill.encoded.empty()) continue;
    ++pngs;
    ExpectSameAsOpenCv(ill.encoded, "demo post " + std::to_string(id));
    auto fast = DHashOfEncoded(ill.encoded);
    ASSERT_TRUE(fast.ok());
    EXPECT_EQ(*fast, DHash(OpenCvGrey(ill.encoded))) << id;
  }
  EXPECT_EQ(pngs, 12);
}

TEST(PngGrey, MatchesOpenCvForEveryColourTypeAndFilter) {
  cv::Mat bgr(37, 53, CV_8UC3);
  cv::randu(bgr, 0, 256);
  cv::GaussianBlur(bgr, bgr, cv::Size(5, 5), 0);
  cv::Mat alpha(bgr.rows, bgr.cols, CV_8UC1), bgra, grey;
  cv::randu(alpha, 0, 256);
  std::vector<cv::Mat> planes;
  cv::split(bgr, planes);
  planes.push_back(alpha);
  cv::merge(planes, bgra);
  cv::cvtColor(bgr, grey, cv::COLOR_BGR2GRAY);
  ExpectSameAsOpenCv(Encode(bgr), "opencv rgb");
  ExpectSameAsOpenCv(Encode(bgra), "opencv rgba");
  ExpectSameAsOpenCv(Encode(grey), "opencv grey");

  const int w = 41, h = 23;
  ExpectSameAsOpenCv(HandPng(w, h, 0, 1, RandomSamples(w * h, 1)), "grey, filters 0-4");
  ExpectSameAsOpenCv(HandPng(w, h, 4, 2, RandomSamples(w * h * 2, 2)), "grey+alpha, filters 0-4");
  ExpectSameAsOpenCv(HandPng(w, h, 2, 3, RandomSamples(w * h * 3, 3)), "rgb, filters 0-4");
  ExpectSameAsOpenCv(HandPng(w, h, 6, 4, RandomSamples(w * h * 4, 4)), "rgba, filters 0-4");
  std::vector<uint8_t> idx = RandomSamples(w * h, 5);
  for (auto& i : idx) i = static_cast<uint8_t>(i % 200);
  std::vector<uint8_t> pal = RandomSamples(200 * 3, 6);
  ExpectSameAsOpenCv(HandPng(w, h, 3, 1, idx, {}, std::string(pal.begin(), pal.end())), "palette, filters 0-4");
  // Ancillary chunks that do not change pixels are skipped.
  ExpectSameAsOpenCv(HandPng(w, h, 2, 3, RandomSamples(w * h * 3, 7), {{"tEXt", std::string("Comment\0hi", 10)}}),
                     "rgb with tEXt");
}

// Rows are reconstructed two at a time (the lower one a pixel behind), and runs of four
// Paeth rows four at a time, for grey, grey+alpha, RGB and RGBA: every ordered pair of
// filter types, Paeth runs broken at each offset, heights that leave one to three rows
// over, one- to three-pixel widths.
TEST(PngGrey, MatchesOpenCvForEveryPairOfRowFiltersAndPaethRuns) {
  std::vector<int> pairs;
  for (int upper = 0; upper < 5; ++upper) {
    for (int lower = 0; lower < 5; ++lower) {
      pairs.push_back(upper);
      pairs.push_back(lower);
    }
  }
  const std::vector<int> paeth_runs = {4, 4, 4, 4, 4, 4, 4, 4, 4, 1, 4, 4, 4, 4, 2, 4, 4, 4, 4, 4, 3, 4, 4, 0};
  const std::vector<int>* sequences[] = {&pairs, &paeth_runs};
  for (const std::vector<int>* filters : sequences) {
    for (int channels : {1, 2, 3, 4}) {
      const int color_type = channels == 1 ? 0 : channels == 2 ? 4 : channels == 3 ? 2 : 6;
      for (int w : {1, 2, 3, 17}) {
        for (int h : {1, 2, 4, 5, 7, 51}) {
          std::string what = std::to_string(channels) + " channels, " + std::to_string(w) + "x" + std::to_string(h) +
                             (filters == &pairs ? ", filter pairs" : ", Paeth runs");
          ExpectSameAsOpenCv(
              HandPng(w, h, color_type, channels,
                      RandomSamples(static_cast<size_t>(w * h * channels), static_cast<uint32_t>(w * h)), {}, "",
                      *filters),
              what);
        }
      }
    }
  }
}

TEST(PngGrey, LeavesEverythingElseToOpenCv) {
  const int w = 16, h = 9;
  std::string good = HandPng(w, h, 2, 3, RandomSamples(w * h * 3, 8));
  ASSERT_TRUE(DecodePngGrey(good).has_value());
  // libpng would convert these in linear light.
  EXPECT_FALSE(DecodePngGrey(HandPng(w, h, 2, 3, RandomSamples(w * h * 3, 8), {{"gAMA", Be32(45455)}})));
  EXPECT_FALSE(DecodePngGrey(HandPng(w, h, 2, 3, RandomSamples(w * h * 3, 8), {{"sRGB", std::string(1, '\0')}})));
  // 16-bit samples.
  cv::Mat deep(h, w, CV_16UC3, cv::Scalar(1000, 20000, 65000));
  EXPECT_FALSE(DecodePngGrey(Encode(deep)));
  // Damage: a flipped byte in pixel data (chunk CRC), a truncation, a non-PNG.
  std::string flipped = good;
  flipped[flipped.size() - 20] ^= 0x40;
  EXPECT_FALSE(DecodePngGrey(flipped));
  EXPECT_FALSE(DecodePngGrey(good.substr(0, good.size() - 15)));
  EXPECT_FALSE(DecodePngGrey("GIF89a not a png at all, long enough to pass the size check"));
  // A PNG whose IDAT CRCs are right but whose zlib stream is not: refused, and the
  // fallback (OpenCV) then calls it undecodable, as before.
  std::vector<uint8_t> samples = RandomSamples(w * h * 3, 9);
  std::string bad = HandPng(w, h, 2, 3, samples);
  size_t idat = bad.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  uint32_t len = static_cast<uint8_t>(bad[idat - 1]) | static_cast<uint8_t>(bad[idat - 2]) << 8;
  bad[idat + 4 + 2] ^= 0x7f;  // inside the deflate stream, past the zlib header
  std::string td = bad.substr(idat, 4 + len);
  uint32_t crc = libdeflate_crc32(0, td.data(), td.size());
  for (int i = 0; i < 4; ++i) bad[idat + 4 + len + i] = static_cast<char>(crc >> (24 - 8 * i));
  EXPECT_FALSE(DecodePngGrey(bad));
  EXPECT_FALSE(DHashOfEncoded(bad).ok());
}

}  // namespace
}  // namespace moeforge::crawler
