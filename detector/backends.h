// Private to detector/: the raw backends (one model each) and their calibration. The
// public FaceDetector (detector.h) wraps one or several of these.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "core/status.h"
#include "detector/detector.h"

namespace moeforge::detector {

struct RawBox {
  cv::Rect2d box;  // the backend's own box, original pixels
  double score = 0;
};

// Maps a backend's raw box onto the demo truth's meaning (fringe to chin, ear to ear):
//   cx' = cx + dx * w   cy' = cy + dy * h   w' = sw * w   h' = sh * h
// Fitted on demo booru truth by moeforge-detect-calibrate (least squares over matched
// pairs), checked on the real illustrations' contact sheet.
struct Calibration {
  double dx = 0, dy = 0, sw = 1, sh = 1;
  cv::Rect2d Apply(const cv::Rect2d& raw) const;
  nlohmann::json ToJson() const;
};
// The calibration this build ships for a backend kind ("cascade", "haar", "yunet", "yolo").
Calibration DefaultCalibration(const std::string& kind);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Result<std::vector<RawBox>> Run(const cv::Mat& bgr) = 0;
  virtual std::string kind() const = 0;        // "cascade"
  virtual nlohmann::json params() const = 0;   // what changes the raw boxes
  // Which implementation runs the model: "moeforge-lbp" (our LBP cascade evaluator) or
  // "opencv". Not in params(): both give the same boxes, and params() is part of the
  // detector's identity in the database (a new value would redo every image).
  virtual std::string engine() const { return "opencv"; }
  const std::string& model_path() const { return model_path_; }
  const std::string& model_sha256() const { return model_sha256_; }
  // "lbpcascade_animeface": the model file's name without folder and extension.
  std::string model_stem() const;

 protected:
  std::string model_path_;
  std::string model_sha256_;
};

// Finds a model by path, registry name or file name (core/models.h ResolveModel).
Result<std::string> FindModel(const std::string& name_or_path);

// One backend of `kind` ("cascade", "haar", "yunet", "yolo") with `model` (empty: the
// kind's default model).
Result<std::unique_ptr<Backend>> CreateBackend(const std::string& kind, const std::string& model,
                                               const DetectOptions& opts);

// Non-maximum suppression over boxes (IoU above `iou` drops the weaker one); returns the
// kept indexes, best first.
std::vector<int> Nms(const std::vector<RawBox>& boxes, double iou);
double IoU(const cv::Rect2d& a, const cv::Rect2d& b);

}  // namespace moeforge::detector
