// A PNG decoded straight to 8-bit grey for the perceptual hash, with libdeflate for the
// inflate. The crawl hashes every image it stores, and OpenCV's PNG path (libpng + zlib,
// then libpng's rgb_to_gray) costs ~3.7 ms on a 67 KB demo illustration: PNG hashing was
// most of the crawl's CPU. Rows (every colour type but palette) are unfiltered a pixel at a
// time in SSE2 16-bit lanes, two rows in one register (the lower a pixel behind, so its
// upper neighbours are already made), runs of four Paeth rows as two such registers, with
// the grey level taken from the same registers: 2.1 -> 0.95 ms of CPU per demo PNG
// (moeforge-hash-bench --posts 200), of which ~0.35 ms is libdeflate's inflate.
//
// The grey image is byte for byte what cv::imdecode(IMREAD_GRAYSCALE) gives (libpng's
// truncating rgb_to_gray with OpenCV's 0.299/0.587 coefficients, alpha dropped, palette
// expanded), so a hash does not depend on which path made it. Only the common case is
// taken: 8-bit samples, not interlaced, no colour-space chunk (gAMA/sRGB/iCCP/cHRM would
// make libpng convert in linear light), every chunk CRC and the zlib checksum good.
// Anything else returns nullopt and the caller decodes with OpenCV, which then decides
// what is corrupt exactly as before.
#pragma once

#include <optional>
#include <string_view>

#include <opencv2/core.hpp>

namespace moeforge::crawler {

std::optional<cv::Mat> DecodePngGrey(std::string_view png);

}  // namespace moeforge::crawler
