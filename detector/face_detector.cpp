// FaceDetector: one backend, or several with their calibrated boxes fused.
#include <algorithm>
#include <sstream>

#include "core/hash.h"
#include "detector/backends.h"
#include "detector/detector.h"

namespace moeforge::detector {

namespace {

std::vector<std::string> SplitPlus(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, '+')) out.push_back(part);
  if (!s.empty() && s.back() == '+') out.push_back("");
  return out;
}

bool KnownKind(const std::string& k) {
  return k == "cascade" || k == "haar" || k == "yunet" || k == "yolo" || k == "whole";
}

// Two boxes are the same face when they overlap well, or one's centre lies inside the
// other and their sizes are alike (cascade and YuNet boxes frame a face differently).
bool SameFace(const cv::Rect2d& a, const cv::Rect2d& b) {
  if (IoU(a, b) > 0.3) return true;
  double ratio = a.width / b.width;
  if (ratio < 0.6 || ratio > 1.6) return false;
  cv::Point2d ca(a.x + a.width / 2, a.y + a.height / 2), cb(b.x + b.width / 2, b.y + b.height / 2);
  return a.contains(cb) && b.contains(ca);
}

class FaceDetectorImpl : public FaceDetector {
 public:
  FaceDetectorImpl(DetectOptions opts, std::vector<std::unique_ptr<Backend>> backends)
      : opts_(std::move(opts)), backends_(std::move(backends)) {
    for (auto& b : backends_) calib_.push_back(DefaultCalibration(b->kind()));
  }

  Result<std::vector<Face>> Detect(const cv::Mat& image) override {
    if (image.empty()) return Status::InvalidArgument("empty image");
    std::vector<Face> all;
    for (size_t i = 0; i < backends_.size(); ++i) {
      MF_ASSIGN_OR_RETURN(std::vector<RawBox> raw, backends_[i]->Run(image));
      for (const auto& r : raw) all.push_back({calib_[i].Apply(r.box), r.box, r.score, backends_[i]->kind()});
    }
    std::vector<Face> faces = backends_.size() > 1 ? Fuse(all) : all;
    faces.erase(std::remove_if(faces.begin(), faces.end(),
                               [&](const Face& f) { return f.box.width < opts_.min_face; }),
                faces.end());
    std::stable_sort(faces.begin(), faces.end(), [](const Face& a, const Face& b) { return a.score > b.score; });
    return faces;
  }

  std::string name() const override {
    std::string n;
    for (auto& b : backends_) n += (n.empty() ? "" : "+") + b->kind() + ":" + b->model_stem();
    return n;
  }
  std::string model_sha256() const override {
    if (backends_.size() == 1) return backends_[0]->model_sha256();
    std::string joined;
    for (auto& b : backends_) joined += b->model_sha256();
    return Sha256Hex(joined);
  }
  nlohmann::json params() const override {
    nlohmann::json p = nlohmann::json::object();
    for (size_t i = 0; i < backends_.size(); ++i) {
      nlohmann::json bp = backends_[i]->params();
      bp["calibration"] = calib_[i].ToJson();
      p[backends_[i]->kind()] = bp;
    }
    p["min_face"] = opts_.min_face;
    return p;
  }

