// LBP cascade evaluation with OpenCV 4.6's output (see lbp_cascade.h). References are to
// OpenCV 4.6.0's modules/objdetect/src/cascadedetect.cpp/.hpp and imgproc/src/resize.cpp.
#include "detector/lbp_cascade.h"

#include <immintrin.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <filesystem>
#include <type_traits>

#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

namespace fs = std::filesystem;

namespace moeforge::detector {

namespace {

// Data::read subtracts this from every stage threshold (as floats).
constexpr float kThresholdEps = 1e-5f;
// groupRectangles' eps in detectMultiScale (GROUP_EPS).
constexpr double kGroupEps = 0.2;
constexpr int kSubsetWords = 8;  // 256 LBP codes

#define MF_AVX2 __attribute__((target("avx2")))
#define MF_AVX2_INLINE __attribute__((target("avx2"), always_inline)) inline

bool CpuHasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}

// What the scan kernels read. Weak classifier w (all stages' stumps in order) has the
// 16 integral offsets of its feature's 4x4 block corners at offs[16w] (row-major, as
// OptFeature::setOffsets orders them), its subset at subset[8w], its leaves left[w], right[w].
struct Model {
  const LbpCascade::Stage* stages;
  int nstages;
  const int32_t* offs;
  const uint32_t* subset;      // as in the XML: bit c of word c >> 5 set -> left leaf
  const uint32_t* subset_rev;  // the same 8 words in reverse order (the AVX2 kernel's)
  const float* left;
  const float* right;
};

// The integral image of one scale and the windows OpenCV visits on it: rows y = 0, step,
// ... < rows_end; on each, grid columns k = 0 .. nx - 1 (window x = k * step), where a
// window rejected by stage 0 makes the scan skip the next column.
//
// Layout: with step 1 a row is plain (column c at c). With step 2 only even x are window
// origins, so each row is stored split by column parity, even columns in [0, stride/2) and
// odd ones in [stride/2, stride): window k's column 2k + dx is at
// (dx & 1) * stride/2 + k + (dx >> 1), and adjacent windows read adjacent elements.
// Elements: int32 for the scalar path (OpenCV's CV_32S integral); int16 for the AVX2 path,
// the integral modulo 2^16: a block of w x h pixels sums to at most 255 w h, which fits in
// 15 bits for the blocks we allow there (see Load), so block sums and their comparisons
// come out exact from wrapping 16-bit arithmetic, 16 windows per vector.
template <typename T>
struct Plane {
  const T* data = nullptr;
  int stride = 0;
  int nx = 0;
  int rows_end = 0;
  int step = 1;
};

// ---- Scalar: one window at a time, exactly predictCategoricalStump ----

inline int LbpCode(const int32_t* p, const int32_t* o) {
  // Unsigned: a CV_32S integral of a huge image wraps past 2^31 (in OpenCV too); block
  // sums are small, so the wrapped differences are still exact.
  uint32_t v[16];
  for (int i = 0; i < 16; ++i) v[i] = static_cast<uint32_t>(p[o[i]]);
  auto box = [&](int a, int b, int c, int d) { return static_cast<int32_t>(v[a] - v[b] - v[c] + v[d]); };
  // LBPEvaluator::OptFeature::calc: the 8 blocks around the centre, clockwise from top-left.
  int32_t cval = box(5, 6, 9, 10);
  return (box(0, 1, 4, 5) >= cval ? 128 : 0) | (box(1, 2, 5, 6) >= cval ? 64 : 0) |
         (box(2, 3, 6, 7) >= cval ? 32 : 0) | (box(6, 7, 10, 11) >= cval ? 16 : 0) |
         (box(10, 11, 14, 15) >= cval ? 8 : 0) | (box(9, 10, 13, 14) >= cval ? 4 : 0) |
         (box(8, 9, 12, 13) >= cval ? 2 : 0) | (box(4, 5, 8, 9) >= cval ? 1 : 0);
}

// 1: every stage passed; 0: rejected by stage 0; -s: rejected by stage s (as runAt).
inline int EvalWindow(const Model& m, const int32_t* p) {
  int w = 0;
  for (int si = 0; si < m.nstages; ++si) {
    const LbpCascade::Stage& st = m.stages[si];
    double tmp = 0;  // OpenCV sums the float leaves into a double, in this order
    for (int end = w + st.ntrees; w < end; ++w) {
      int c = LbpCode(p, m.offs + 16 * w);
      const uint32_t* subset = m.subset + kSubsetWords * w;
      tmp += (subset[c >> 5] & (1u << (c & 31))) ? m.left[w] : m.right[w];
    }
    if (tmp < st.threshold) return -si;
  }
  return 1;
}

// Hits are appended as (k, y) pairs.
void ScanScalar(const Model& m, const Plane<int32_t>& pl, std::vector<int>& hits) {
  for (int y = 0; y < pl.rows_end; y += pl.step) {
    const int32_t* row = pl.data + static_cast<size_t>(y) * pl.stride;
    for (int k = 0; k < pl.nx; ++k) {
      int r = EvalWindow(m, row + k);
      if (r > 0) {
        hits.push_back(k);
        hits.push_back(y);
      }
      if (r == 0) ++k;  // CascadeClassifierInvoker: "if (result == 0) x += yStep"
    }
  }
}

// ---- AVX2: 16 adjacent windows per vector ----

// kReplay.v[carry][pass]: which of 8 consecutive grid columns OpenCV evaluates and finds
// passing stage 0 (bits 0-7), given which of them pass stage 0 (`pass`) and whether the
// column before them was a stage-0 reject (`carry`: then the first is skipped); bit 8: the
// same for the column after them. A skipped column's stage-0 result is never used.
struct ReplayTable {
  uint16_t v[2][256];
  ReplayTable() {
    for (int carry = 0; carry < 2; ++carry)
      for (int pass = 0; pass < 256; ++pass) {
        bool skip = carry;
        int alive = 0;
        for (int i = 0; i < 8; ++i) {
          if (skip) {
            skip = false;
            continue;
          }
          if (pass >> i & 1)
            alive |= 1 << i;
          else
            skip = true;
        }
        v[carry][pass] = static_cast<uint16_t>(alive | (skip ? 256 : 0));
      }
  }
};
const ReplayTable kReplay;

// The 16 windows' LBP codes, complemented: bit i set where block i < centre (AVX2 has
// only a greater-than compare), in 16-bit lanes. Block sums share the horizontal
// differences along each of the 4 integral rows the 3x3 grid touches.
MF_AVX2_INLINE __m256i LtCodeAvx2(const int16_t* p, const int32_t* o) {
  // The empty asm pins each row's differences: left alone, the compiler reassociates the
  // block sums into (a + d) - (b + c) and loses the sharing (27 adds instead of 21).
#define MF_LD(i) _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + o[i]))
#define MF_ROW(r, i)                                                                    \
  __m256i h##r##0 = _mm256_sub_epi16(MF_LD(i + 1), MF_LD(i));                           \
  __m256i h##r##1 = _mm256_sub_epi16(MF_LD(i + 2), MF_LD(i + 1));                       \
  __m256i h##r##2 = _mm256_sub_epi16(MF_LD(i + 3), MF_LD(i + 2));                       \
  asm("" : "+x"(h##r##0), "+x"(h##r##1), "+x"(h##r##2))
  MF_ROW(0, 0);
  MF_ROW(1, 4);
  __m256i b00 = _mm256_sub_epi16(h10, h00), b01 = _mm256_sub_epi16(h11, h01), b02 = _mm256_sub_epi16(h12, h02);
  MF_ROW(2, 8);
  __m256i b10 = _mm256_sub_epi16(h20, h10), ctr = _mm256_sub_epi16(h21, h11), b12 = _mm256_sub_epi16(h22, h12);
  MF_ROW(3, 12);
  __m256i b20 = _mm256_sub_epi16(h30, h20), b21 = _mm256_sub_epi16(h31, h21), b22 = _mm256_sub_epi16(h32, h22);
#undef MF_ROW
#undef MF_LD
#define MF_BIT(blk, v) _mm256_and_si256(_mm256_cmpgt_epi16(ctr, blk), _mm256_set1_epi16(v))
  return _mm256_or_si256(_mm256_or_si256(_mm256_or_si256(MF_BIT(b00, 128), MF_BIT(b01, 64)),
                                         _mm256_or_si256(MF_BIT(b02, 32), MF_BIT(b12, 16))),
                         _mm256_or_si256(_mm256_or_si256(MF_BIT(b22, 8), MF_BIT(b21, 4)),
                                         _mm256_or_si256(MF_BIT(b20, 2), MF_BIT(b10, 1))));
#undef MF_BIT
}

// 8 windows' leaves: code = 255 - lt, so code >> 5 = 7 - (lt >> 5) (the reversed subset's
// word lt >> 5) and 31 - (code & 31) = lt & 31: shifting the word left by that puts bit
// code & 31 in the sign bit, which blendv reads.
MF_AVX2_INLINE __m256 LeafAvx2(__m256i lt, __m256i words, __m256 left, __m256 right) {
  __m256i word = _mm256_permutevar8x32_epi32(words, _mm256_srli_epi32(lt, 5));
  __m256i bit = _mm256_sllv_epi32(word, _mm256_and_si256(lt, _mm256_set1_epi32(31)));
  return _mm256_blendv_ps(right, left, _mm256_castsi256_ps(bit));
}

// One window's stage `si` (first weak w) decided the way OpenCV does, in double, on the
// 16-bit integral (wrapping differences, exact for our block sizes).
bool StagePassesExact(const Model& m, int si, int w, const int16_t* p) {
  const LbpCascade::Stage& st = m.stages[si];
  double tmp = 0;
  for (int end = w + st.ntrees; w < end; ++w) {
    const int32_t* o = m.offs + 16 * w;
    uint16_t v[16];
    for (int i = 0; i < 16; ++i) v[i] = static_cast<uint16_t>(p[o[i]]);
    auto box = [&](int a, int b, int c, int d) { return static_cast<int16_t>(v[a] - v[b] - v[c] + v[d]); };
    int16_t cval = box(5, 6, 9, 10);
    int c = (box(0, 1, 4, 5) >= cval ? 128 : 0) | (box(1, 2, 5, 6) >= cval ? 64 : 0) |
            (box(2, 3, 6, 7) >= cval ? 32 : 0) | (box(6, 7, 10, 11) >= cval ? 16 : 0) |
            (box(10, 11, 14, 15) >= cval ? 8 : 0) | (box(9, 10, 13, 14) >= cval ? 4 : 0) |
            (box(8, 9, 12, 13) >= cval ? 2 : 0) | (box(4, 5, 8, 9) >= cval ? 1 : 0);
    const uint32_t* subset = m.subset + kSubsetWords * w;
    tmp += (subset[c >> 5] & (1u << (c & 31))) ? m.left[w] : m.right[w];
  }
  return !(tmp < st.threshold);
}

// Bits 0-15: which of the 16 windows at p pass stage `si` (w: its first weak classifier);
// only the windows in `wanted` count. The leaves are summed in float, 8 windows per
// vector; where a float sum is too close to the threshold to tell what OpenCV's double
// sum does, that window's stage is redone in double (rare: 19 of 88 million stage
// decisions on 120 demo posts).
MF_AVX2_INLINE unsigned StageAvx2(const Model& m, int si, int w, const int16_t* p, unsigned wanted) {
  const LbpCascade::Stage& st = m.stages[si];
  const int w0 = w;
  __m256 acc_lo = _mm256_setzero_ps(), acc_hi = acc_lo;
  for (int end = w + st.ntrees; w < end; ++w) {
    __m256i lt = LtCodeAvx2(p, m.offs + 16 * w);
    __m256i words = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m.subset_rev + kSubsetWords * w));
    __m256 left = _mm256_set1_ps(m.left[w]), right = _mm256_set1_ps(m.right[w]);
    __m256i lt_lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(lt));
    __m256i lt_hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(lt, 1));
    acc_lo = _mm256_add_ps(acc_lo, LeafAvx2(lt_lo, words, left, right));
    acc_hi = _mm256_add_ps(acc_hi, LeafAvx2(lt_hi, words, left, right));
  }
  const __m256 fail_below = _mm256_set1_ps(st.fail_below), pass_from = _mm256_set1_ps(st.pass_from);
  unsigned pass = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(acc_lo, pass_from, _CMP_GE_OQ))) |
                  static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(acc_hi, pass_from, _CMP_GE_OQ))) << 8;
  unsigned fail = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(acc_lo, fail_below, _CMP_LT_OQ))) |
                  static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(acc_hi, fail_below, _CMP_LT_OQ))) << 8;
  for (unsigned unsure = ~(pass | fail) & wanted; unsure; unsure &= unsure - 1) {
    int j = __builtin_ctz(unsure);
    if (StagePassesExact(m, si, w0, p + j)) pass |= 1u << j;
  }
  return pass & wanted;
}

