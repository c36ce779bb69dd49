#include "crawler/png_grey.h"

#include <emmintrin.h>
#include <libdeflate.h>

#include <algorithm>
#include <cstddef>
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

// Sub, Average and Paeth carry a dependency from each pixel to the next. One pixel per
// step in 16-bit SSE2 lanes (one lane per sample) keeps that chain to a few vector
// instructions, where the byte loop pays it per byte: Paeth rows were most of a demo
// PNG's hash cost. The results are byte for byte the byte loop's. Lanes past a pixel's
// samples hold its neighbours' bytes: computed, never stored or read.

// Reads 4 bytes whatever kBpp is (a single load: assembling 3 bytes through memory stalls
// store forwarding); the buffers keep 3 bytes of slack after the last row for it.
inline __m128i LoadPixel(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return _mm_unpacklo_epi8(_mm_cvtsi32_si128(static_cast<int>(v)), _mm_setzero_si128());
}

template <size_t kBpp>
inline void StorePixel(uint8_t* p, __m128i x) {
  uint32_t v = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_packus_epi16(x, x)));
  if (kBpp == 4) {
    std::memcpy(p, &v, 4);
  } else {
    p[0] = static_cast<uint8_t>(v);
    if (kBpp >= 2) p[1] = static_cast<uint8_t>(v >> 8);
    if (kBpp >= 3) p[2] = static_cast<uint8_t>(v >> 16);
  }
}

inline __m128i Abs16(__m128i x) { return _mm_max_epi16(x, _mm_sub_epi16(_mm_setzero_si128(), x)); }

// The grey level of a reconstructed RGB(A) pixel in 16-bit lanes: Grey() below, as two
// pairwise products. Off the reconstruction's dependency chain, so nearly free.
// Grey and grey+alpha pixels (kBpp 1, 2) are their own grey level: lane 0.
template <size_t kBpp>
inline uint8_t GreyOfLanes(__m128i px, __m128i coef) {
  if (kBpp <= 2) return static_cast<uint8_t>(_mm_cvtsi128_si32(px));
  __m128i m = _mm_madd_epi16(px, coef);  // r*kR + g*kG, b*kB + alpha*0
  uint32_t s = static_cast<uint32_t>(_mm_cvtsi128_si32(m)) + static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_srli_si128(m, 4)));
  return static_cast<uint8_t>(s >> 15);
}

// The predictor of filter kType from the left (a), upper (b) and upper-left (c) pixels.
template <int kType>
inline __m128i Predict(__m128i a, __m128i b, __m128i c) {
  if (kType == 0) return _mm_setzero_si128();
  if (kType == 1) return a;
  if (kType == 2) return b;
  if (kType == 3) return _mm_srli_epi16(_mm_add_epi16(a, b), 1);
  __m128i e = _mm_sub_epi16(b, c), d = _mm_sub_epi16(a, c);
  // |p-a| = |b-c|, |p-b| = |a-c|, |p-c| = |a-c + b-c|; ties go to a, then b.
  __m128i pa = Abs16(e), pb = Abs16(d), pc = Abs16(_mm_add_epi16(d, e));
  __m128i not_a = _mm_or_si128(_mm_cmpgt_epi16(pa, pb), _mm_cmpgt_epi16(pa, pc));
  __m128i not_b = _mm_cmpgt_epi16(pb, pc);
  __m128i bc = _mm_or_si128(_mm_and_si128(not_b, c), _mm_andnot_si128(not_b, b));
  return _mm_or_si128(_mm_and_si128(not_a, bc), _mm_andnot_si128(not_a, a));
}

inline __m128i Reconstruct(__m128i raw, __m128i pred) {
  return _mm_and_si128(_mm_add_epi16(raw, pred), _mm_set1_epi16(0xff));
}

// Reconstructs one row of kBpp-byte pixels in place (filter kType) and writes its grey
// levels to `grey`.
template <size_t kBpp, int kType>
void UnfilterPixelRow(uint8_t* row, const uint8_t* prev, size_t width, uint8_t* grey, __m128i coef) {
  __m128i a = _mm_setzero_si128(), c = _mm_setzero_si128();  // left and upper-left, 0 at the edge
  for (size_t x = 0, i = 0; x < width; ++x, i += kBpp) {
    __m128i b = LoadPixel(prev + i);
    a = Reconstruct(LoadPixel(row + i), Predict<kType>(a, b, c));
    c = b;
    if (kType != 0) StorePixel<kBpp>(row + i, a);
    grey[x] = GreyOfLanes<kBpp>(a, coef);
  }
}

