// The raw detector backends: OpenCV cascades, YuNet and YOLOv5-layout ONNX through cv::dnn.
#include "detector/backends.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <numeric>

#include <opencv2/dnn.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/objdetect.hpp>

#include "core/hash.h"
#include "core/models.h"
#include "detector/lbp_cascade.h"

namespace fs = std::filesystem;

namespace moeforge::detector {

cv::Rect2d Calibration::Apply(const cv::Rect2d& r) const {
  double cx = r.x + r.width / 2 + dx * r.width;
  double cy = r.y + r.height / 2 + dy * r.height;
  double w = sw * r.width, h = sh * r.height;
  return {cx - w / 2, cy - h / 2, w, h};
}

nlohmann::json Calibration::ToJson() const { return {{"dx", dx}, {"dy", dy}, {"sw", sw}, {"sh", sh}}; }

std::string Backend::model_stem() const { return fs::path(model_path_).stem().string(); }

double IoU(const cv::Rect2d& a, const cv::Rect2d& b) {
  double inter = (a & b).area();
  double uni = a.area() + b.area() - inter;
  return uni > 0 ? inter / uni : 0;
}

std::vector<int> Nms(const std::vector<RawBox>& boxes, double iou) {
  std::vector<int> order(boxes.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return boxes[a].score > boxes[b].score; });
  std::vector<int> keep;
  for (int i : order) {
    bool drop = false;
    for (int k : keep)
      if (IoU(boxes[i].box, boxes[k].box) > iou) {
        drop = true;
        break;
      }
    if (!drop) keep.push_back(i);
  }
  return keep;
}

Result<std::string> FindModel(const std::string& name_or_path) { return ResolveModel(name_or_path); }

Calibration DefaultCalibration(const std::string& kind) {
  // Fitted with `moeforge-detect-eval --fit --n 500` (medians over raw boxes matched to
  // demo booru truth, seed 1, posts 1..500). lbpcascade's raw box is ~16% wider than the
  // fringe-to-chin face and sits low (takes in the neck); the Haar cascade's and YuNet's
  // are smaller than the face and low (YuNet was trained on real faces: brows to chin).
  // Checked on the 29 real illustrations' contact sheet (docs/detector-real.jpg).
  if (kind == "cascade") return {-0.009, -0.161, 0.864, 0.917};
  if (kind == "haar") return {-0.012, -0.192, 1.159, 1.229};
  if (kind == "yunet") return {-0.030, -0.235, 1.278, 1.164};
  return {};
}