// Each row in blocks of 16 grid columns: stage 0 on all 16, the skip rule replayed on the
// results in scan order (kReplay), then the later stages on the block while any of its
// windows is alive. Columns past nx are computed on padding and masked out.
MF_AVX2 void ScanAvx2(const Model& m, const Plane<int16_t>& pl, std::vector<int>& hits) {
  const int first_w1 = m.stages[0].ntrees;
  for (int y = 0; y < pl.rows_end; y += pl.step) {
    const int16_t* row = pl.data + static_cast<size_t>(y) * pl.stride;
    unsigned carry = 0;
    for (int k0 = 0; k0 < pl.nx; k0 += 16) {
      const int16_t* p = row + k0;
      unsigned valid = pl.nx - k0 >= 16 ? 0xFFFFu : (1u << (pl.nx - k0)) - 1;
      unsigned pass = StageAvx2(m, 0, 0, p, valid);
      unsigned r0 = kReplay.v[carry][pass & 0xFF];
      unsigned r1 = kReplay.v[r0 >> 8][pass >> 8];
      carry = r1 >> 8;
      unsigned alive = ((r0 & 0xFF) | (r1 & 0xFF) << 8) & valid;
      for (int si = 1, w = first_w1; alive && si < m.nstages; w += m.stages[si].ntrees, ++si)
        alive &= StageAvx2(m, si, w, p, alive);
      while (alive) {
        hits.push_back(k0 + __builtin_ctz(alive));
        hits.push_back(y);
        alive &= alive - 1;
      }
    }
  }
}

