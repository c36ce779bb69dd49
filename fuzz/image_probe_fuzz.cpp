// Image header probing: format by magic bytes and dimensions from the header, on bytes
// a server sent. Never reads past `size`: ASan sees the exact buffer.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "crawler/image_probe.h"

using namespace moeforge::crawler;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A heap copy of exactly `size` bytes, so that an over-read is caught even in the
  // replay build without libFuzzer's own exact-size buffers.
  auto* copy = static_cast<uint8_t*>(std::malloc(size ? size : 1));
  if (size) std::memcpy(copy, data, size);
  ImageProbe p = ProbeImage(copy, size);
  if (p.width < 0 || p.height < 0) __builtin_trap();  // a negative size is never a probe result
  if (p.format.empty() && (p.width != 0 || p.height != 0)) __builtin_trap();
  std::free(copy);
  return 0;
}
