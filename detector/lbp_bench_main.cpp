// moeforge-lbp-bench: our LBP cascade evaluator (detector/lbp_cascade.h) against OpenCV's
// CascadeClassifier on one thread, on the same prepared images (grey + equalizeHist, as
// the cascade backend does), rounds interleaved, medians; also checks that both give the
// same boxes and neighbour counts on every image of the run.
//
//   moeforge-lbp-bench [--demo 120] [--images DIR] [--rounds 7] [--model lbpcascade_animeface]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include <CLI/CLI.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

#include "core/models.h"
#include "demo_booru/render.h"
#include "detector/lbp_cascade.h"

namespace fs = std::filesystem;
using namespace moeforge;

namespace {

cv::Mat Prepare(const cv::Mat& bgr) {
  cv::Mat grey;
  cv::cvtColor(bgr, grey, bgr.channels() == 4 ? cv::COLOR_BGRA2GRAY : cv::COLOR_BGR2GRAY);
  cv::equalizeHist(grey, grey);
  return grey;
}

std::vector<std::tuple<int, int, int, int, int>> Sorted(const std::vector<cv::Rect>& r, const std::vector<int>& n) {
  std::vector<std::tuple<int, int, int, int, int>> v;
  for (size_t i = 0; i < r.size(); ++i) v.emplace_back(r[i].x, r[i].y, r[i].width, r[i].height, n[i]);
  std::sort(v.begin(), v.end());
  return v;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Our LBP cascade evaluator vs OpenCV's CascadeClassifier, one thread"};
  int demo = 120, rounds = 7;
  std::string images_dir, model = "lbpcascade_animeface";
  app.add_option("--demo", demo, "Demo booru posts (seed 1, ids 1..N); 0: none")->capture_default_str();
  app.add_option("--images", images_dir, "A folder of images (searched recursively), instead of or besides --demo");
  app.add_option("--rounds", rounds, "Interleaved rounds; medians are reported")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--model", model, "Cascade, by name or path")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto path = ResolveModel(model);
  if (!path.ok()) {
    std::fprintf(stderr, "%s\n", path.status().ToString().c_str());
    return 1;
  }
  auto ours = detector::LbpCascade::Load(*path);
  if (!ours.ok()) {
    std::fprintf(stderr, "%s\n", ours.status().ToString().c_str());
    return 1;
  }
  cv::CascadeClassifier opencv;
  if (!opencv.load(*path)) {
    std::fprintf(stderr, "OpenCV cannot load %s\n", path->c_str());
    return 1;
  }
  std::vector<cv::Mat> images;
  for (int id = 1; id <= demo; ++id) images.push_back(Prepare(demo::RenderPost(1, id).bgr));
  if (!images_dir.empty()) {
    std::vector<std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(images_dir))
      if (e.is_regular_file()) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      cv::Mat m = cv::imread(f, cv::IMREAD_COLOR);
      if (!m.empty()) images.push_back(Prepare(m));
    }
  }
  if (images.empty()) {
    std::fprintf(stderr, "no images\n");
    return 1;
  }
  double mpx = 0;
  for (const auto& m : images) mpx += static_cast<double>(m.total()) / 1e6;

  cv::setNumThreads(1);
  const double kScale = 1.1;
  const int kNeighbours = 5;
  const cv::Size kMin(24, 24);
  int mismatches = 0;
  std::vector<double> t[3];  // opencv, ours (best ISA), ours scalar: ms per image
  for (int r = 0; r < rounds; ++r) {
    for (int e = 0; e < 3; ++e) {
      ours->ForceScalar(e == 2);
      auto start = std::chrono::steady_clock::now();
      for (const auto& m : images) {
        if (e == 0) {
          std::vector<cv::Rect> o;
          std::vector<int> n;
          opencv.detectMultiScale(m, o, n, kScale, kNeighbours, 0, kMin);
        } else {
          (void)ours->DetectMultiScale(m, kScale, kNeighbours, kMin);
        }
      }
      t[e].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
                     static_cast<double>(images.size()));
    }
  }
  ours->ForceScalar(false);
  for (const auto& m : images) {
    std::vector<cv::Rect> o;
    std::vector<int> n;
    opencv.detectMultiScale(m, o, n, kScale, kNeighbours, 0, kMin);
    auto d = ours->DetectMultiScale(m, kScale, kNeighbours, kMin);
    if (!d.ok() || Sorted(d->objects, d->num_detections) != Sorted(o, n)) ++mismatches;
  }
  double cv_ms = Median(t[0]), fast_ms = Median(t[1]), scalar_ms = Median(t[2]);
  std::printf("%zu images, %.2f Mpx/image, 1 thread, medians of %d rounds: opencv %.2f ms/image, ours (%s) %.2f "
              "(%.2fx), ours scalar %.2f (%.2fx); images whose detections differ: %d\n",
              images.size(), mpx / static_cast<double>(images.size()), rounds, cv_ms, ours->isa_name(), fast_ms,
              cv_ms / fast_ms, scalar_ms, cv_ms / scalar_ms, mismatches);
  return mismatches == 0 ? 0 : 1;
}