// Two pixels in one register: 16-bit lanes 0-3 from `p`, 4-7 from `q`.
inline __m128i LoadTwo(const uint8_t* p, const uint8_t* q) {
  uint32_t u, v;
  std::memcpy(&u, p, 4);
  std::memcpy(&v, q, 4);
  __m128i two = _mm_unpacklo_epi32(_mm_cvtsi32_si128(static_cast<int>(u)), _mm_cvtsi32_si128(static_cast<int>(v)));
  return _mm_unpacklo_epi8(two, _mm_setzero_si128());
}

// The grey levels of the two pixels of a register (as GreyOfLanes).
template <size_t kBpp>
inline void GreyOfTwo(__m128i px, __m128i coef, uint8_t* lo, uint8_t* hi) {
  if (kBpp <= 2) {
    *lo = static_cast<uint8_t>(_mm_cvtsi128_si32(px));
    *hi = static_cast<uint8_t>(_mm_cvtsi128_si32(_mm_srli_si128(px, 8)));
    return;
  }
  __m128i m = _mm_madd_epi16(px, coef);
  __m128i s = _mm_add_epi32(m, _mm_srli_si128(m, 4));
  *lo = static_cast<uint8_t>(static_cast<uint32_t>(_mm_cvtsi128_si32(s)) >> 15);
  *hi = static_cast<uint8_t>(static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_srli_si128(s, 8))) >> 15);
}

// The predictor of filter kT0 in the low pixel of a register and kT1 in the high one.
template <int kT0, int kT1>
inline __m128i PredictTwo(__m128i a, __m128i b, __m128i c) {
  if (kT0 == kT1) return Predict<kT0>(a, b, c);
  const __m128i high = _mm_set_epi32(-1, -1, 0, 0);
  return _mm_or_si128(_mm_andnot_si128(high, Predict<kT0>(a, b, c)), _mm_and_si128(high, Predict<kT1>(a, b, c)));
}

// Two rows at once, the lower one a pixel behind, in one register: step s makes
// [row 0 pixel s | row 1 pixel s-1]. The lower row's upper neighbours are then the upper
// row's pixels of the last steps, already in registers, and one prediction makes two
// pixels. The upper row is not stored back (nothing reads it again), the lower one is (the
// next rows' `prev`).
template <size_t kBpp, int kT0, int kT1>
void UnfilterRowPair(uint8_t* r0, uint8_t* r1, const uint8_t* prev, size_t width, uint8_t* g0, uint8_t* g1,
                        __m128i coef1) {
  const __m128i coef = _mm_unpacklo_epi64(coef1, coef1);
  const __m128i low_half = _mm_set_epi32(0, 0, -1, -1);
  __m128i p = _mm_setzero_si128(), pc = _mm_setzero_si128();  // the last step's pixels, their upper-left
  const ptrdiff_t w = static_cast<ptrdiff_t>(width), bpp = static_cast<ptrdiff_t>(kBpp);
  for (ptrdiff_t s = 0; s <= w; ++s) {
    // Upper neighbours: [prev pixel s | row 0 pixel s-1]. Past the right edge the upper
    // lane is never read by a pixel inside.
    __m128i pb = _mm_unpacklo_epi64(LoadPixel(prev + std::min(s, w - 1) * bpp), p);
    __m128i np = Reconstruct(LoadTwo(r0 + s * bpp, r1 + (s - 1) * bpp), PredictTwo<kT0, kT1>(p, pb, pc));
    pc = pb;
    p = s == 0 ? _mm_and_si128(np, low_half) : np;  // row 1 pixel -1 is the left edge: zero
    uint8_t grey[2];
    GreyOfTwo<kBpp>(p, coef, &grey[0], &grey[1]);
    if (s < w) g0[s] = grey[0];
    if (s >= 1) {
      g1[s - 1] = grey[1];
      StorePixel<kBpp>(r1 + (s - 1) * bpp, _mm_unpackhi_epi64(p, p));
    }
  }
}

