// MD5 (RFC 1321) and SHA-256 (FIPS 180-4) of one buffer in one pass; see digest.h.
#include "crawler/digest.h"
#include "core/hash.h"

#include <openssl/evp.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define MF_DIGEST_X86 1
#endif

namespace moeforge::crawler {

namespace {

std::string OpenSslHex(std::string_view data, const EVP_MD* md) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), out, &n, md, nullptr);
  return HexLower(out, n);
}

}  // namespace

Md5Sha256 Md5AndSha256OpenSsl(std::string_view data) {
  return {OpenSslHex(data, EVP_md5()), OpenSslHex(data, EVP_sha256())};
}

#ifdef MF_DIGEST_X86

namespace {

// The constants as their standards define them: MD5's T[i] = floor(|sin(i + 1)| * 2^32),
// SHA-256's K[i] = the first 32 bits of the fractional part of the cube root of the i-th
// prime. (Every block uses all of them: the tests against OpenSSL check each one.)
struct Constants {
  uint32_t md5[64];
  alignas(16) uint32_t sha[64];
  Constants() {
    for (int i = 0; i < 64; ++i) md5[i] = static_cast<uint32_t>(std::floor(std::fabs(std::sin(i + 1.0)) * 4294967296.0));
    int n = 0;
    for (int p = 2; n < 64; ++p) {
      bool prime = true;
      for (int d = 2; d * d <= p; ++d) prime = prime && p % d != 0;
      if (!prime) continue;
      long double c = cbrtl(static_cast<long double>(p));
      sha[n++] = static_cast<uint32_t>((c - floorl(c)) * 4294967296.0L);
    }
  }
};
const Constants kC;

const uint32_t kMd5Init[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
const uint32_t kSha256Init[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

inline uint32_t Rotl(uint32_t x, int s) { return (x << s) | (x >> (32 - s)); }

// MD5's round functions, written so that as little as possible waits for `b` (the value
// the step before made): G as a sum of disjoint bits, and the step adds a + X[k] + T[i]
// (known early) to f(b, c, d) last.
#define MD5_F(b, c, d) ((d) ^ ((b) & ((c) ^ (d))))
#define MD5_G(b, c, d) (((b) & (d)) + ((c) & ~(d)))
#define MD5_H(b, c, d) ((b) ^ (c) ^ (d))
#define MD5_I(b, c, d) ((c) ^ ((b) | ~(d)))
#define MD5_STEP(f, a, b, c, d, k, s, i) a = b + Rotl(f(b, c, d) + (a + x[k] + kC.md5[i]), s)
// Four steps (the registers turn once); k0..k3: message words, i: the first step.
#define MD5_QUAD(f, k0, k1, k2, k3, s0, s1, s2, s3, i) \
  MD5_STEP(f, a, b, c, d, k0, s0, i);                  \
  MD5_STEP(f, d, a, b, c, k1, s1, i + 1);              \
  MD5_STEP(f, c, d, a, b, k2, s2, i + 2);              \
  MD5_STEP(f, b, c, d, a, k3, s3, i + 3)
#define MD5_R1(k0, k1, k2, k3, i) MD5_QUAD(MD5_F, k0, k1, k2, k3, 7, 12, 17, 22, i)
#define MD5_R2(k0, k1, k2, k3, i) MD5_QUAD(MD5_G, k0, k1, k2, k3, 5, 9, 14, 20, i)
#define MD5_R3(k0, k1, k2, k3, i) MD5_QUAD(MD5_H, k0, k1, k2, k3, 4, 11, 16, 23, i)
#define MD5_R4(k0, k1, k2, k3, i) MD5_QUAD(MD5_I, k0, k1, k2, k3, 6, 10, 15, 21, i)

// MD5 of whole 64-byte blocks (x86 is little-endian, as MD5's words are).
void Md5Blocks(uint32_t st[4], const unsigned char* p, size_t n) {
  for (; n > 0; --n, p += 64) {
    uint32_t x[16];
    std::memcpy(x, p, 64);
    uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
    MD5_R1(0, 1, 2, 3, 0);
    MD5_R1(4, 5, 6, 7, 4);
    MD5_R1(8, 9, 10, 11, 8);
    MD5_R1(12, 13, 14, 15, 12);
    MD5_R2(1, 6, 11, 0, 16);
    MD5_R2(5, 10, 15, 4, 20);
    MD5_R2(9, 14, 3, 8, 24);
    MD5_R2(13, 2, 7, 12, 28);
    MD5_R3(5, 8, 11, 14, 32);
    MD5_R3(1, 4, 7, 10, 36);
    MD5_R3(13, 0, 3, 6, 40);
    MD5_R3(9, 12, 15, 2, 44);
    MD5_R4(0, 7, 14, 5, 48);
    MD5_R4(12, 3, 10, 1, 52);
    MD5_R4(8, 15, 6, 13, 56);
    MD5_R4(4, 11, 2, 9, 60);
    st[0] += a;
    st[1] += b;
    st[2] += c;
    st[3] += d;
  }
}

#define MF_SHA_TARGET __attribute__((target("sha,sse4.1,ssse3")))

// SHA-256 with the SHA extensions. The state is kept as two registers, ABEF and CDGH (the
// order sha256rnds2 takes), each call of which does two rounds.
MF_SHA_TARGET inline void ShaLoad(const uint32_t h[8], __m128i& abef, __m128i& cdgh) {
  __m128i badc = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)), 0xB1);
  __m128i hgfe = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + 4)), 0x1B);
  abef = _mm_alignr_epi8(badc, hgfe, 8);
  cdgh = _mm_blend_epi16(hgfe, badc, 0xF0);
}

