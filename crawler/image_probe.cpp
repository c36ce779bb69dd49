#include "crawler/image_probe.h"

#include <algorithm>
#include <cstring>

namespace moeforge::crawler {

namespace {

uint32_t Be32(const unsigned char* p) { return (uint32_t(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3]; }
uint32_t Be16(const unsigned char* p) { return (uint32_t(p[0]) << 8) | p[1]; }
uint32_t Le16(const unsigned char* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8); }
uint32_t Le24(const unsigned char* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16); }
uint32_t Le32(const unsigned char* p) { return Le24(p) | (uint32_t(p[3]) << 24); }

void JpegSize(const unsigned char* b, size_t n, ImageProbe& out) {
  size_t i = 2;
  while (i + 4 <= n) {
    if (b[i] != 0xFF) return;  // lost sync: leave the size unknown
    unsigned char m = b[i + 1];
    if (m == 0xFF) {
      ++i;  // fill byte
      continue;
    }
    if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
      i += 2;
      continue;
    }
    uint32_t len = Be16(b + i + 2);
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
      if (i + 9 > n) return;
      out.height = Be16(b + i + 5);
      out.width = Be16(b + i + 7);
      return;
    }
    if (m == 0xDA || m == 0xD9) return;  // scan data before any frame header
    i += 2 + len;
  }
}

// An ISO-BMFF ftyp box naming the AVIF brand (avif: still, avis: sequence) as its major
// brand or a compatible one.
bool IsAvifBrand(const unsigned char* b, size_t n) {
  size_t box = std::min<size_t>(Be32(b), n);
  for (size_t i = 8; i + 4 <= box; i += 4) {
    if (i == 12) continue;  // minor version
    if (std::memcmp(b + i, "avif", 4) == 0 || std::memcmp(b + i, "avis", 4) == 0) return true;
  }
  return false;
}

}  // namespace

ImageProbe ProbeImage(const void* data, size_t n) {
  const auto* b = static_cast<const unsigned char*>(data);
  ImageProbe p;
  if (n >= 8 && std::memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) {
    p.format = "png";
    if (n >= 24 && std::memcmp(b + 12, "IHDR", 4) == 0) {
      p.width = Be32(b + 16);
      p.height = Be32(b + 20);
    }
  } else if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) {
    p.format = "jpeg";
    JpegSize(b, n, p);
  } else if (n >= 6 && (std::memcmp(b, "GIF87a", 6) == 0 || std::memcmp(b, "GIF89a", 6) == 0)) {
    p.format = "gif";
    if (n >= 10) {
      p.width = Le16(b + 6);
      p.height = Le16(b + 8);
    }
  } else if (n >= 12 && std::memcmp(b, "RIFF", 4) == 0 && std::memcmp(b + 8, "WEBP", 4) == 0) {
    p.format = "webp";
    if (n >= 30 && std::memcmp(b + 12, "VP8 ", 4) == 0) {
      p.width = Le16(b + 26) & 0x3FFF;
      p.height = Le16(b + 28) & 0x3FFF;
    } else if (n >= 25 && std::memcmp(b + 12, "VP8L", 4) == 0) {
      uint32_t v = Le32(b + 21);
      p.width = (v & 0x3FFF) + 1;
      p.height = ((v >> 14) & 0x3FFF) + 1;
    } else if (n >= 30 && std::memcmp(b + 12, "VP8X", 4) == 0) {
      p.width = Le24(b + 24) + 1;
      p.height = Le24(b + 27) + 1;
    }
  } else if (n >= 16 && std::memcmp(b + 4, "ftyp", 4) == 0 && IsAvifBrand(b, n)) {
    p.format = "avif";  // dimensions live in a later box (ispe); nothing here decodes AVIF
  } else if (n >= 26 && b[0] == 'B' && b[1] == 'M') {
    p.format = "bmp";
    int32_t w = static_cast<int32_t>(Le32(b + 18)), h = static_cast<int32_t>(Le32(b + 22));
    p.width = w < 0 ? -int64_t(w) : w;
    p.height = h < 0 ? -int64_t(h) : h;
  }
  return p;
}

}  // namespace moeforge::crawler
