#include "trainer/data_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace moeforge::trainer {

namespace {
constexpr char kMagic[8] = {'M', 'F', 'C', 'A', 'C', 'H', 'E', '1'};
constexpr size_t kHeader = 8 + 8 + 4 + 4;
}  // namespace

Result<CacheBuildStats> BuildImageCache(const CacheSource& src, int size, const std::string& path) {
  const int64_t n = static_cast<int64_t>(src.paths.size());
  const int t = src.num_tags;
  if (src.face_ids.size() != src.paths.size() || src.tags.size() != static_cast<size_t>(n * t))
    return Status::Internal("BuildImageCache: face ids, paths and tags disagree in length");
  const size_t img_bytes = size_t(size) * size * 3;
  std::vector<uint8_t> pixels(n * img_bytes);
  std::vector<char> ok(n, 0);
  cv::parallel_for_(cv::Range(0, static_cast<int>(n)), [&](const cv::Range& r) {
    for (int i = r.start; i < r.end; ++i) {
      cv::Mat img = cv::imread(src.paths[i], cv::IMREAD_COLOR);
      if (img.empty()) continue;
      cv::Mat out(size, size, CV_8UC3, pixels.data() + i * img_bytes);
      cv::Mat resized;
      cv::resize(img, resized, cv::Size(size, size), 0, 0,
                 img.cols > size ? cv::INTER_AREA : cv::INTER_CUBIC);
      cv::cvtColor(resized, out, cv::COLOR_BGR2RGB);
      ok[i] = 1;
    }
  });
  CacheBuildStats stats;
  std::vector<int64_t> ids;
  std::vector<float> tags;
  std::string body;
  for (int64_t i = 0; i < n; ++i) {
    if (!ok[i]) {
      ++stats.unreadable;
      continue;
    }
    ids.push_back(src.face_ids[i]);
    tags.insert(tags.end(), src.tags.begin() + i * t, src.tags.begin() + (i + 1) * t);
  }
  stats.written = static_cast<int64_t>(ids.size());
  if (stats.written == 0)
    return Status::InvalidArgument("no readable face crops among " + std::to_string(n) + " faces");

  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return Status::IoError("cannot write " + tmp + ": " + std::strerror(errno));
  int64_t m = stats.written;
  int32_t s32 = size, t32 = t;
  bool good = std::fwrite(kMagic, 1, 8, f) == 8 && std::fwrite(&m, 8, 1, f) == 1 &&
              std::fwrite(&s32, 4, 1, f) == 1 && std::fwrite(&t32, 4, 1, f) == 1 &&
              std::fwrite(ids.data(), 8, ids.size(), f) == ids.size() &&
              std::fwrite(tags.data(), 4, tags.size(), f) == tags.size();
  for (int64_t i = 0; good && i < n; ++i)
    if (ok[i]) good = std::fwrite(pixels.data() + i * img_bytes, 1, img_bytes, f) == img_bytes;
  good = good && std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  good = (std::fclose(f) == 0) && good;
  if (!good || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return Status::IoError("writing the image cache " + path + " failed: " + std::strerror(errno));
  }
  return stats;
}