// ---- Scaled integral images ----
//
// OpenCV builds each scale with cv::resize(INTER_LINEAR_EXACT) then cv::integral. Both are
// integer arithmetic once the resize's weights are known, so we compute the same pixels
// and sums ourselves, fused in one pass per scale and written straight into the scan's
// layout. cv::resize spent ~100 ns per output row and column on its weights (in software
// floating point) and ~0.5 ns per pixel: 2.2 ms for a 0.34 Mpx image's scales, as long as
// half our scan; cv::integral and re-laying its output out cost another 0.9 ms.
//
// The resize (resize.cpp: interpolationLinear, resize_bitExact, hlineResizeCn,
// vlineResize, vlineSet; 8-bit, one channel): along each axis, output v samples the input
// at f = (v + 0.5) * (src / dst) - 0.5, i = floor(f), with weights w1 = round(256 (f - i))
// and w0 = 256 - w1. Each input row is first resized horizontally to
// h = w0 p[i] + w1 p[i + 1] (< 2^16), then two such rows are blended vertically:
// (hA wA + hB wB + 2^15) >> 16. Outputs before the first sample take h = p[0] << 8, those
// past the last input pixel h = p[last] << 8, and rows outside the vertical range
// (h + 128) >> 8; all of these are the same formula with clamped taps and weights (256, 0)
// or (0, 256), which is how they are stored here.

// Keeps the compiler from fusing a * b + c into an FMA: the weights must round like
// OpenCV's software doubles, one operation at a time.
inline double Rounded(double v) {
  asm("" : "+x"(v));
  return v;
}

struct Axis {
  std::vector<int> tap;  // first tap; the second is tap + 1
  std::vector<int32_t> w0, w1;
};

void LinearAxis(int src, int dst, Axis& a) {
  a.tap.resize(dst);
  a.w0.resize(dst);
  a.w1.resize(dst);
  const double scale = 1.0 / (static_cast<double>(dst) / src);  // softdouble::one() / inv_scale
  for (int v = 0; v < dst; ++v) {
    double f = Rounded(Rounded(scale * Rounded(static_cast<double>(v) + 0.5)) - 0.5);
    int i = cvFloor(f);
    if (i >= 0 && i < src - 1) {
      // ufixedpoint16(softdouble): cvRound (to nearest, ties to even) of 256 * fraction;
      // f - i is exact.
      int w1 = cvRound((f - i) * 256.0);
      a.tap[v] = i;
      a.w1[v] = w1;
      a.w0[v] = std::max(256 - w1, 0);
    } else if (i >= 0) {  // past the last input pixel
      a.tap[v] = src - 2;
      a.w0[v] = 0;
      a.w1[v] = 256;
    } else {  // before the first one
      a.tap[v] = 0;
      a.w0[v] = 256;
      a.w1[v] = 0;
    }
  }
}

