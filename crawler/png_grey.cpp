#include "crawler/png_grey.h"

#include <libdeflate.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace moeforge::crawler {

namespace {

uint32_t Be32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 |
         static_cast<uint32_t>(p[3]);
}

struct DecompressorDeleter {
  void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
};

// One decompressor per thread: libdeflate's are not shareable, and allocating one
// (~32 KB of tables) per image would be a measurable share of a small image's cost.
libdeflate_decompressor* ThreadDecompressor() {
  thread_local std::unique_ptr<libdeflate_decompressor, DecompressorDeleter> d(libdeflate_alloc_decompressor());
  return d.get();
}

// The Paeth predictor without p = a + b - c: |p-a| = |b-c|, |p-b| = |a-c|, |p-c| =
// |a+b-2c|. Written branch-free (selects), because its outcome is data-dependent noise.
inline uint8_t Paeth(int a, int b, int c) {
  int pa = std::abs(b - c), pb = std::abs(a - c), pc = std::abs(a + b - 2 * c);
  int bc = pb <= pc ? b : c;
  return static_cast<uint8_t>(pa <= pb && pa <= pc ? a : bc);
}

// Undoes one row's PNG filter in place. `prev` is the reconstructed row above (zeros for
// the first row). False for an unknown filter type (the file is corrupt).
bool Unfilter(int type, uint8_t* row, const uint8_t* prev, size_t n, size_t bpp) {
  switch (type) {
    case 0:
      return true;
    case 1:
      for (size_t i = bpp; i < n; ++i) row[i] = static_cast<uint8_t>(row[i] + row[i - bpp]);
      return true;
    case 2:
      for (size_t i = 0; i < n; ++i) row[i] = static_cast<uint8_t>(row[i] + prev[i]);
      return true;
    case 3:
      for (size_t i = 0; i < bpp; ++i) row[i] = static_cast<uint8_t>(row[i] + (prev[i] >> 1));
      for (size_t i = bpp; i < n; ++i) row[i] = static_cast<uint8_t>(row[i] + ((row[i - bpp] + prev[i]) >> 1));
      return true;
    case 4:
      for (size_t i = 0; i < bpp; ++i) row[i] = static_cast<uint8_t>(row[i] + prev[i]);
      for (size_t i = bpp; i < n; ++i) row[i] = static_cast<uint8_t>(row[i] + Paeth(row[i - bpp], prev[i], prev[i - bpp]));
      return true;
    default:
      return false;
  }
}

// libpng's png_do_rgb_to_gray as OpenCV sets it up (png_set_rgb_to_gray(p, 1, 0.299,
// 0.587)): coefficients in 1/32768ths, truncated when set and when applied, grey pixels
// passed through unchanged.
constexpr uint32_t kRed = 29900u * 32768u / 100000u;
constexpr uint32_t kGreen = 58700u * 32768u / 100000u;
constexpr uint32_t kBlue = 32768u - kRed - kGreen;

inline uint8_t Grey(uint32_t r, uint32_t g, uint32_t b) {
  if (r == g && r == b) return static_cast<uint8_t>(r);
  return static_cast<uint8_t>((kRed * r + kGreen * g + kBlue * b) >> 15);
}

}  // namespace

