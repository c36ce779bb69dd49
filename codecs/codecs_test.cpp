// The formats Debian's OpenCV 4.6 does not read on its own, on the fixtures that
// scripts/make_format_fixtures.py writes (tests/fixtures/formats/).
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include <opencv2/imgcodecs.hpp>

#include "codecs/decode.h"

namespace moeforge::codecs {
namespace {

std::string Fixture(const std::string& name) {
  std::ifstream in(std::string(MOEFORGE_SOURCE_DIR) + "/tests/fixtures/formats/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const cv::Vec3b kWhite(255, 255, 255), kRed(0, 0, 255), kGreen(0, 255, 0), kBlue(255, 0, 0);

// The first frame, drawn on the logical screen: the interlaced rows land where they belong,
// the transparent pixel and the screen outside the frame are white, and nothing of the
// second (all black) frame shows.
TEST(Codecs, GifFirstFrameOnItsScreen) {
  std::string gif = Fixture("animated.gif");
  cv::Mat m = Decode(gif.data(), gif.size(), cv::IMREAD_COLOR);
  ASSERT_FALSE(m.empty());
  ASSERT_EQ(m.type(), CV_8UC3);
  EXPECT_EQ(m.cols, 20);
  EXPECT_EQ(m.rows, 16);
  const cv::Vec3b by_row[] = {kRed, kGreen, kBlue};
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 16; ++x) {
      if (x == 0 && y == 0) continue;
      ASSERT_EQ(m.at<cv::Vec3b>(2 + y, 2 + x), by_row[y % 3]) << "frame pixel " << x << "," << y;
    }
  EXPECT_EQ(m.at<cv::Vec3b>(2, 2), kWhite) << "the transparent pixel";
  EXPECT_EQ(m.at<cv::Vec3b>(0, 0), kWhite);
  EXPECT_EQ(m.at<cv::Vec3b>(15, 19), kWhite);
  // Grey, as the perceptual hash asks for it (the reduction flags keep the full size).
  cv::Mat g = Decode(gif.data(), gif.size(), cv::IMREAD_REDUCED_GRAYSCALE_2);
  ASSERT_EQ(g.type(), CV_8UC1);
  EXPECT_EQ(g.size(), m.size());
  EXPECT_EQ(g.at<uint8_t>(0, 0), 255);
  EXPECT_EQ(g.at<uint8_t>(2, 3), 76);  // red: 0.299 * 255
}

// A GIF cut short decodes to nothing (corrupt), never to a partial frame or a crash.
TEST(Codecs, TruncatedGifDoesNotDecode) {
  std::string gif = Fixture("animated.gif");
  for (size_t keep : {size_t{6}, size_t{13}, size_t{40}, size_t{120}})
    EXPECT_TRUE(Decode(gif.data(), keep, cv::IMREAD_COLOR).empty()) << keep;
  EXPECT_TRUE(Decode("GIF89a", 6, cv::IMREAD_COLOR).empty());
  EXPECT_TRUE(Decode("", 0, cv::IMREAD_COLOR).empty());
}

// An APNG's default image (here its first frame, red) is what libpng reads; its second
// frame (blue, in fdAT) is not.
TEST(Codecs, ApngReadsTheDefaultImage) {
  std::string png = Fixture("apng.png");
  cv::Mat m = Decode(png.data(), png.size(), cv::IMREAD_COLOR);
  ASSERT_FALSE(m.empty());
  EXPECT_EQ(m.size(), cv::Size(16, 12));
  EXPECT_EQ(m.at<cv::Vec3b>(0, 0), kRed);
  EXPECT_EQ(m.at<cv::Vec3b>(11, 15), kRed);
}

TEST(Codecs, AvifHasNoDecoderAndSaysWhatItNeeds) {
  EXPECT_EQ(MissingDecoder("avif"), "no decoder in this build (needs libavif)");
  for (const char* f : {"png", "jpeg", "gif", "webp", "bmp"}) EXPECT_EQ(MissingDecoder(f), "") << f;
  std::string avif = Fixture("header.avif");
  EXPECT_TRUE(Decode(avif.data(), avif.size(), cv::IMREAD_COLOR).empty());
}

}  // namespace
}  // namespace moeforge::codecs