// cv::resize's INTER_LINEAR_EXACT switches to INTER_AREA for an exact 2x2 reduction
// (hal::resize: "INTER_AREA (fast) is equal to bit exact INTER_LINEAR" there); we leave
// that case to cv::resize itself rather than rely on the claim, and one-pixel inputs,
// which our clamped taps do not cover.
bool LeaveToCvResize(cv::Size src, cv::Size dst) {
  if (src.width < 2 || src.height < 2) return true;
  double sx = 1. / (static_cast<double>(dst.width) / src.width);
  double sy = 1. / (static_cast<double>(dst.height) / src.height);
  int ix = cv::saturate_cast<int>(sx), iy = cv::saturate_cast<int>(sy);
  return std::abs(sx - ix) < DBL_EPSILON && std::abs(sy - iy) < DBL_EPSILON && ix == 2 && iy == 2;
}

// Builds one scale's integral image: row 0 and column 0 are zero, row y + 1 is the prefix
// sum along the row of the column sums of output rows 0..y.
struct IntegralBuilder {
  Axis ax, ay;
  // The AVX2 horizontal pass: groups of up to 8 outputs whose taps lie within 16 input
  // bytes, gathered by one pshufb and weighted by one madd.
  std::vector<int> gx, gn, gbase;  // first output, count, first input byte (-1: done in scalar)
  std::vector<uint8_t> gshuf;      // 16 per group: the (p[i], p[i+1]) byte pairs
  std::vector<int16_t> gw;         // 16 per group: the (w0, w1) pairs
  std::vector<int32_t> hline[2], pix;
  std::vector<uint32_t> colsum;    // scalar path
  std::vector<int16_t> colsum16;   // AVX2 path (modulo 2^16)
  int hrow[2] = {-1, -1};          // which input row each hline holds

  void Plan(cv::Size src, cv::Size dst, bool resize, bool avx2) {
    const size_t padded = static_cast<size_t>(dst.width) + 32;
    for (auto& h : hline) h.assign(padded, 0);
    pix.assign(padded, 0);
    colsum.assign(padded, 0);
    colsum16.assign(padded, 0);
    hrow[0] = hrow[1] = -1;
    gx.clear(), gn.clear(), gbase.clear(), gshuf.clear(), gw.clear();
    if (!resize) return;
    LinearAxis(src.width, dst.width, ax);
    LinearAxis(src.height, dst.height, ay);
    if (!avx2) return;
    for (int x = 0; x < dst.width;) {
      int base = ax.tap[x], n = 1;
      while (n < 8 && x + n < dst.width && ax.tap[x + n] + 1 - base <= 15) ++n;
      gx.push_back(x);
      gn.push_back(n);
      gbase.push_back(base + 16 <= src.width ? base : -1);  // never read past the row's end
      for (int j = 0; j < 8; ++j) {
        bool on = j < n;
        gshuf.push_back(on ? static_cast<uint8_t>(ax.tap[x + j] - base) : 0x80);
        gshuf.push_back(on ? static_cast<uint8_t>(ax.tap[x + j] + 1 - base) : 0x80);
        gw.push_back(on ? static_cast<int16_t>(ax.w0[x + j]) : 0);
        gw.push_back(on ? static_cast<int16_t>(ax.w1[x + j]) : 0);
      }
      x += n;
    }
  }

  // The two horizontally resized input rows output row y blends; a row stays cached
  // while the next output rows still use it.
  template <typename HLine>
  void Rows(const cv::Mat& src, int y, int dst_w, HLine hline_fn, const int32_t* out[2]) {
    for (int k = 0; k < 2; ++k) {
      int r = ay.tap[y] + k;
      int slot = hrow[0] == r ? 0 : hrow[1] == r ? 1 : -1;
      if (slot < 0) {
        slot = hrow[0] == ay.tap[y] + 1 - k ? 1 : 0;  // keep the other row
        hline_fn(*this, src.ptr<uint8_t>(r), hline[slot].data(), dst_w);
        hrow[slot] = r;
      }
      out[k] = hline[slot].data();
    }
  }
};

void HLineScalar(const IntegralBuilder& b, const uint8_t* row, int32_t* h, int dst_w) {
  for (int x = 0; x < dst_w; ++x) {
    const uint8_t* p = row + b.ax.tap[x];
    h[x] = b.ax.w0[x] * p[0] + b.ax.w1[x] * p[1];
  }
}

// The scalar path's integral: CV_32S, as cv::integral.
void BuildIntegralScalar(IntegralBuilder& b, const cv::Mat& grey, cv::Size size, int step, int stride,
                         int32_t* sum) {
  const int w = size.width, half = stride / 2;
  const bool resize = size != grey.size();
  b.Plan(grey.size(), size, resize, false);
  std::fill(sum, sum + stride, 0);
  for (int y = 0; y < size.height; ++y) {
    if (resize) {
      const int32_t* h[2];
      b.Rows(grey, y, w, HLineScalar, h);
      const int32_t wa = b.ay.w0[y], wb = b.ay.w1[y];
      for (int x = 0; x < w; ++x) b.pix[x] = (h[0][x] * wa + h[1][x] * wb + (1 << 15)) >> 16;
    } else {
      const uint8_t* row = grey.ptr<uint8_t>(y);
      for (int x = 0; x < w; ++x) b.pix[x] = row[x];
    }
    int32_t* out = sum + static_cast<size_t>(y + 1) * stride;
    uint32_t run = 0;
    out[0] = 0;
    for (int x = 0; x < w; ++x) {
      b.colsum[x] += static_cast<uint32_t>(b.pix[x]);
      run += b.colsum[x];
      int c = x + 1;
      out[step == 1 ? c : (c & 1) * half + (c >> 1)] = static_cast<int32_t>(run);
    }
  }
}