// Four Paeth rows at once, the common case of demo and booru PNGs (libpng's encoder picks
// Paeth for most rows of an illustration). Each row runs a pixel behind the one above, so
// that a lower row's upper neighbours are pixels already made, and two rows share one
// register (rows 0-1 in P, rows 2-3 in Q): each step makes four pixels with two Paeth
// predictions on two independent chains. Only row 3 is stored back (the next `prev`).
template <size_t kBpp>
void UnfilterPaethQuad(uint8_t* r0, uint8_t* r1, uint8_t* r2, uint8_t* r3, const uint8_t* prev, size_t width,
                          uint8_t* g0, uint8_t* g1, uint8_t* g2, uint8_t* g3, __m128i coef1) {
  const __m128i coef = _mm_unpacklo_epi64(coef1, coef1);
  const __m128i low_half = _mm_set_epi32(0, 0, -1, -1);
  // Step s makes P = [row 0 pixel s | row 1 pixel s-1] and Q = [row 2 pixel s-2 | row 3
  // pixel s-3]; a lane whose pixel lies left of the image is zero (the left edge), and one
  // right of it is never read by a pixel inside.
  __m128i p = _mm_setzero_si128(), q = _mm_setzero_si128();    // the last step's
  __m128i pc = _mm_setzero_si128(), qc = _mm_setzero_si128();  // upper-left neighbours
  const ptrdiff_t w = static_cast<ptrdiff_t>(width), bpp = static_cast<ptrdiff_t>(kBpp);
  for (ptrdiff_t s = 0; s < w + 3; ++s) {
    // Upper neighbours: P's are [prev pixel s | row 0 pixel s-1], Q's [row 1 pixel s-2 |
    // row 2 pixel s-3]; the lanes of the last step's P and Q.
    __m128i pb = _mm_unpacklo_epi64(LoadPixel(prev + std::min(s, w - 1) * bpp), p);
    __m128i qb = _mm_unpacklo_epi64(_mm_unpackhi_epi64(p, p), q);
    __m128i np = Reconstruct(LoadTwo(r0 + s * bpp, r1 + (s - 1) * bpp), Predict<4>(p, pb, pc));
    __m128i nq = Reconstruct(LoadTwo(r2 + (s - 2) * bpp, r3 + (s - 3) * bpp), Predict<4>(q, qb, qc));
    pc = pb;
    qc = qb;
    if (s < 3) {
      if (s == 0) np = _mm_and_si128(np, low_half);
      nq = s == 2 ? _mm_and_si128(nq, low_half) : _mm_setzero_si128();
    }
    p = np;
    q = nq;
    uint8_t grey[4];
    GreyOfTwo<kBpp>(p, coef, &grey[0], &grey[1]);
    GreyOfTwo<kBpp>(q, coef, &grey[2], &grey[3]);
    if (s < w) g0[s] = grey[0];
    if (s >= 1 && s - 1 < w) g1[s - 1] = grey[1];
    if (s >= 2 && s - 2 < w) g2[s - 2] = grey[2];
    if (s >= 3) {
      g3[s - 3] = grey[3];
      StorePixel<kBpp>(r3 + (s - 3) * bpp, _mm_unpackhi_epi64(q, q));
    }
  }
}

template <size_t kBpp>
bool UnfilterPixelRow(int type, uint8_t* row, const uint8_t* prev, size_t width, uint8_t* grey, __m128i coef) {
  switch (type) {
    case 0: UnfilterPixelRow<kBpp, 0>(row, prev, width, grey, coef); return true;
    case 1: UnfilterPixelRow<kBpp, 1>(row, prev, width, grey, coef); return true;
    case 2: UnfilterPixelRow<kBpp, 2>(row, prev, width, grey, coef); return true;
    case 3: UnfilterPixelRow<kBpp, 3>(row, prev, width, grey, coef); return true;
    case 4: UnfilterPixelRow<kBpp, 4>(row, prev, width, grey, coef); return true;
    default: return false;
  }
}

using RowPairFn = void (*)(uint8_t*, uint8_t*, const uint8_t*, size_t, uint8_t*, uint8_t*, __m128i);

template <size_t kBpp, int kT0>
RowPairFn RowPairFor(int t1) {
  switch (t1) {
    case 0: return &UnfilterRowPair<kBpp, kT0, 0>;
    case 1: return &UnfilterRowPair<kBpp, kT0, 1>;
    case 2: return &UnfilterRowPair<kBpp, kT0, 2>;
    case 3: return &UnfilterRowPair<kBpp, kT0, 3>;
    case 4: return &UnfilterRowPair<kBpp, kT0, 4>;
    default: return nullptr;
  }
}

// nullptr for an unknown filter type.
template <size_t kBpp>
RowPairFn RowPairFor(int t0, int t1) {
  switch (t0) {
    case 0: return RowPairFor<kBpp, 0>(t1);
    case 1: return RowPairFor<kBpp, 1>(t1);
    case 2: return RowPairFor<kBpp, 2>(t1);
    case 3: return RowPairFor<kBpp, 3>(t1);
    case 4: return RowPairFor<kBpp, 4>(t1);
    default: return nullptr;
  }
}

using QuadFn = void (*)(uint8_t*, uint8_t*, uint8_t*, uint8_t*, const uint8_t*, size_t, uint8_t*, uint8_t*, uint8_t*,
                       uint8_t*, __m128i);

QuadFn QuadFor(size_t bpp) {
  switch (bpp) {
    case 1: return &UnfilterPaethQuad<1>;
    case 2: return &UnfilterPaethQuad<2>;
    case 3: return &UnfilterPaethQuad<3>;
    default: return &UnfilterPaethQuad<4>;
  }
}

RowPairFn RowPairFor(size_t bpp, int t0, int t1) {
  switch (bpp) {
    case 1: return RowPairFor<1>(t0, t1);
    case 2: return RowPairFor<2>(t0, t1);
    case 3: return RowPairFor<3>(t0, t1);
    default: return RowPairFor<4>(t0, t1);
  }
}