MF_SHA_TARGET inline void ShaStore(uint32_t h[8], __m128i abef, __m128i cdgh) {
  __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
  __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h), _mm_blend_epi16(feba, dchg, 0xF0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h + 4), _mm_alignr_epi8(dchg, feba, 8));
}

// Four rounds on message words w (W[4g..4g+3]).
#define SHA_ROUNDS(w, g)                                                                                    \
  do {                                                                                                      \
    __m128i m_ = _mm_add_epi32(w, _mm_load_si128(reinterpret_cast<const __m128i*>(kC.sha + 4 * (g))));      \
    cdgh = _mm_sha256rnds2_epu32(cdgh, abef, m_);                                                           \
    abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(m_, 0x0E));                                  \
  } while (0)
// The next four message words in place of w0 (W[t-16..t-13]) from w1, w2, w3 (the 12
// after them).
#define SHA_NEXT(w0, w1, w2, w3) \
  w0 = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4)), w3)
#define SHA_LOAD_WORDS(p)                                                                        \
  __m128i w0 = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), bswap);      \
  __m128i w1 = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)), bswap); \
  __m128i w2 = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32)), bswap); \
  __m128i w3 = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 48)), bswap)

MF_SHA_TARGET void ShaBlocks(uint32_t h[8], const unsigned char* p, size_t n) {
  const __m128i bswap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);  // big-endian words
  __m128i abef, cdgh;
  ShaLoad(h, abef, cdgh);
  for (; n > 0; --n, p += 64) {
    __m128i abef0 = abef, cdgh0 = cdgh;
    SHA_LOAD_WORDS(p);
    SHA_ROUNDS(w0, 0);
    SHA_ROUNDS(w1, 1);
    SHA_ROUNDS(w2, 2);
    SHA_ROUNDS(w3, 3);
    for (int g = 4; g < 16; g += 4) {
      SHA_NEXT(w0, w1, w2, w3);
      SHA_ROUNDS(w0, g);
      SHA_NEXT(w1, w2, w3, w0);
      SHA_ROUNDS(w1, g + 1);
      SHA_NEXT(w2, w3, w0, w1);
      SHA_ROUNDS(w2, g + 2);
      SHA_NEXT(w3, w0, w1, w2);
      SHA_ROUNDS(w3, g + 3);
    }
    abef = _mm_add_epi32(abef, abef0);
    cdgh = _mm_add_epi32(cdgh, cdgh0);
  }
  ShaStore(h, abef, cdgh);
}