MF_AVX2 void HLineAvx2(const IntegralBuilder& b, const uint8_t* row, int32_t* h, int dst_w) {
  const int n = static_cast<int>(b.gx.size());
  const int* gx = b.gx.data();
  const int* gbase = b.gbase.data();
  const uint8_t* gshuf = b.gshuf.data();
  const int16_t* gw = b.gw.data();
  for (int g = 0; g < n; ++g) {
    const int x = gx[g];
    if (gbase[g] < 0) {
      for (int j = 0; j < b.gn[g]; ++j) {
        const uint8_t* p = row + b.ax.tap[x + j];
        h[x + j] = b.ax.w0[x + j] * p[0] + b.ax.w1[x + j] * p[1];
      }
      continue;
    }
    __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + gbase[g]));
    __m128i pairs = _mm_shuffle_epi8(bytes, _mm_loadu_si128(reinterpret_cast<const __m128i*>(gshuf + 16 * g)));
    __m256i wt = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(gw + 16 * g));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + x), _mm256_madd_epi16(_mm256_cvtepu8_epi16(pairs), wt));
  }
}

// 8 output pixels of a blended row (0..255, in 32-bit lanes).
MF_AVX2_INLINE __m256i VBlendAvx2(const int32_t* ha, const int32_t* hb, __m256i wa, __m256i wb) {
  __m256i a = _mm256_mullo_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ha)), wa);
  __m256i c = _mm256_mullo_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(hb)), wb);
  return _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(a, c), _mm256_set1_epi32(1 << 15)), 16);
}

// The AVX2 path's integral, modulo 2^16 (see Plane), 16 columns at a time: the output row's
// pixels, the column sums, their prefix sum (in-vector, plus the running total, which is
// carried by a single add per vector), stored plain or split by column parity (columns
// x0+1..x0+16: the odd ones to the odd half at x0/2, the even ones to the even half at
// x0/2 + 1).
MF_AVX2 void BuildIntegralAvx2(IntegralBuilder& b, const cv::Mat& grey, cv::Size size, int step, int stride,
                               int16_t* sum) {
  const int w = size.width, half = stride / 2;
  const bool resize = size != grey.size();
  b.Plan(grey.size(), size, resize, true);
  std::fill(sum, sum + stride, 0);
  const __m256i last_word = _mm256_setr_epi8(14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15,
                                             14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15);
  const __m256i by_parity = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9,
                                             12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
  for (int y = 0; y < size.height; ++y) {
    const int32_t* h[2] = {nullptr, nullptr};
    __m256i wa = _mm256_setzero_si256(), wb = wa;
    if (resize) {
      b.Rows(grey, y, w, HLineAvx2, h);
      wa = _mm256_set1_epi32(b.ay.w0[y]);
      wb = _mm256_set1_epi32(b.ay.w1[y]);
    }
    const uint8_t* row = resize ? nullptr : grey.ptr<uint8_t>(y);
    int16_t* out = sum + static_cast<size_t>(y + 1) * stride;
    out[0] = 0;
    __m256i carry = _mm256_setzero_si256();
    for (int x0 = 0; x0 < w; x0 += 16) {
      __m256i px;
      if (resize) {
        __m256i lo = VBlendAvx2(h[0] + x0, h[1] + x0, wa, wb), hi = VBlendAvx2(h[0] + x0 + 8, h[1] + x0 + 8, wa, wb);
        px = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
      } else if (x0 + 16 <= w) {
        px = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + x0)));
      } else {  // the row's last bytes: do not read past them
        alignas(16) uint8_t tail[16] = {};
        std::copy(row + x0, row + w, tail);
        px = _mm256_cvtepu8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(tail)));
      }
      __m256i* cs = reinterpret_cast<__m256i*>(&b.colsum16[x0]);
      __m256i v = _mm256_add_epi16(_mm256_loadu_si256(cs), px);
      _mm256_storeu_si256(cs, v);
      v = _mm256_add_epi16(v, _mm256_slli_si256(v, 2));
      v = _mm256_add_epi16(v, _mm256_slli_si256(v, 4));
      v = _mm256_add_epi16(v, _mm256_slli_si256(v, 8));
      __m256i lane_total = _mm256_shuffle_epi8(v, last_word);
      v = _mm256_add_epi16(v, _mm256_permute2x128_si256(lane_total, lane_total, 0x08));
      __m256i total = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(v, last_word), 0xFF);
      v = _mm256_add_epi16(v, carry);
      carry = _mm256_add_epi16(carry, total);
      if (step == 1) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + x0 + 1), v);
      } else {
        __m256i s = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(v, by_parity), 0xD8);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + half + x0 / 2), _mm256_castsi256_si128(s));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + x0 / 2 + 1), _mm256_extracti128_si256(s, 1));
      }
    }
  }
}

// ---- Loading ----

Status Bad(const std::string& path, const std::string& why) {
  return Status::Corrupt("cascade '" + path + "': " + why);
}

}  // namespace

struct LbpCascade::Scratch {
  IntegralBuilder builder;
  std::vector<int32_t> sum32;  // the current scale's integral, scalar path
  std::vector<int16_t> sum16;  // AVX2 path
  cv::Mat resized;             // for the inputs left to cv::resize
  std::vector<int> hits;
};

LbpCascade::LbpCascade() : scratch_(std::make_unique<Scratch>()) {}
LbpCascade::~LbpCascade() = default;
LbpCascade::LbpCascade(LbpCascade&&) noexcept = default;
LbpCascade& LbpCascade::operator=(LbpCascade&&) noexcept = default;

