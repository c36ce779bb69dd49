// Image decoding shared by the crawl (the perceptual hash) and detect: cv::imdecode, plus
// what Debian 12's OpenCV 4.6 does not read.
//   GIF   the first frame, through giflib (OpenCV 4.6 has no GIF decoder): the frame drawn
//         on its logical screen, transparent and uncovered pixels white.
//   APNG  the default image (IDAT), which is what libpng, and so OpenCV, reads of any
//         APNG; the animation chunks (acTL, fcTL, fdAT) are ancillary and skipped.
//   WebP  OpenCV reads it.
//   AVIF  no decoder in this build: MissingDecoder() says what it needs.
#pragma once

#include <cstddef>
#include <string>

#include <opencv2/core.hpp>

namespace moeforge::codecs {

// Decodes `n` bytes with cv::imdecode's `flags` (IMREAD_COLOR, IMREAD_GRAYSCALE, the
// IMREAD_REDUCED_* ones: GIF honours colour or grey, never the reduction). An empty Mat
// when the bytes do not decode; never throws.
cv::Mat Decode(const void* data, size_t n, int flags);

// Why images of `format` (as crawler/image_probe.h names it) cannot be decoded in this
// build, e.g. "no decoder in this build (needs libavif)"; "" when they can.
std::string MissingDecoder(const std::string& format);

}  // namespace moeforge::codecs