bool UnfilterPixelRow(size_t bpp, int type, uint8_t* row, const uint8_t* prev, size_t width, uint8_t* grey,
                      __m128i coef) {
  switch (bpp) {
    case 1: return UnfilterPixelRow<1>(type, row, prev, width, grey, coef);
    case 2: return UnfilterPixelRow<2>(type, row, prev, width, grey, coef);
    case 3: return UnfilterPixelRow<3>(type, row, prev, width, grey, coef);
    default: return UnfilterPixelRow<4>(type, row, prev, width, grey, coef);
  }
}

// Undoes one row's PNG filter in place, a byte at a time (palette images). `prev` is the
// reconstructed row above (zeros for the first row). False for an unknown filter type (the
// file is corrupt).
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
// 0.587)): coefficients in 1/32768ths, truncated when set and when applied. libpng passes
// grey pixels (r == g == b) through unchanged; the three coefficients sum to 32768, so the
// formula gives them unchanged too, and without the branch the loop vectorises.
constexpr uint32_t kRed = 29900u * 32768u / 100000u;
constexpr uint32_t kGreen = 58700u * 32768u / 100000u;
constexpr uint32_t kBlue = 32768u - kRed - kGreen;

inline uint8_t Grey(uint32_t r, uint32_t g, uint32_t b) {
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
  // The inflated rows, + LoadPixel's slack (3 bytes), never zero-filled. A thread keeps a buffer of
  // up to 4 MiB (a 1.3 Mpx RGB image) for its next image, so small images do not fault in
  // fresh pages each time; with up to 32 crawl threads that bounds what is kept to 128 MiB.
  constexpr size_t kKeep = 4 << 20;
  thread_local std::unique_ptr<uint8_t[]> kept;
  thread_local size_t kept_size = 0;
  std::unique_ptr<uint8_t[]> own;
  uint8_t* raw = nullptr;
  if (raw_size + 4 <= kKeep) {
    if (kept_size < raw_size + 4) {
      kept.reset(new uint8_t[kKeep]);
      kept_size = kKeep;
    }
    raw = kept.get();
  } else {
    own.reset(new uint8_t[raw_size + 4]);
    raw = own.get();
  }
  size_t got = 0;
  if (libdeflate_zlib_decompress(ThreadDecompressor(), idat.data(), idat.size(), raw, raw_size, &got) !=
          LIBDEFLATE_SUCCESS ||
      got != raw_size)
    return std::nullopt;

  cv::Mat grey(static_cast<int>(height), static_cast<int>(width), CV_8UC1);
  std::vector<uint8_t> zeros(stride + 4, 0);  // + LoadPixel's slack
  const uint8_t* prev = zeros.data();
  const __m128i coef = _mm_setr_epi16(static_cast<int16_t>(kRed), static_cast<int16_t>(kGreen), static_cast<int16_t>(kBlue), 0, 0, 0, 0, 0);
  for (uint32_t y = 0; y < height; ++y) {
    uint8_t* line = raw + static_cast<size_t>(y) * (stride + 1);
    uint8_t* row = line + 1;
    uint8_t* out = grey.ptr<uint8_t>(static_cast<int>(y));
    if (color_type != 3) {
      // Every pixel holds its grey level's inputs (palette indices do not): two or four
      // rows at a time where there are that many left.
      uint8_t* l1 = line + stride + 1;
      if (y + 3 < height) {
        uint8_t* l2 = l1 + stride + 1;
        uint8_t* l3 = l2 + stride + 1;
        if (line[0] == 4 && l1[0] == 4 && l2[0] == 4 && l3[0] == 4) {
          QuadFn quad = QuadFor(bpp);
          quad(row, l1 + 1, l2 + 1, l3 + 1, prev, width, out, grey.ptr<uint8_t>(static_cast<int>(y + 1)),
               grey.ptr<uint8_t>(static_cast<int>(y + 2)), grey.ptr<uint8_t>(static_cast<int>(y + 3)), coef);
          prev = l3 + 1;
          y += 3;
          continue;
        }
      }
      if (y + 1 < height) {
        RowPairFn pair = RowPairFor(bpp, line[0], l1[0]);
        if (!pair) return std::nullopt;
        pair(row, l1 + 1, prev, width, out, grey.ptr<uint8_t>(static_cast<int>(y + 1)), coef);
        prev = l1 + 1;
        ++y;
        continue;
      }
      if (!UnfilterPixelRow(bpp, line[0], row, prev, width, out, coef)) return std::nullopt;
      prev = row;
      continue;
    }
    if (!Unfilter(line[0], row, prev, stride, bpp)) return std::nullopt;
    prev = row;
    switch (color_type) {
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