Result<LbpCascade> LbpCascade::Load(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return Status::NotFound("cascade '" + path + "' does not exist");
  cv::FileStorage fsr;
  try {
    if (!fsr.open(path, cv::FileStorage::READ)) return Bad(path, "not an OpenCV XML/YAML file");
  } catch (const cv::Exception& e) {
    return Bad(path, "not an OpenCV XML/YAML file (" + e.err + ")");
  }
  LbpCascade c;
  try {
    cv::FileNode root = fsr.getFirstTopLevelNode();
    if (!root.isMap()) return Bad(path, "no cascade node at the top level");
    if (root["stageType"].empty()) {
      // The old layout (<size>, <stages> of <trees>) only ever holds Haar features; OpenCV
      // converts it to a Haar cascade when it loads it.
      if (!root["stages"].empty() && !root["size"].empty())
        return Status::Unsupported("cascade '" + path +
                                   "' is in the old opencv-haar-classifier layout (Haar features), not an LBP cascade");
      return Bad(path, "no stageType: not an OpenCV cascade");
    }
    std::string stage_type = static_cast<std::string>(root["stageType"]);
    std::string feature_type = static_cast<std::string>(root["featureType"]);
    if (stage_type != "BOOST")
      return Status::Unsupported("cascade '" + path + "' has stageType '" + stage_type + "', not BOOST");
    if (feature_type != "LBP")
      return Status::Unsupported("cascade '" + path + "' is a " + (feature_type.empty() ? "?" : feature_type) +
                                 " cascade, not an LBP cascade");
    c.window_ = cv::Size(static_cast<int>(root["width"]), static_cast<int>(root["height"]));
    if (c.window_.width <= 0 || c.window_.height <= 0 || c.window_.width > 1000000 || c.window_.height > 1000000)
      return Bad(path, "window size " + std::to_string(c.window_.width) + "x" + std::to_string(c.window_.height));

    cv::FileNode fp = root["featureParams"];
    if (fp.empty()) return Bad(path, "no featureParams");
    int ncategories = static_cast<int>(fp["maxCatCount"]);
    if ((ncategories + 31) / 32 != kSubsetWords)
      return Status::Unsupported("cascade '" + path + "': LBP with maxCatCount " + std::to_string(ncategories) +
                                 " (expected 256)");
    const int node_step = 3 + kSubsetWords;  // left, right, featureIdx, subset

    cv::FileNode stages = root["stages"];
    if (stages.empty() || !stages.isSeq()) return Bad(path, "no stages");
    for (cv::FileNodeIterator it = stages.begin(); it != stages.end(); ++it) {
      cv::FileNode fs_stage = *it;
      Stage st;
      st.threshold = static_cast<float>(fs_stage["stageThreshold"]) - kThresholdEps;
      cv::FileNode weaks = fs_stage["weakClassifiers"];
      if (weaks.empty()) return Bad(path, "stage " + std::to_string(c.stages_.size()) + " has no weakClassifiers");
      st.first = static_cast<int>(c.left_.size());
      st.ntrees = static_cast<int>(weaks.size());
      for (cv::FileNodeIterator wi = weaks.begin(); wi != weaks.end(); ++wi) {
        cv::FileNode nodes = (*wi)["internalNodes"], leaves = (*wi)["leafValues"];
        if (nodes.empty() || leaves.empty())
          return Bad(path, "a weak classifier of stage " + std::to_string(c.stages_.size()) +
                               " lacks internalNodes or leafValues");
        int node_count = static_cast<int>(nodes.size()) / node_step;
        if (node_count > 1)
          return Status::Unsupported("cascade '" + path + "': LBP trees with " + std::to_string(node_count) +
                                     " nodes (only stumps, maxDepth 1, are evaluated here)");
        if (node_count != 1 || leaves.size() < 2)
          return Bad(path, "a weak classifier of stage " + std::to_string(c.stages_.size()) +
                               " has a malformed stump (" + std::to_string(nodes.size()) + " node values, " +
                               std::to_string(leaves.size()) + " leaves)");
        // Data::read: left, right, featureIdx, then the subset words; the stump's left leaf
        // is leafValues[0] (taken when the code's subset bit is set), the right one [1].
        cv::FileNodeIterator ni = nodes.begin();
        ++ni;
        ++ni;
        c.feature_.push_back(static_cast<int>(*ni));
        ++ni;
        for (int j = 0; j < kSubsetWords; ++j, ++ni) c.subset_.push_back(static_cast<uint32_t>(static_cast<int>(*ni)));
        cv::FileNodeIterator li = leaves.begin();
        c.left_.push_back(static_cast<float>(*li));
        ++li;
        c.right_.push_back(static_cast<float>(*li));
      }
      c.stages_.push_back(st);
    }

    cv::FileNode features = root["features"];
    if (features.empty()) return Bad(path, "no features");
    for (cv::FileNodeIterator it = features.begin(); it != features.end(); ++it) {
      cv::FileNode rect = (*it)["rect"];
      if (rect.size() != 4) return Bad(path, "feature " + std::to_string(c.features_.size()) + " has no 4-value rect");
      cv::Rect r;
      cv::FileNodeIterator ri = rect.begin();
      ri >> r.x >> r.y >> r.width >> r.height;
      // OpenCV checks the first block; the 3x3 grid must fit too, or the feature would
      // read outside the window (and OpenCV outside its buffers).
      if (r.x < 0 || r.y < 0 || r.width <= 0 || r.height <= 0 || r.x + 3 * r.width > c.window_.width ||
          r.y + 3 * r.height > c.window_.height)
        return Bad(path, "feature " + std::to_string(c.features_.size()) + "'s 3x3 grid leaves the " +
                             std::to_string(c.window_.width) + "x" + std::to_string(c.window_.height) + " window");
      c.features_.push_back(r);
    }
    for (int f : c.feature_)
      if (f < 0 || f >= static_cast<int>(c.features_.size()))
        return Bad(path, "a weak classifier uses feature " + std::to_string(f) + " of " +
                             std::to_string(c.features_.size()));
  } catch (const cv::Exception& e) {
    return Bad(path, e.err);
  }
  c.subset_rev_.resize(c.subset_.size());
  for (size_t w = 0; w < c.left_.size(); ++w)
    for (int j = 0; j < kSubsetWords; ++j)
      c.subset_rev_[w * kSubsetWords + j] = c.subset_[w * kSubsetWords + kSubsetWords - 1 - j];
  // The AVX2 path's 16-bit block sums need every block to sum below 2^15.
  c.blocks_fit_16_bits_ = std::all_of(c.features_.begin(), c.features_.end(),
                                      [](const cv::Rect& r) { return 255 * r.width * r.height < 32768; });
  for (auto& st : c.stages_) {
    for (int w = st.first; w < st.first + st.ntrees; ++w)
      st.max_abs_sum += std::max(std::abs(static_cast<double>(c.left_[w])), std::abs(static_cast<double>(c.right_[w])));
  }
  c.ScaleFloatMarginForTest(1);
  c.ForceScalar(false);
  return c;
}