std::optional<cv::Mat> DecodePngGrey(std::string_view png) {
  static const unsigned char kSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  const auto* p = reinterpret_cast<const unsigned char*>(png.data());
  const size_t n = png.size();
  if (n < 8 + 25 || std::memcmp(p, kSig, 8) != 0) return std::nullopt;

  uint32_t width = 0, height = 0;
  int color_type = -1;
  const unsigned char* palette = nullptr;
  size_t palette_entries = 0;
  std::string idat;
  bool ended = false;
  size_t pos = 8;
  while (pos + 12 <= n) {
    uint32_t len = Be32(p + pos);
    if (len > n - pos - 12) return std::nullopt;
    const unsigned char* type = p + pos + 4;
    const unsigned char* data = p + pos + 8;
    uint32_t crc = Be32(data + len);
    if (static_cast<uint32_t>(libdeflate_crc32(0, type, len + 4)) != crc) return std::nullopt;
    std::string_view t(reinterpret_cast<const char*>(type), 4);
    if (pos == 8) {
      if (t != "IHDR" || len != 13) return std::nullopt;
      width = Be32(data);
      height = Be32(data + 4);
      int depth = data[8];
      color_type = data[9];
      // compression 0, filter method 0, no interlace; 8-bit samples only.
      if (depth != 8 || data[10] != 0 || data[11] != 0 || data[12] != 0) return std::nullopt;
      if (color_type != 0 && color_type != 2 && color_type != 3 && color_type != 4 && color_type != 6)
        return std::nullopt;
    } else if (t == "IDAT") {
      idat.append(reinterpret_cast<const char*>(data), len);
    } else if (t == "PLTE") {
      if (len % 3 != 0 || len == 0 || len > 768) return std::nullopt;
      palette = data;
      palette_entries = len / 3;
    } else if (t == "gAMA" || t == "sRGB" || t == "iCCP" || t == "cHRM") {
      return std::nullopt;  // libpng would convert in linear light
    } else if (t == "IEND") {
      ended = true;
      break;
    } else if (!(type[0] & 0x20)) {
      return std::nullopt;  // an unknown critical chunk: let libpng judge it
    }
    pos += 12 + static_cast<size_t>(len);
  }
  if (!ended || width == 0 || height == 0 || idat.empty()) return std::nullopt;
  if (color_type == 3 && palette == nullptr) return std::nullopt;

  const size_t bpp = color_type == 0 || color_type == 3 ? 1 : color_type == 4 ? 2 : color_type == 2 ? 3 : 4;
  const size_t stride = static_cast<size_t>(width) * bpp;
  const size_t raw_size = static_cast<size_t>(height) * (stride + 1);
  if (stride / bpp != width || raw_size / (stride + 1) != height) return std::nullopt;
  std::vector<uint8_t> raw(raw_size);
  size_t got = 0;
  if (libdeflate_zlib_decompress(ThreadDecompressor(), idat.data(), idat.size(), raw.data(), raw.size(), &got) !=
          LIBDEFLATE_SUCCESS ||
      got != raw_size)
    return std::nullopt;

  cv::Mat grey(static_cast<int>(height), static_cast<int>(width), CV_8UC1);
  std::vector<uint8_t> zeros(stride, 0);
  const uint8_t* prev = zeros.data();
  for (uint32_t y = 0; y < height; ++y) {
    uint8_t* line = raw.data() + static_cast<size_t>(y) * (stride + 1);
    uint8_t* row = line + 1;
    if (!Unfilter(line[0], row, prev, stride, bpp)) return std::nullopt;
    prev = row;
    uint8_t* out = grey.ptr<uint8_t>(static_cast<int>(y));
    switch (color_type) {
      case 0:
        std::memcpy(out, row, width);
        break;
      case 4:
        for (uint32_t x = 0; x < width; ++x) out[x] = row[2 * x];
        break;
      case 2:
        for (uint32_t x = 0; x < width; ++x) out[x] = Grey(row[3 * x], row[3 * x + 1], row[3 * x + 2]);
        break;
      case 6:
        for (uint32_t x = 0; x < width; ++x) out[x] = Grey(row[4 * x], row[4 * x + 1], row[4 * x + 2]);
        break;
      case 3:
        for (uint32_t x = 0; x < width; ++x) {
          size_t i = row[x];
          if (i >= palette_entries) return std::nullopt;  // libpng's call, not ours
          out[x] = Grey(palette[3 * i], palette[3 * i + 1], palette[3 * i + 2]);
        }
        break;
    }
  }
  return grey;
}

}  // namespace moeforge::crawler
