// moeforge-detect-eval: scores a detector on demo booru illustrations against their truth,
// and fits the calibration of a backend's raw boxes.
//
//   moeforge-detect-eval [--detector cascade] [--model M] [--seed 1] [--first 1] [--n 500]
//                        [--fit] [--dump DIR] [--save DIR]
//
// Matching rule (issue 5): a detection counts for a true face when its centre lies in the
// true box and its width is 0.4 to 1.6 times the true width. Recall: true faces matched;
// precision: detections that match a true face. Crops: a face whose crop would exceed
// --max-pad is dropped by the stage, so "crop recall" counts only faces that get a crop.
// --fit prints, per backend, the calibration (dx dy sw sh: medians over raw boxes whose
// centre lies in a true box and whose width is 0.5 to 3 times it) to paste into
// DefaultCalibration().
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <oneapi/tbb/parallel_for.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "demo_booru/render.h"
#include "detector/backends.h"
#include "detector/detector.h"

using namespace moeforge;

namespace {

bool Matches(const cv::Rect2d& truth, const cv::Rect2d& det, double lo, double hi) {
  cv::Point2d c(det.x + det.width / 2, det.y + det.height / 2);
  double r = det.width / truth.width;
  return truth.contains(c) && r >= lo && r <= hi;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

struct Tally {
  int images = 0, faces = 0, found = 0, dets = 0, dets_true = 0, crops = 0, crops_true = 0, crops_right_char = 0;
  int faces_with_crop = 0;
  double iou_sum = 0;  // over matched (truth, detection) pairs: how well boxes mean the truth
  void Add(const Tally& o) {
    iou_sum += o.iou_sum;
    images += o.images, faces += o.faces, found += o.found, dets += o.dets, dets_true += o.dets_true;
    crops += o.crops, crops_true += o.crops_true, crops_right_char += o.crops_right_char;
    faces_with_crop += o.faces_with_crop;
  }
  void Print(const char* label) const {
    auto pct = [](int a, int b) { return b ? 100.0 * a / b : 100.0; };
    std::printf("%-11s images %4d faces %4d | recall %6.2f%% precision %6.2f%% (%d/%d found, %d/%d detections true) | "
                "crops %d: recall %6.2f%%, of a real face %6.2f%%, one character's %6.2f%% | mean IoU %.3f\n",
                label, images, faces, pct(found, faces), pct(dets_true, dets), found, faces, dets_true, dets, crops,
                pct(faces_with_crop, faces), pct(crops_true, crops), pct(crops_right_char, crops),
                found ? iou_sum / found : 0.0);
  }
};

}  // namespace

int main(int argc, char** argv) {
  detector::DetectOptions opts;
  uint64_t seed = 1;
  int64_t first = 1;
  int n = 500;
  bool fit = false;
  std::string dump, save;  // --save DIR: write every post's file there (for contact sheets)
  CLI::App app{"Score a detector on demo booru illustrations against their truth; fit calibrations"};
  app.add_option("--detector", opts.detector, "Backends, e.g. cascade, yunet, cascade+yunet")->capture_default_str();
  app.add_option("--model", opts.model, "Model name or path (single backend)");
  app.add_option("--seed", seed, "Demo booru seed")->capture_default_str();
  app.add_option("--first", first, "First post id")->capture_default_str();
  app.add_option("--n", n, "Posts to score")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_flag("--fit", fit, "Print each backend's calibration fitted on these posts");
  app.add_option("--dump", dump, "Folder: posts with a miss or a false detection, boxes drawn");
  app.add_option("--save", save, "Folder: every post's file (for contact sheets)");
  app.add_option("--min-neighbors", opts.min_neighbors, "Cascade minNeighbors")->capture_default_str();
  app.add_option("--score-threshold", opts.score_threshold, "dnn score threshold")->capture_default_str();
  app.add_option("--margin", opts.margin, "Crop margin")->capture_default_str();
  app.add_option("--max-pad", opts.max_pad, "Largest padded fraction of a crop")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (auto s = detector::ValidateOptions(opts); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 2;
  }

  std::mutex mu;
  Tally total;
  std::map<std::string, Tally> by_kind;
  std::map<std::string, std::vector<double>> fdx, fdy, fsw, fsh;
  std::vector<std::string> kinds;
  {
    std::string k;
    for (char c : opts.detector + "+") {
      if (c == '+') kinds.push_back(k), k.clear();
      else k += c;
    }
  }
  tbb::parallel_for(first, first + n, [&](int64_t id) {
    thread_local std::unique_ptr<detector::FaceDetector> det;
    thread_local std::vector<std::unique_ptr<detector::Backend>> raw;
    if (!det) {
      auto d = detector::FaceDetector::Create(opts);
      if (!d.ok()) {
        std::fprintf(stderr, "%s\n", d.status().ToString().c_str());
        std::exit(1);
      }
      det = std::move(*d);
      if (fit)
        for (auto& k : kinds) raw.push_back(std::move(*detector::CreateBackend(k, "", opts)));
    }
    demo::Illustration ill = demo::RenderPost(seed, id);
    if (!save.empty())
      cv::imwrite(save + "/post_" + std::to_string(1000000 + id).substr(1) + ".png",
                  cv::imdecode(std::vector<uchar>(ill.encoded.begin(), ill.encoded.end()), cv::IMREAD_COLOR));
    std::vector<uchar> bytes(ill.encoded.begin(), ill.encoded.end());
    cv::Mat img = cv::imdecode(bytes, cv::IMREAD_COLOR);
    auto faces = det->Detect(img);
    if (!faces.ok()) return;
    Tally t;
    t.images = 1;
    t.faces = static_cast<int>(ill.faces.size());
    std::vector<bool> has_crop(ill.faces.size(), false);
    for (const auto& tf : ill.faces) {
      cv::Rect2d tb(tf.box);
      for (const auto& f : *faces)
        if (Matches(tb, f.box, 0.4, 1.6)) {
          ++t.found;
          t.iou_sum += detector::IoU(tb, f.box);
          break;
        }
    }
    bool bad = t.found < t.faces;
    for (const auto& f : *faces) {
      ++t.dets;
      int matched = 0, idx = -1;
      for (size_t k = 0; k < ill.faces.size(); ++k)
        if (Matches(cv::Rect2d(ill.faces[k].box), f.box, 0.4, 1.6)) ++matched, idx = static_cast<int>(k);
      if (matched) ++t.dets_true;
      else bad = true;
      if (detector::CropFace(img, f.box, opts).ok()) {
        ++t.crops;
        if (matched) ++t.crops_true, has_crop[idx] = true;
        if (matched == 1) ++t.crops_right_char;
      }
    }
    for (bool b : has_crop) t.faces_with_crop += b;
    std::lock_guard<std::mutex> lock(mu);
    total.Add(t);
    by_kind[demo::PostKindName(ill.plan.kind)].Add(t);
    if (fit)
      for (auto& b : raw) {
        auto rb = b->Run(img);
        if (!rb.ok()) continue;
        for (const auto& r : *rb)
          for (const auto& tf : ill.faces) {
            cv::Rect2d tb(tf.box);
            if (!Matches(tb, r.box, 0.5, 3.0)) continue;
            fdx[b->kind()].push_back((tb.x + tb.width / 2 - r.box.x - r.box.width / 2) / r.box.width);
            fdy[b->kind()].push_back((tb.y + tb.height / 2 - r.box.y - r.box.height / 2) / r.box.height);
            fsw[b->kind()].push_back(tb.width / r.box.width);
            fsh[b->kind()].push_back(tb.height / r.box.height);
          }
      }
    if (bad && !dump.empty()) {
      cv::Mat vis = img.clone();
      for (const auto& tf : ill.faces) cv::rectangle(vis, tf.box, cv::Scalar(255, 0, 0), 2);
      for (const auto& f : *faces) cv::rectangle(vis, f.box, cv::Scalar(0, 255, 0), 2);
      cv::imwrite(dump + "/post_" + std::to_string(id) + ".jpg", vis);
    }
  });
  std::printf("detector %s, demo seed %llu, posts %lld..%lld, match: centre in truth, width 0.4-1.6x\n",
              opts.detector.c_str(), static_cast<unsigned long long>(seed), static_cast<long long>(first),
              static_cast<long long>(first + n - 1));
  total.Print("all");
  for (auto& [k, t] : by_kind) t.Print(k.c_str());
  if (fit)
    for (auto& [k, v] : fdx)
      std::printf("fit %s (%zu pairs): {%.3f, %.3f, %.3f, %.3f}  // dx dy sw sh\n", k.c_str(), v.size(), Median(v),
                  Median(fdy[k]), Median(fsw[k]), Median(fsh[k]));
  return 0;
}