 private:
  // Greedy clustering, best score first; a cluster's box is the score-weighted mean of
  // its members and its score 1 - prod(1 - s): two backends agreeing is stronger evidence.
  std::vector<Face> Fuse(std::vector<Face> all) const {
    std::stable_sort(all.begin(), all.end(), [](const Face& a, const Face& b) { return a.score > b.score; });
    std::vector<std::vector<Face>> clusters;
    for (const auto& f : all) {
      bool placed = false;
      for (auto& c : clusters)
        if (SameFace(c.front().box, f.box)) {
          c.push_back(f);
          placed = true;
          break;
        }
      if (!placed) clusters.push_back({f});
    }
    std::vector<Face> out;
    for (const auto& c : clusters) {
      double sw = 0, x = 0, y = 0, w = 0, h = 0, miss = 1;
      std::string by;
      for (const auto& f : c) {
        sw += f.score;
        x += f.score * f.box.x;
        y += f.score * f.box.y;
        w += f.score * f.box.width;
        h += f.score * f.box.height;
        miss *= 1 - f.score;
        if (by.find(f.backend) == std::string::npos) by += (by.empty() ? "" : "+") + f.backend;
      }
      Face m = c.front();
      if (sw > 0) m.box = cv::Rect2d(x / sw, y / sw, w / sw, h / sw);
      m.score = 1 - miss;
      m.backend = by;
      out.push_back(m);
    }
    return out;
  }

  DetectOptions opts_;
  std::vector<std::unique_ptr<Backend>> backends_;
  std::vector<Calibration> calib_;
};

}  // namespace

Status ValidateOptions(const DetectOptions& o) {
  auto kinds = SplitPlus(o.detector);
  if (kinds.empty()) return Status::InvalidArgument("--detector is empty (expected cascade, haar, yunet, yolo or whole)");
  for (const auto& k : kinds)
    if (!KnownKind(k))
      return Status::InvalidArgument("unknown detector '" + k +
                                     "' (expected cascade, haar, yunet, yolo, whole, or several joined by '+')");
  if (!o.model.empty() && SplitPlus(o.model).size() != kinds.size())
    return Status::InvalidArgument("--model names " + std::to_string(SplitPlus(o.model).size()) +
                                   " model(s) for " + std::to_string(kinds.size()) +
                                   " detector(s): join one per detector with '+'");
  if (o.crop_sizes.empty()) return Status::InvalidArgument("--crop-size: at least one size");
  for (int s : o.crop_sizes)
    if (s < 8 || s > 2048) return Status::InvalidArgument("--crop-size " + std::to_string(s) + " is outside 8..2048");
  if (o.margin < 0 || o.margin > 2) return Status::InvalidArgument("--margin must be within 0..2 (fraction of the face side)");
  if (o.max_pad < 0 || o.max_pad > 1) return Status::InvalidArgument("--max-pad must be within 0..1");
  if (o.min_face < 1) return Status::InvalidArgument("--min-face must be at least 1 pixel");
  if (o.scale_factor <= 1.0 || o.scale_factor > 2.0) return Status::InvalidArgument("--scale-factor must be in (1, 2]");
  if (o.min_neighbors < 0) return Status::InvalidArgument("--min-neighbors must be >= 0");
  if (o.input_size < 32 || o.input_size % 32 != 0 || o.input_size > 4096)
    return Status::InvalidArgument("--input-size must be a multiple of 32 in 32..4096");
  if (o.score_threshold < 0 || o.score_threshold > 1) return Status::InvalidArgument("--score-threshold must be within 0..1");
  if (o.nms_threshold < 0 || o.nms_threshold > 1) return Status::InvalidArgument("--nms-threshold must be within 0..1");
  if (o.threads < 0) return Status::InvalidArgument("--threads must be >= 0");
  return Status::Ok();
}

Result<std::unique_ptr<FaceDetector>> FaceDetector::Create(const DetectOptions& opts) {
  MF_RETURN_IF_ERROR(ValidateOptions(opts));
  auto kinds = SplitPlus(opts.detector);
  auto models = opts.model.empty() ? std::vector<std::string>(kinds.size()) : SplitPlus(opts.model);
  std::vector<std::unique_ptr<Backend>> backends;
  for (size_t i = 0; i < kinds.size(); ++i) {
    MF_ASSIGN_OR_RETURN(auto b, CreateBackend(kinds[i], models[i], opts));
    backends.push_back(std::move(b));
  }
  return std::unique_ptr<FaceDetector>(new FaceDetectorImpl(opts, std::move(backends)));
}

}  // namespace moeforge::detector
