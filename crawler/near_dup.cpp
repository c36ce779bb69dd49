#include "crawler/near_dup.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>

#include "codecs/decode.h"
#include "crawler/image_probe.h"
#include "crawler/png_grey.h"

namespace moeforge::crawler {

namespace {

// 9x8 block means of an 8-bit grey image (area averaging, one add per pixel: much cheaper
// than cv::resize's general INTER_AREA for this extreme reduction).
uint64_t DHashGrey(const cv::Mat& grey) {
  const int W = grey.cols, H = grey.rows;
  double sums[8][9] = {};
  // Column cell c (x * 9 / W == c) covers [x0[c], x0[c + 1]): summing each range is a plain loop the
  // compiler vectorises, where a per-pixel cell lookup is a scattered add.
  int x0[10];
  for (int c = 0; c <= 9; ++c) x0[c] = static_cast<int>((static_cast<int64_t>(c) * W + 8) / 9);
  for (int y = 0; y < H; ++y) {
    int cy = static_cast<int>(static_cast<int64_t>(y) * 8 / H);
    const uint8_t* p = grey.ptr<uint8_t>(y);
    for (int cx = 0; cx < 9; ++cx) {
      uint32_t s = 0;
      for (int x = x0[cx]; x < x0[cx + 1]; ++x) s += p[x];
      sums[cy][cx] += s;
    }
  }
  int rows_in[8] = {};
  for (int y = 0; y < H; ++y) rows_in[static_cast<int64_t>(y) * 8 / H]++;
  uint64_t h = 0;
  for (int y = 0; y < 8; ++y) {
    double m[9];
    for (int x = 0; x < 9; ++x) {
      double n = static_cast<double>(x0[x + 1] - x0[x]) * rows_in[y];
      m[x] = n > 0 ? sums[y][x] / n : 0;
    }
    for (int x = 0; x < 8; ++x) h = (h << 1) | (m[x] < m[x + 1] ? 1u : 0u);
  }
  return h;
}

}  // namespace

uint64_t DHash(const cv::Mat& image) {
  cv::Mat grey;
  if (image.channels() == 3) {
    cv::cvtColor(image, grey, cv::COLOR_BGR2GRAY);
  } else if (image.channels() == 4) {
    cv::cvtColor(image, grey, cv::COLOR_BGRA2GRAY);
  } else {
    grey = image;
  }
  if (grey.depth() != CV_8U) grey.convertTo(grey, CV_8U, grey.depth() == CV_16U ? 1.0 / 257 : 1.0);
  if (grey.cols < 9 || grey.rows < 8) {
    cv::Mat up;
    cv::resize(grey, up, cv::Size(std::max(9, grey.cols), std::max(8, grey.rows)), 0, 0, cv::INTER_NEAREST);
    grey = up;
  }
  return DHashGrey(grey);
}

Result<uint64_t> DHashOfEncoded(const std::string& bytes) {
  int flags = cv::IMREAD_GRAYSCALE;
  // JPEG decodes at 1/2, 1/4 or 1/8 scale directly (DCT scaling); the hash needs only
  // 9x8 cells, so keep at least ~64 px on the short side.
  ImageProbe p = ProbeImage(bytes.data(), bytes.size());
  if (p.format == "png") {
    if (std::optional<cv::Mat> grey = DecodePngGrey(bytes)) return DHash(*grey);
  }
  if (p.format == "jpeg" && p.width > 0 && p.height > 0) {
    int64_t side = std::min(p.width, p.height);
    if (side >= 512) flags = cv::IMREAD_REDUCED_GRAYSCALE_8;
    else if (side >= 256) flags = cv::IMREAD_REDUCED_GRAYSCALE_4;
    else if (side >= 128) flags = cv::IMREAD_REDUCED_GRAYSCALE_2;
  }
  cv::Mat img = codecs::Decode(bytes.data(), bytes.size(), flags);  // GIF: the first frame
  if (img.empty()) return Status::Corrupt("image does not decode");
  return DHash(img);
}

int Hamming(uint64_t a, uint64_t b) { return __builtin_popcountll(a ^ b); }

std::optional<std::pair<std::string, int>> NearDupIndex::FindLocked(uint64_t h, int threshold) const {
  if (threshold > kMaxThreshold) threshold = kMaxThreshold;
  int best = threshold + 1;
  int64_t best_i = -1;
  auto probe = [&](int band, uint16_t v) {
    auto it = bands_[band].find(v);
    if (it == bands_[band].end()) return;
    for (uint32_t i : it->second) {
      int d = Hamming(h, hashes_[i]);
      if (d < best) {
        best = d;
        best_i = i;
      }
    }
  };
  for (int b = 0; b < 4; ++b) {
    uint16_t v = static_cast<uint16_t>(h >> (16 * b));
    probe(b, v);
    if (threshold >= 4)
      for (int bit = 0; bit < 16; ++bit) probe(b, static_cast<uint16_t>(v ^ (1u << bit)));
  }
  if (best_i < 0) return std::nullopt;
  return std::make_pair(keys_[static_cast<size_t>(best_i)], best);
}

void NearDupIndex::AddLocked(uint64_t h, const std::string& key) {
  uint32_t i = static_cast<uint32_t>(hashes_.size());
  hashes_.push_back(h);
  keys_.push_back(key);
  live_++;
  for (int b = 0; b < 4; ++b) bands_[b][static_cast<uint16_t>(h >> (16 * b))].push_back(i);
}

void NearDupIndex::Remove(uint64_t h, const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  auto& first = bands_[0][static_cast<uint16_t>(h)];
  auto it = std::find_if(first.begin(), first.end(), [&](uint32_t i) { return hashes_[i] == h && keys_[i] == key; });
  if (it == first.end()) return;
  uint32_t slot = *it;
  // The slot stays in hashes_/keys_ (indices are positions), unreachable from every band.
  for (int b = 0; b < 4; ++b) {
    auto& v = bands_[b][static_cast<uint16_t>(h >> (16 * b))];
    v.erase(std::remove(v.begin(), v.end(), slot), v.end());
  }
  keys_[slot].clear();
  live_--;
}

std::optional<std::pair<std::string, int>> NearDupIndex::Find(uint64_t h, int threshold) const {
  std::lock_guard<std::mutex> l(mu_);
  return FindLocked(h, threshold);
}

void NearDupIndex::Add(uint64_t h, const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  AddLocked(h, key);
}

std::optional<std::pair<std::string, int>> NearDupIndex::FindOrAdd(uint64_t h, const std::string& key,
                                                                    int threshold) {
  std::lock_guard<std::mutex> l(mu_);
  auto m = FindLocked(h, threshold);
  if (!m) AddLocked(h, key);
  return m;
}

size_t NearDupIndex::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return live_;
}

}  // namespace moeforge::crawler
