// Our own evaluator for OpenCV LBP cascades (lbpcascade_animeface): the same detections
// as cv::CascadeClassifier::detectMultiScale in OpenCV 4.6, about 5x faster on one thread
// (AVX2). Detection was ~90% of the detect stage's CPU, nearly all of it in OpenCV's
// window-by-window evaluation and its per-scale resizes.
//
// Exactness: every step that decides a window is the one OpenCV 4.6 runs (cascadedetect.cpp):
// the same scale list and float/double roundings; the same scaled images and integral
// images (cv::resize INTER_LINEAR_EXACT and cv::integral are integer arithmetic once the
// resize's weights are known, so we compute the same bits ourselves, fused in one pass);
// the same window grid (x/y step 2 below scale 2, the "skip the next x after a stage-0
// reject" rule, only the rows its parallel stripes cover); the same stage decisions
// (float leaves summed into a double, in the weak classifiers' order, against
// threshold - 1e-5f); the same candidate rects; then cv::groupRectangles(eps 0.2) and the
// clip to the image. What differs is how the windows are walked. The AVX2 path takes 16
// adjacent windows per vector (every grid column of a row through stage 0, the skip rule
// replayed on the results, then each 16's survivors through the later stages) on a 16-bit
// integral, and sums leaves in float, redoing in double the rare sums that fall too close
// to a threshold to call. The scalar path walks windows one by one as OpenCV does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "core/status.h"

namespace moeforge::detector {

struct LbpDetections {
  std::vector<cv::Rect> objects;   // grouped and clipped to the image, as detectMultiScale gives them
  std::vector<int> num_detections; // per object: how many raw windows were grouped into it
};

class LbpCascade {
 public:
  enum class Isa { kScalar, kAvx2 };

  // Reads an OpenCV cascade XML (the "cascade" format opencv_traincascade writes).
  // NotFound: no such file. Corrupt: not a cascade file we can parse (bad XML, missing
  // nodes, features outside the window). Unsupported: a cascade, but not one this evaluator
  // runs: a Haar (or HOG) cascade, the old opencv-haar-classifier layout (always Haar), or
  // LBP trees deeper than stumps; cv::CascadeClassifier still runs those.
  static Result<LbpCascade> Load(const std::string& path);
  ~LbpCascade();
  LbpCascade(LbpCascade&&) noexcept;
  LbpCascade& operator=(LbpCascade&&) noexcept;

  // cv::CascadeClassifier::detectMultiScale(image, objects, numDetections, scale_factor,
  // min_neighbors, 0, min_size, max_size) on the same cascade, to the rect and the count
  // (the order of the objects may differ). `image`: 8-bit, grey or BGR(A) (converted with
  // cvtColor BGR2GRAY like OpenCV). Not safe to call on one object from two threads at once
  // (scratch buffers are reused across calls), like cv::CascadeClassifier.
  Result<LbpDetections> DetectMultiScale(const cv::Mat& image, double scale_factor, int min_neighbors,
                                         cv::Size min_size, cv::Size max_size = cv::Size());

  // The windows that pass every stage, before grouping: (rounded scaled position, window
  // size) per hit, as OpenCV's detectMultiScaleNoGrouping collects them (order may differ).
  Result<std::vector<cv::Rect>> DetectNoGrouping(const cv::Mat& image, double scale_factor, cv::Size min_size,
                                                 cv::Size max_size = cv::Size());

  // The instruction set used: AVX2 where the CPU has it (and the cascade's blocks are at
  // most 128 pixels, as lbpcascade_animeface's are: the AVX2 path sums them in 16 bits),
  // else scalar. Tests force scalar to check that path against OpenCV too.
  Isa isa() const { return isa_; }
  const char* isa_name() const { return isa_ == Isa::kAvx2 ? "avx2" : "scalar"; }
  void ForceScalar(bool on);
  // Tests: widens the float sums' margin so that every window's stage sums are redone in
  // double (factor 1e9), to check that path; 1 is the normal, proven margin.
  void ScaleFloatMarginForTest(double factor);

  // The integral ((h + 1) x (w + 1)) of 8-bit `grey` scaled to `size`, built the way a
  // scale is built for the scan (our exact INTER_LINEAR_EXACT resize fused with the
  // integral, in the layout of scan step `step`, read back), for tests against cv::resize +
  // cv::integral: CV_32S from the scalar path, CV_16S (the integral modulo 2^16) from AVX2.
  static cv::Mat ScaledIntegral(const cv::Mat& grey, cv::Size size, int step, Isa isa);

  cv::Size window() const { return window_; }
  int num_stages() const { return static_cast<int>(stages_.size()); }
  int num_weak() const { return static_cast<int>(left_.size()); }

  // One boosted stage, as OpenCV keeps it (public for the kernels in the .cpp).
  struct Stage {
    int first = 0, ntrees = 0;
    float threshold = 0;  // as OpenCV keeps it: (float)stageThreshold - 1e-5f
    // The AVX2 path sums leaves in float, not double: a float sum below fail_below (at or
    // above pass_from) means OpenCV's double sum is below (at or above) the threshold for
    // sure; sums between the two are redone in double (see ScaleFloatMarginForTest in the .cpp).
    float fail_below = 0, pass_from = 0;
    double max_abs_sum = 0;  // sum over the stage's stumps of max(|left|, |right|)
  };

 private:
  struct Scratch;
  LbpCascade();
  void PrepareOffsets(int stride);

  cv::Size window_;
  std::vector<Stage> stages_;
  std::vector<cv::Rect> features_;  // the 3x3 grid's block, window pixels
  // One entry per weak classifier (all stumps, stage by stage):
  std::vector<int> feature_;        // index into features_
  std::vector<uint32_t> subset_;    // 8 words: bit c set -> left leaf for LBP code c
  std::vector<uint32_t> subset_rev_;  // the same words in reverse order (the AVX2 kernel's)
  std::vector<float> left_, right_;
  Isa isa_ = Isa::kScalar;
  bool blocks_fit_16_bits_ = false;

  // Per stride: the 16 integral-image offsets of each weak classifier's feature, for the
  // plain layout (step 1) and the column-parity-split layout (step 2), see the .cpp.
  int offsets_stride_ = -1;
  std::vector<int32_t> offsets_[2];
  std::unique_ptr<Scratch> scratch_;  // buffers reused across calls
};

}  // namespace moeforge::detector