namespace {

// ---- Cascades: lbpcascade_animeface (LBP), the Haar anime cascade ----
// LBP cascades run on our own evaluator (lbp_cascade.h: the same boxes and neighbour
// counts as cv::CascadeClassifier::detectMultiScale, ~5x faster on one thread with AVX2).
// Everything else (Haar cascades, files our loader does not take) runs on
// cv::CascadeClassifier, and so do LBP cascades when the environment has
// MOEFORGE_CASCADE_ENGINE=opencv: an escape hatch, to compare the two or to get around a
// cascade our evaluator mishandles. engine() says which one runs.
class CascadeBackend : public Backend {
 public:
  CascadeBackend(std::string kind, const DetectOptions& o) : kind_(std::move(kind)), opts_(o) {}
  Status Load(const std::string& path) {
    model_path_ = path;
    const char* engine = std::getenv("MOEFORGE_CASCADE_ENGINE");
    bool force_opencv = engine && std::string(engine) == "opencv";
    if (!force_opencv) {
      // Not an LBP stump cascade, or one we cannot parse: OpenCV loads it (or says why not).
      auto lbp = LbpCascade::Load(path);
      if (lbp.ok()) lbp_ = std::make_unique<LbpCascade>(std::move(*lbp));
    }
    if (!lbp_) {
      try {
        if (!cascade_.load(path) || cascade_.empty())
          return Status::Unsupported("model '" + path +
                                     "' is not an OpenCV cascade (CascadeClassifier could not load it): "
                                     "pass a cascade .xml, or --detector yunet|yolo for ONNX models");
      } catch (const cv::Exception& e) {
        return Status::Unsupported("model '" + path + "' is not an OpenCV cascade (" + e.err +
                                   "): pass a cascade .xml, or --detector yunet|yolo for ONNX models");
      }
    }
    MF_ASSIGN_OR_RETURN(model_sha256_, Sha256File(path));
    return Status::Ok();
  }
  Result<std::vector<RawBox>> Run(const cv::Mat& img) override {
    cv::Mat grey;
    if (img.channels() == 3)
      cv::cvtColor(img, grey, cv::COLOR_BGR2GRAY);
    else if (img.channels() == 4)
      cv::cvtColor(img, grey, cv::COLOR_BGRA2GRAY);
    else
      grey = img;
    cv::equalizeHist(grey, grey);
    std::vector<cv::Rect> objs;
    std::vector<int> neighbours;
    int min_size = std::max(1, opts_.min_face);
    if (lbp_) {
      Result<LbpDetections> d = Status::Internal("LBP cascade: no result");
      try {
        d = lbp_->DetectMultiScale(grey, opts_.scale_factor, opts_.min_neighbors, cv::Size(min_size, min_size));
      } catch (const cv::Exception& e) {
        return Status::Internal("LBP cascade failed: " + e.msg);
      }
      if (!d.ok()) return d.status();
      objs = std::move(d->objects);
      neighbours = std::move(d->num_detections);
    } else {
      try {
        cascade_.detectMultiScale(grey, objs, neighbours, opts_.scale_factor, opts_.min_neighbors, 0,
                                  cv::Size(min_size, min_size));
      } catch (const cv::Exception& e) {
        return Status::Internal("detectMultiScale failed: " + e.msg);
      }
    }
    std::vector<RawBox> out;
    for (size_t i = 0; i < objs.size(); ++i) {
      int n = i < neighbours.size() ? neighbours[i] : opts_.min_neighbors;
      // Neighbour count -> 0..1: 5 neighbours ~0.4, 20 ~0.86.
      out.push_back({cv::Rect2d(objs[i]), 1.0 - std::exp(-n / 10.0)});
    }
    return out;
  }
  std::string kind() const override { return kind_; }
  nlohmann::json params() const override {
    return {{"scale_factor", opts_.scale_factor}, {"min_neighbors", opts_.min_neighbors},
            {"min_size", opts_.min_face}, {"preprocess", "grey+equalizeHist"}};
  }
  std::string engine() const override { return lbp_ ? "moeforge-lbp" : "opencv"; }