// The float sums' margin. For n terms summed one after another, the rounded sum is within
// gamma(n) * sum |term| of the exact one, gamma(n) = n u / (1 - n u) with u = 2^-24 for
// float and 2^-53 for double (Higham, Accuracy and Stability of Numerical Algorithms,
// 4.2). So where our float sum is more than both errors (doubled, for slack) below the
// threshold, OpenCV's double sum is below it too, and likewise above.
void LbpCascade::ScaleFloatMarginForTest(double factor) {
  auto gamma = [](int n, double u) { return n * u / (1 - n * u); };
  for (auto& st : stages_) {
    double margin =
        factor * 2 * (gamma(st.ntrees, std::ldexp(1.0, -24)) + gamma(st.ntrees, std::ldexp(1.0, -53))) * st.max_abs_sum;
    double lo = static_cast<double>(st.threshold) - margin, hi = static_cast<double>(st.threshold) + margin;
    // Round outwards to floats.
    float flo = static_cast<float>(lo), fhi = static_cast<float>(hi);
    if (flo > lo) flo = std::nextafter(flo, -INFINITY);
    if (fhi < hi) fhi = std::nextafter(fhi, INFINITY);
    st.fail_below = flo;
    st.pass_from = fhi;
  }
}

void LbpCascade::ForceScalar(bool on) {
  isa_ = !on && blocks_fit_16_bits_ && CpuHasAvx2() ? Isa::kAvx2 : Isa::kScalar;
}

void LbpCascade::PrepareOffsets(int stride) {
  if (stride == offsets_stride_) return;
  offsets_stride_ = stride;
  size_t n = left_.size();
  offsets_[0].resize(n * 16);
  offsets_[1].resize(n * 16);
  for (size_t w = 0; w < n; ++w) {
    const cv::Rect& f = features_[feature_[w]];
    // Corner 4 * row + col of the feature's 4x4 grid of block corners.
    for (int r = 0; r < 4; ++r)
      for (int col = 0; col < 4; ++col) {
        int dx = f.x + col * f.width, dy = f.y + r * f.height;
        offsets_[0][w * 16 + 4 * r + col] = dy * stride + dx;
        offsets_[1][w * 16 + 4 * r + col] = dy * stride + (dx & 1) * (stride / 2) + (dx >> 1);
      }
  }
}

namespace {

// Row stride (elements) of the integral buffers: room past the widest row for the last
// block's masked-out windows (16 windows, 24 columns of window) in both layouts.
int StrideFor(int width) { return (width + 1 + 64 + 31) / 32 * 32; }

}  // namespace

cv::Mat LbpCascade::ScaledIntegral(const cv::Mat& grey, cv::Size size, int step, Isa isa) {
  CV_Assert(grey.type() == CV_8UC1 && !size.empty() && (step == 1 || step == 2));
  const int stride = StrideFor(size.width);
  const size_t n = static_cast<size_t>(size.height + 1) * stride + 64;
  IntegralBuilder b;
  cv::Mat src = grey;
  if (size != grey.size() && LeaveToCvResize(grey.size(), size))
    cv::resize(grey, src, size, 0, 0, cv::INTER_LINEAR_EXACT);
  auto at = [&](int y, int c) {
    return static_cast<size_t>(y) * stride + (step == 1 ? c : (c & 1) * (stride / 2) + (c >> 1));
  };
  auto read_back = [&](const auto& sum, int type) {
    using T = typename std::decay_t<decltype(sum)>::value_type;
    cv::Mat out(size.height + 1, size.width + 1, type);
    for (int y = 0; y <= size.height; ++y)
      for (int c = 0; c <= size.width; ++c) out.at<T>(y, c) = sum[at(y, c)];
    return out;
  };
  if (isa == Isa::kAvx2 && CpuHasAvx2()) {
    std::vector<int16_t> sum(n, 0);
    BuildIntegralAvx2(b, src, size, step, stride, sum.data());
    return read_back(sum, CV_16S);
  }
  std::vector<int32_t> sum(n, 0);
  BuildIntegralScalar(b, src, size, step, stride, sum.data());
  return read_back(sum, CV_32S);
}

