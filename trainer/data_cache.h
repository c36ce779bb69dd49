// The packed training-image cache (private to trainer/): every face crop decoded and
// resized ONCE into one file of uint8 RGB pixels, with its face id and tag vector, then
// memory-mapped, so the training loop never decodes an image and sets larger than RAM
// page in from disk. The file is written atomically (tmp + rename).
//
//   "MFCACHE1" | int64 n | int32 size | int32 tags | n x int64 face_id |
//   n x tags x float32 (0/1) | n x size x size x 3 uint8 (RGB)
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tag_schema.h"

namespace moeforge::trainer {

struct CacheSource {
  std::vector<int64_t> face_ids;
  std::vector<std::string> paths;  // absolute image paths
  std::vector<float> tags;         // n x tags, 0/1
  int num_tags = 0;
};

struct CacheBuildStats {
  int64_t written = 0;
  int64_t unreadable = 0;  // missing or undecodable crops, left out
};

// Decodes, resizes (area filter) and packs the images of `src` at `size` px into `path`.
Result<CacheBuildStats> BuildImageCache(const CacheSource& src, int size, const std::string& path);

class ImageCache {
 public:
  static Result<ImageCache> Open(const std::string& path);
  ImageCache() = default;
  ImageCache(ImageCache&& o) noexcept;
  ImageCache& operator=(ImageCache&& o) noexcept;
  ImageCache(const ImageCache&) = delete;
  ImageCache& operator=(const ImageCache&) = delete;
  ~ImageCache();

  int64_t size() const { return n_; }
  int resolution() const { return res_; }
  int num_tags() const { return t_; }
  int64_t face_id(int64_t i) const { return ids_[i]; }
  const float* tags(int64_t i) const { return tags_ + i * t_; }
  const uint8_t* pixels(int64_t i) const { return px_ + i * int64_t(res_) * res_ * 3; }
  // Fills `out` (batch x 3 x R x R, row-major NCHW) with images idx scaled to [-1, 1],
  // mirrored left-right where flip[j]; `tags_out` (batch x T) with their tags.
  void Gather(const std::vector<int64_t>& idx, const std::vector<bool>& flip, float* out, float* tags_out) const;

 private:
  void* map_ = nullptr;
  size_t map_len_ = 0;
  int64_t n_ = 0;
  int res_ = 0;
  int t_ = 0;
  const int64_t* ids_ = nullptr;
  const float* tags_ = nullptr;
  const uint8_t* px_ = nullptr;
};

// Draws tag vectors like the data's (DESIGN.md): one tag of every exclusive group by the
// group's frequencies in the data, each other tag on with its own frequency.
class TagSampler {
 public:
  TagSampler() = default;
  // `tags` is n x T (0/1).
  TagSampler(const TagSchema& schema, const float* tags, int64_t n);
  // From stored frequencies (per tag: share of faces with it).
  TagSampler(const TagSchema& schema, std::vector<double> freq);
  std::vector<float> Sample(std::mt19937_64& rng) const;
  const std::vector<double>& frequencies() const { return freq_; }

 private:
  TagSchema schema_;
  std::vector<double> freq_;
};

}  // namespace moeforge::trainer