Result<ImageCache> ImageCache::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return Status::NotFound("image cache " + path + ": " + std::strerror(errno));
  struct stat st {};
  fstat(fd, &st);
  size_t len = static_cast<size_t>(st.st_size);
  void* map = len >= kHeader ? mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
  ::close(fd);
  if (map == MAP_FAILED) return Status::Corrupt("image cache " + path + " is too short or cannot be mapped");
  ImageCache c;
  c.map_ = map;
  c.map_len_ = len;
  const char* p = static_cast<const char*>(map);
  if (std::memcmp(p, kMagic, 8) != 0) return Status::Corrupt(path + " is not a moeforge image cache");
  int32_t s32, t32;
  std::memcpy(&c.n_, p + 8, 8);
  std::memcpy(&s32, p + 16, 4);
  std::memcpy(&t32, p + 20, 4);
  c.res_ = s32;
  c.t_ = t32;
  size_t need = kHeader + size_t(c.n_) * 8 + size_t(c.n_) * c.t_ * 4 + size_t(c.n_) * c.res_ * c.res_ * 3;
  if (c.n_ <= 0 || c.res_ <= 0 || c.t_ < 0 || need != len)
    return Status::Corrupt("image cache " + path + " has a bad header or length (truncated?)");
  c.ids_ = reinterpret_cast<const int64_t*>(p + kHeader);
  c.tags_ = reinterpret_cast<const float*>(p + kHeader + c.n_ * 8);
  c.px_ = reinterpret_cast<const uint8_t*>(p + kHeader + c.n_ * 8 + c.n_ * c.t_ * 4);
  madvise(map, len, MADV_WILLNEED);
  return c;
}

ImageCache::ImageCache(ImageCache&& o) noexcept { *this = std::move(o); }

ImageCache& ImageCache::operator=(ImageCache&& o) noexcept {
  if (this != &o) {
    if (map_ != nullptr) munmap(map_, map_len_);
    map_ = o.map_;
    map_len_ = o.map_len_;
    n_ = o.n_;
    res_ = o.res_;
    t_ = o.t_;
    ids_ = o.ids_;
    tags_ = o.tags_;
    px_ = o.px_;
    o.map_ = nullptr;
  }
  return *this;
}

ImageCache::~ImageCache() {
  if (map_ != nullptr) munmap(map_, map_len_);
}

void ImageCache::Gather(const std::vector<int64_t>& idx, const std::vector<bool>& flip, float* out,
                        float* tags_out) const {
  const int r = res_;
  const int64_t plane = int64_t(r) * r;
  for (size_t j = 0; j < idx.size(); ++j) {
    const uint8_t* src = pixels(idx[j]);
    float* dst = out + j * 3 * plane;
    for (int y = 0; y < r; ++y)
      for (int x = 0; x < r; ++x) {
        const uint8_t* px = src + (int64_t(y) * r + (flip[j] ? r - 1 - x : x)) * 3;
        for (int c = 0; c < 3; ++c) dst[c * plane + y * r + x] = px[c] * (2.0f / 255.0f) - 1.0f;
      }
    std::memcpy(tags_out + j * t_, tags(idx[j]), sizeof(float) * t_);
  }
}

TagSampler::TagSampler(const TagSchema& schema, const float* tags, int64_t n) : schema_(schema) {
  const int t = schema.size();
  freq_.assign(t, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int k = 0; k < t; ++k) freq_[k] += tags[i * t + k] > 0.5f;
  for (auto& f : freq_) f = n > 0 ? f / n : 0.0;
}

TagSampler::TagSampler(const TagSchema& schema, std::vector<double> freq) : schema_(schema), freq_(std::move(freq)) {}

std::vector<float> TagSampler::Sample(std::mt19937_64& rng) const {
  std::vector<float> v(freq_.size(), 0.0f);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  size_t col = 0;
  for (const auto& g : schema_.groups()) {
    const size_t k = g.tags.size();
    if (g.exclusive) {
      double total = 0;
      for (size_t i = 0; i < k; ++i) total += freq_[col + i];
      // A group the data never shows: uniform.
      double x = u(rng) * (total > 0 ? total : double(k));
      size_t pick = col + k - 1;
      for (size_t i = 0; i < k; ++i) {
        x -= total > 0 ? freq_[col + i] : 1.0;
        if (x < 0) {
          pick = col + i;
          break;
        }
      }
      v[pick] = 1.0f;
    } else {
      for (size_t i = col; i < col + k; ++i) v[i] = u(rng) < freq_[i] ? 1.0f : 0.0f;
    }
    col += k;
  }
  return v;
}

}  // namespace moeforge::trainer