Result<std::vector<cv::Rect>> LbpCascade::DetectNoGrouping(const cv::Mat& image, double scale_factor,
                                                           cv::Size min_size, cv::Size max_size) {
  if (!(scale_factor > 1)) return Status::InvalidArgument("scale factor must be above 1");
  if (image.depth() != CV_8U) return Status::InvalidArgument("the cascade needs an 8-bit image");
  std::vector<cv::Rect> out;
  // detectMultiScaleNoGrouping, step by step.
  const cv::Size imgsz = image.size();
  if (max_size.height == 0 || max_size.width == 0) max_size = imgsz;
  if (imgsz.height < window_.height || imgsz.width < window_.width) return out;

  std::vector<float> all_scales, scales;
  for (double factor = 1;; factor *= scale_factor) {
    cv::Size ws(cvRound(window_.width * factor), cvRound(window_.height * factor));
    if (ws.width > imgsz.width || ws.height > imgsz.height) break;
    all_scales.push_back(static_cast<float>(factor));
  }
  for (float s : all_scales) {
    cv::Size ws(cvRound(window_.width * s), cvRound(window_.height * s));  // float, not double, here
    if (ws.width > max_size.width || ws.height > max_size.height) break;
    if (ws.width < min_size.width || ws.height < min_size.height) continue;
    scales.push_back(s);
  }
  if (scales.empty() && !all_scales.empty()) {
    // minSize == maxSize between two scales: the nearest one (L2 on the window size).
    size_t best = 0;
    double best_d = 0;
    for (size_t v = 0; v < all_scales.size(); ++v) {
      cv::Size ws(cvRound(window_.width * all_scales[v]), cvRound(window_.height * all_scales[v]));
      double d = (min_size.width - ws.width) * (min_size.width - ws.width) +
                 (min_size.height - ws.height) * (min_size.height - ws.height);
      if (v == 0 || best_d > d) best = v, best_d = d;
    }
    scales.push_back(all_scales[best]);
  }
  if (scales.empty()) return out;

  cv::Mat grey;
  if (image.channels() > 1) {
    try {
      cv::cvtColor(image, grey, cv::COLOR_BGR2GRAY);
    } catch (const cv::Exception& e) {
      return Status::InvalidArgument("the cascade needs a grey, BGR or BGRA image (" + e.err + ")");
    }
  } else {
    grey = image;
  }

  // FeatureEvaluator::updateScaleData: the scaled image is cvRound(size / scale) (float).
  struct ScaleInfo {
    float scale;
    cv::Size size;  // scaled image
    int step;
    cv::Size work;  // window origins: x < work.width, y < work.height
  };
  std::vector<ScaleInfo> info;
  for (float sc : scales) {
    ScaleInfo si;
    si.scale = sc;
    si.size = cv::Size(cvRound(imgsz.width / sc), cvRound(imgsz.height / sc));
    si.step = sc >= 2 ? 1 : 2;
    si.work = cv::Size(std::max(si.size.width + 1 - window_.width, 0),
                       std::max(si.size.height + 1 - window_.height, 0));
    info.push_back(si);
  }
  // The CPU path's parallel stripes: nstripes from the first scale's width; each scale's
  // stripe height rounds its row count down to whole steps before dividing, so where the
  // stripes end short of the last row OpenCV never visits it. Reproduced, not fixed.
  const int nstripes = cvCeil(info[0].work.width / 32.);
  if (nstripes <= 0) return out;

  // One integral buffer for all scales, with the first (largest) scale's stride, so the
  // feature offsets are computed once per image width.
  const cv::Size big = info[0].size;
  const int stride = StrideFor(big.width);
  PrepareOffsets(stride);
  const bool avx2 = isa_ == Isa::kAvx2;
  Scratch& s = *scratch_;
  const size_t need = static_cast<size_t>(big.height + 1) * stride + 64;
  if (avx2 && s.sum16.size() < need) s.sum16.assign(need, 0);
  if (!avx2 && s.sum32.size() < need) s.sum32.assign(need, 0);

  Model m{stages_.data(), static_cast<int>(stages_.size()), nullptr, subset_.data(), subset_rev_.data(),
          left_.data(), right_.data()};

  for (const ScaleInfo& si : info) {
    if (si.work.width <= 0 || si.work.height <= 0) continue;
    // setImage: the scaled image (cv::resize INTER_LINEAR_EXACT) and its integral.
    const cv::Mat* src = &grey;
    if (si.size != imgsz && LeaveToCvResize(imgsz, si.size)) {
      cv::resize(grey, s.resized, si.size, 1. / si.scale, 1. / si.scale, cv::INTER_LINEAR_EXACT);
      src = &s.resized;
    }
    if (avx2)
      BuildIntegralAvx2(s.builder, *src, si.size, si.step, stride, s.sum16.data());
    else
      BuildIntegralScalar(s.builder, *src, si.size, si.step, stride, s.sum32.data());
    m.offs = offsets_[si.step == 1 ? 0 : 1].data();

    const int nx = (si.work.width + si.step - 1) / si.step;
    const int stripe = std::max((si.work.height / si.step + nstripes - 1) / nstripes, 1) * si.step;
    const int rows_end = std::min(nstripes * stripe, si.work.height);
    s.hits.clear();
    if (avx2)
      ScanAvx2(m, Plane<int16_t>{s.sum16.data(), stride, nx, rows_end, si.step}, s.hits);
    else
      ScanScalar(m, Plane<int32_t>{s.sum32.data(), stride, nx, rows_end, si.step}, s.hits);

    // CascadeClassifierInvoker: the window's rounded position and size in the image.
    const float sf = si.scale;
    const cv::Size win(cvRound(window_.width * sf), cvRound(window_.height * sf));
    for (size_t i = 0; i < s.hits.size(); i += 2) {
      int x = s.hits[i] * si.step, y = s.hits[i + 1];
      out.emplace_back(cvRound(x * sf), cvRound(y * sf), win.width, win.height);
    }
  }
  return out;
}

Result<LbpDetections> LbpCascade::DetectMultiScale(const cv::Mat& image, double scale_factor, int min_neighbors,
                                                   cv::Size min_size, cv::Size max_size) {
  MF_ASSIGN_OR_RETURN(std::vector<cv::Rect> objects, DetectNoGrouping(image, scale_factor, min_size, max_size));
  std::vector<int> counts;
  cv::groupRectangles(objects, counts, min_neighbors, kGroupEps);
  // CascadeClassifier::detectMultiScale then clips to the image (clipObjects).
  LbpDetections d;
  const cv::Rect whole(0, 0, image.cols, image.rows);
  for (size_t i = 0; i < objects.size(); ++i) {
    cv::Rect r = whole & objects[i];
    if (r.empty()) continue;
    d.objects.push_back(r);
    d.num_detections.push_back(counts[i]);
  }
  return d;
}

}  // namespace moeforge::detector
