// SHA-256 of buffers and files (OpenSSL EVP), as lowercase hex. Content addresses
// for blobs and provenance hashes for models all come from here.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/status.h"

namespace moeforge {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t n);
  // Returns the hex digest; the object must not be updated afterwards.
  std::string HexDigest();

 private:
  void* ctx_;  // EVP_MD_CTX*, kept opaque so OpenSSL headers stay out of callers
};

std::string Sha256Hex(std::string_view data);
// Lowercase hex of `n` bytes (a digest's usual spelling).
std::string HexLower(const unsigned char* bytes, size_t n);
Result<std::string> Sha256File(const std::string& path);

}  // namespace moeforge