// Both over the same whole blocks: four MD5 steps beside every four SHA-256 rounds, so
// that the out-of-order core runs the two chains side by side.
MF_SHA_TARGET void Md5ShaBlocks(uint32_t st[4], uint32_t h[8], const unsigned char* p, size_t n) {
  const __m128i bswap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
  __m128i abef, cdgh;
  ShaLoad(h, abef, cdgh);
  uint32_t sa = st[0], sb = st[1], sc = st[2], sd = st[3];
  for (; n > 0; --n, p += 64) {
    __m128i abef0 = abef, cdgh0 = cdgh;
    uint32_t x[16];
    std::memcpy(x, p, 64);
    uint32_t a = sa, b = sb, c = sc, d = sd;
    SHA_LOAD_WORDS(p);
    SHA_ROUNDS(w0, 0);
    MD5_R1(0, 1, 2, 3, 0);
    SHA_ROUNDS(w1, 1);
    MD5_R1(4, 5, 6, 7, 4);
    SHA_ROUNDS(w2, 2);
    MD5_R1(8, 9, 10, 11, 8);
    SHA_ROUNDS(w3, 3);
    MD5_R1(12, 13, 14, 15, 12);
    SHA_NEXT(w0, w1, w2, w3);
    SHA_ROUNDS(w0, 4);
    MD5_R2(1, 6, 11, 0, 16);
    SHA_NEXT(w1, w2, w3, w0);
    SHA_ROUNDS(w1, 5);
    MD5_R2(5, 10, 15, 4, 20);
    SHA_NEXT(w2, w3, w0, w1);
    SHA_ROUNDS(w2, 6);
    MD5_R2(9, 14, 3, 8, 24);
    SHA_NEXT(w3, w0, w1, w2);
    SHA_ROUNDS(w3, 7);
    MD5_R2(13, 2, 7, 12, 28);
    SHA_NEXT(w0, w1, w2, w3);
    SHA_ROUNDS(w0, 8);
    MD5_R3(5, 8, 11, 14, 32);
    SHA_NEXT(w1, w2, w3, w0);
    SHA_ROUNDS(w1, 9);
    MD5_R3(1, 4, 7, 10, 36);
    SHA_NEXT(w2, w3, w0, w1);
    SHA_ROUNDS(w2, 10);
    MD5_R3(13, 0, 3, 6, 40);
    SHA_NEXT(w3, w0, w1, w2);
    SHA_ROUNDS(w3, 11);
    MD5_R3(9, 12, 15, 2, 44);
    SHA_NEXT(w0, w1, w2, w3);
    SHA_ROUNDS(w0, 12);
    MD5_R4(0, 7, 14, 5, 48);
    SHA_NEXT(w1, w2, w3, w0);
    SHA_ROUNDS(w1, 13);
    MD5_R4(12, 3, 10, 1, 52);
    SHA_NEXT(w2, w3, w0, w1);
    SHA_ROUNDS(w2, 14);
    MD5_R4(8, 15, 6, 13, 56);
    SHA_NEXT(w3, w0, w1, w2);
    SHA_ROUNDS(w3, 15);
    MD5_R4(4, 11, 2, 9, 60);
    sa += a;
    sb += b;
    sc += c;
    sd += d;
    abef = _mm_add_epi32(abef, abef0);
    cdgh = _mm_add_epi32(cdgh, cdgh0);
  }
  st[0] = sa;
  st[1] = sb;
  st[2] = sc;
  st[3] = sd;
  ShaStore(h, abef, cdgh);
}

bool CpuHasShaNi() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  bool ssse3 = (c & (1u << 9)) != 0, sse41 = (c & (1u << 19)) != 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  bool sha = (b & (1u << 29)) != 0;
  return ssse3 && sse41 && sha;
}

}  // namespace

bool HaveFusedMd5Sha256() {
  static const bool have = CpuHasShaNi();
  return have;
}

Md5Sha256 Md5AndSha256Fused(std::string_view data) {
  uint32_t st[4], h[8];
  std::memcpy(st, kMd5Init, sizeof st);
  std::memcpy(h, kSha256Init, sizeof h);
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t whole = data.size() / 64, rest = data.size() % 64;
  Md5ShaBlocks(st, h, p, whole);
  // The padding: 0x80, zeros, and the length in bits in the last 8 bytes, little-endian
  // for MD5 and big-endian for SHA-256, so the last block(s) go through each alone.
  unsigned char md5_tail[128] = {0}, sha_tail[128] = {0};
  std::memcpy(md5_tail, p + whole * 64, rest);
  md5_tail[rest] = 0x80;
  size_t blocks = rest + 9 <= 64 ? 1 : 2;
  std::memcpy(sha_tail, md5_tail, sizeof sha_tail);
  uint64_t bits = static_cast<uint64_t>(data.size()) * 8;
  for (int i = 0; i < 8; ++i) {
    md5_tail[blocks * 64 - 8 + i] = static_cast<unsigned char>(bits >> (8 * i));
    sha_tail[blocks * 64 - 1 - i] = static_cast<unsigned char>(bits >> (8 * i));
  }
  Md5Blocks(st, md5_tail, blocks);
  ShaBlocks(h, sha_tail, blocks);
  unsigned char md5[16], sha[32];
  std::memcpy(md5, st, sizeof md5);
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 4; ++j) sha[4 * i + j] = static_cast<unsigned char>(h[i] >> (24 - 8 * j));
  return {HexLower(md5, sizeof md5), HexLower(sha, sizeof sha)};
}

#else  // not x86

bool HaveFusedMd5Sha256() { return false; }
Md5Sha256 Md5AndSha256Fused(std::string_view data) { return Md5AndSha256OpenSsl(data); }

#endif

Md5Sha256 Md5AndSha256(std::string_view data) {
  return HaveFusedMd5Sha256() ? Md5AndSha256Fused(data) : Md5AndSha256OpenSsl(data);
}

}  // namespace moeforge::crawler