 private:
  std::string kind_;
  DetectOptions opts_;
  std::unique_ptr<LbpCascade> lbp_;  // set: our evaluator runs; else cascade_
  cv::CascadeClassifier cascade_;
};

// Letterboxing for the dnn backends: the image scaled so its longer side is `size`, at
// the top-left of a canvas whose sides are multiples of 32 (or `size` x `size`).
struct Letterbox {
  cv::Mat canvas;
  double scale = 1;
  double ox = 0, oy = 0;  // canvas position of the image's origin
  cv::Rect2d ToImage(double x, double y, double w, double h) const {
    return {(x - ox) / scale, (y - oy) / scale, w / scale, h / scale};
  }
};

Letterbox MakeLetterbox(const cv::Mat& bgr, int size, bool square, bool centre, const cv::Scalar& fill) {
  Letterbox lb;
  lb.scale = static_cast<double>(size) / std::max(bgr.cols, bgr.rows);
  int w = std::max(1, static_cast<int>(std::lround(bgr.cols * lb.scale)));
  int h = std::max(1, static_cast<int>(std::lround(bgr.rows * lb.scale)));
  cv::Mat resized;
  cv::resize(bgr, resized, cv::Size(w, h), 0, 0, lb.scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  int cw = square ? size : (w + 31) / 32 * 32;
  int ch = square ? size : (h + 31) / 32 * 32;
  lb.canvas = cv::Mat(ch, cw, CV_8UC3, fill);
  if (centre) {
    lb.ox = (cw - w) / 2;
    lb.oy = (ch - h) / 2;
  }
  resized.copyTo(lb.canvas(cv::Rect(static_cast<int>(lb.ox), static_cast<int>(lb.oy), w, h)));
  return lb;
}

cv::Mat ToBgr(const cv::Mat& img) {
  if (img.channels() == 3) return img;
  cv::Mat out;
  cv::cvtColor(img, out, img.channels() == 4 ? cv::COLOR_BGRA2BGR : cv::COLOR_GRAY2BGR);
  return out;
}

Result<cv::dnn::Net> LoadOnnx(const std::string& path, const std::string& backend) {
  cv::dnn::Net net;
  // The importer logs its own multi-line complaint; ours below says it once, with the fix.
  auto level = cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  try {
    net = cv::dnn::readNetFromONNX(path);
    cv::utils::logging::setLogLevel(level);
  } catch (const cv::Exception& e) {
    cv::utils::logging::setLogLevel(level);
    // The importer's own words, first line only: "Node [LayerNormalization@ai.onnx] ... parse error".
    std::string why = e.err.empty() ? e.msg : e.err;
    why = why.substr(0, why.find('\n'));
    if (why.size() > 200) why = why.substr(0, 200) + "...";
    return Status::Unsupported("model '" + path + "' cannot be imported by OpenCV " CV_VERSION
                               "'s ONNX importer (" + why + "). For --detector " + backend +
                               ", export the model with ONNX opset <= 12 in the " +
                               (backend == "yolo" ? std::string("YOLOv5 layout ([1, N, 5+classes])")
                                                  : std::string("YuNet 12-output layout")) +
                               " (YOLOv8 and newer graphs do not load in 4.6), or use --detector cascade");
  }
  if (net.empty()) return Status::Unsupported("model '" + path + "' holds no network OpenCV can run");
  net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  return net;
}

// ---- YuNet, the current layout: cls/obj/bbox/kps outputs at strides 8, 16, 32 ----
class YunetBackend : public Backend {
 public:
  explicit YunetBackend(const DetectOptions& o) : opts_(o) {}
  Status Load(const std::string& path) {
    model_path_ = path;
    MF_ASSIGN_OR_RETURN(net_, LoadOnnx(path, "yunet"));
    std::vector<std::string> have = net_.getUnconnectedOutLayersNames();
    for (int s : {8, 16, 32})
      for (const char* p : {"cls_", "obj_", "bbox_"}) {
        std::string n = p + std::to_string(s);
        if (std::find(have.begin(), have.end(), n) == have.end())
          return Status::Unsupported("model '" + path + "' is not a YuNet in the current layout (no output '" + n +
                                     "'): use face_detection_yunet_2023mar or newer");
        outputs_.push_back(n);
      }
    MF_ASSIGN_OR_RETURN(model_sha256_, Sha256File(path));
    return Status::Ok();
  }
  Result<std::vector<RawBox>> Run(const cv::Mat& img) override {
    Letterbox lb = MakeLetterbox(ToBgr(img), opts_.input_size, false, false, cv::Scalar(0, 0, 0));
    cv::Mat blob = cv::dnn::blobFromImage(lb.canvas, 1.0, cv::Size(), cv::Scalar(), false, false, CV_32F);
    std::vector<cv::Mat> outs;
    try {
      net_.setInput(blob);
      net_.forward(outs, outputs_);
    } catch (const cv::Exception& e) {
      return Status::Internal("YuNet forward failed on '" + model_path_ + "': " + e.msg);
    }
    std::vector<RawBox> boxes;
    const int strides[3] = {8, 16, 32};
    for (int si = 0; si < 3; ++si) {
      int s = strides[si];
      int cols = lb.canvas.cols / s, rows = lb.canvas.rows / s;
      const cv::Mat& cls = outs[si * 3 + 0];
      const cv::Mat& obj = outs[si * 3 + 1];
      const cv::Mat& bbox = outs[si * 3 + 2];
      if (static_cast<int>(cls.total()) != rows * cols || static_cast<int>(bbox.total()) != rows * cols * 4)
        return Status::Unsupported("model '" + model_path_ + "': YuNet output " + outputs_[si * 3] +
                                   " has an unexpected size");
      const float* c = cls.ptr<float>();
      const float* o = obj.ptr<float>();
      const float* b = bbox.ptr<float>();
      for (int r = 0; r < rows; ++r)
        for (int col = 0; col < cols; ++col) {
          int i = r * cols + col;
          double score = std::sqrt(std::clamp<double>(c[i], 0, 1) * std::clamp<double>(o[i], 0, 1));
          if (score < opts_.score_threshold) continue;
          double cx = (col + b[i * 4 + 0]) * s, cy = (r + b[i * 4 + 1]) * s;
          double w = std::exp(b[i * 4 + 2]) * s, h = std::exp(b[i * 4 + 3]) * s;
          boxes.push_back({lb.ToImage(cx - w / 2, cy - h / 2, w, h), score});
        }
    }
    std::vector<RawBox> out;
    for (int k : Nms(boxes, opts_.nms_threshold)) out.push_back(boxes[k]);
    return out;
  }
  std::string kind() const override { return "yunet"; }
  nlohmann::json params() const override {
    return {{"input_size", opts_.input_size}, {"score_threshold", opts_.score_threshold},
            {"nms_threshold", opts_.nms_threshold}};
  }

 private:
  DetectOptions opts_;
  cv::dnn::Net net_;
  std::vector<std::string> outputs_;
};

// ---- YOLO-style ONNX: one output, YOLOv5 layout [1, N, 5+C] (cx cy w h obj cls...) in
// input pixels, or YOLOv8 layout [1, 4+C, N] (no objectness) when the graph imports ----
class YoloBackend : public Backend {
 public:
  explicit YoloBackend(const DetectOptions& o) : opts_(o) {}
  Status Load(const std::string& path) {
    model_path_ = path;
    MF_ASSIGN_OR_RETURN(net_, LoadOnnx(path, "yolo"));
    MF_ASSIGN_OR_RETURN(model_sha256_, Sha256File(path));
    return Status::Ok();
  }
  Result<std::vector<RawBox>> Run(const cv::Mat& img) override {
    Letterbox lb = MakeLetterbox(ToBgr(img), opts_.input_size, true, true, cv::Scalar(114, 114, 114));
    cv::Mat blob = cv::dnn::blobFromImage(lb.canvas, 1.0 / 255, cv::Size(), cv::Scalar(), true, false, CV_32F);
    cv::Mat out;
    try {
      net_.setInput(blob);
      out = net_.forward();
    } catch (const cv::Exception& e) {
      return Status::Internal("YOLO forward failed on '" + model_path_ + "': " + e.msg);
    }
    if (out.dims != 3 || out.size[0] != 1)
      return Status::Unsupported("model '" + model_path_ + "' is not in the YOLOv5 layout: its output has " +
                                 std::to_string(out.dims) + " dimensions, expected [1, N, 5+classes]");
    int a = out.size[1], b = out.size[2];
    bool v8 = a < b;  // [1, 4+C, N]
    int n = v8 ? b : a, k = v8 ? a : b;
    if (k < (v8 ? 5 : 6))
      return Status::Unsupported("model '" + model_path_ + "': output rows of " + std::to_string(k) +
                                 " values, too few for a YOLO detector");
    const float* p = out.ptr<float>();
    auto at = [&](int row, int j) { return v8 ? p[j * n + row] : p[row * k + j]; };
    std::vector<RawBox> boxes;
    for (int i = 0; i < n; ++i) {
      double best = 0;
      for (int j = v8 ? 4 : 5; j < k; ++j) best = std::max<double>(best, at(i, j));
      double score = v8 ? best : at(i, 4) * best;
      if (score < opts_.score_threshold) continue;
      double cx = at(i, 0), cy = at(i, 1), w = at(i, 2), h = at(i, 3);
      boxes.push_back({lb.ToImage(cx - w / 2, cy - h / 2, w, h), score});
    }
    std::vector<RawBox> kept;
    for (int i : Nms(boxes, opts_.nms_threshold)) kept.push_back(boxes[i]);
    return kept;
  }
  std::string kind() const override { return "yolo"; }
  nlohmann::json params() const override {
    return {{"input_size", opts_.input_size}, {"score_threshold", opts_.score_threshold},
            {"nms_threshold", opts_.nms_threshold}};
  }

 private:
  DetectOptions opts_;
  cv::dnn::Net net_;
};

// For folders of faces that are already cropped (Getchu-style sets, the MakeGirlsMoe
// data itself): one face per image, placed so that CropSquare(box, margin) is the
// image's centred square, i.e. the crop is the whole image (its square middle).
class WholeBackend : public Backend {
 public:
  explicit WholeBackend(const DetectOptions& o) : margin_(o.margin) {
    model_path_ = "whole";
    model_sha256_ = Sha256Hex("moeforge-whole-image-face/1");
  }
  Result<std::vector<RawBox>> Run(const cv::Mat& img) override {
    double side = std::min(img.cols, img.rows);
    double face = side / (1 + 2 * margin_);
    double cy = img.rows / 2.0 + std::min(0.1, margin_ / 2) * face;
    return std::vector<RawBox>{{cv::Rect2d(img.cols / 2.0 - face / 2, cy - face / 2, face, face), 1.0}};
  }
  std::string kind() const override { return "whole"; }
  nlohmann::json params() const override { return {{"margin", margin_}}; }

 private:
  double margin_;
};

}  // namespace

Result<std::unique_ptr<Backend>> CreateBackend(const std::string& kind, const std::string& model,
                                               const DetectOptions& opts) {
  std::string name = model;
  if (name.empty()) {
    if (kind == "cascade") name = "lbpcascade_animeface";
    else if (kind == "haar") name = "haar_anime_face_detect";
    else if (kind == "yunet") name = "yunet";
    else if (kind == "yolo")
      return Status::InvalidArgument("--detector yolo needs --model NAME_OR_PATH (a YOLOv5-layout ONNX face detector)");
  }
  if (kind == "cascade" || kind == "haar") {
    MF_ASSIGN_OR_RETURN(std::string path, FindModel(name));
    auto b = std::make_unique<CascadeBackend>(kind, opts);
    MF_RETURN_IF_ERROR(b->Load(path));
    return std::unique_ptr<Backend>(std::move(b));
  }
  if (kind == "yunet") {
    MF_ASSIGN_OR_RETURN(std::string path, FindModel(name));
    auto b = std::make_unique<YunetBackend>(opts);
    MF_RETURN_IF_ERROR(b->Load(path));
    return std::unique_ptr<Backend>(std::move(b));
  }
  if (kind == "yolo") {
    MF_ASSIGN_OR_RETURN(std::string path, FindModel(name));
    auto b = std::make_unique<YoloBackend>(opts);
    MF_RETURN_IF_ERROR(b->Load(path));
    return std::unique_ptr<Backend>(std::move(b));
  }
  if (kind == "whole") {
    if (!model.empty()) return Status::InvalidArgument("--detector whole takes no model");
    return std::unique_ptr<Backend>(std::make_unique<WholeBackend>(opts));
  }
  return Status::InvalidArgument("unknown detector '" + kind + "' (expected cascade, haar, yunet, yolo or whole)");
}

}  // namespace moeforge::detector
