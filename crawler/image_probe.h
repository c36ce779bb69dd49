// What a downloaded file is, from its bytes alone and before any decode: the format by
// magic bytes (never by Content-Type or extension) and the pixel dimensions from the
// header, so a decompression bomb is refused by its declared size.
#pragma once

#include <cstdint>
#include <string>

namespace moeforge::crawler {

struct ImageProbe {
  std::string format;  // png|jpeg|gif|webp|bmp|avif; "" when the magic bytes match none
  int64_t width = 0;   // 0 when the header does not say (truncated header; avif)
  int64_t height = 0;
};

ImageProbe ProbeImage(const void* data, size_t n);

}  // namespace moeforge::crawler
