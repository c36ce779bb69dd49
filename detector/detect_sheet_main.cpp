// moeforge-detect-sheet: runs a detector on image files (or folders of them), prints the
// boxes as JSON Lines and draws a contact sheet: calibrated face boxes in green with
// their score, the backend's raw boxes in thin grey, the crop square in dashed blue.
//
//   moeforge-detect-sheet [--detector cascade] [--model M] [--cell 360] [--cols 6]
//                         [--mosaic PX [--clear SUBSTR]...] [--out sheet.png] FILE_OR_DIR...
// --mosaic pixelates the artwork of every tile but those named by --clear, so a sheet of
// images that may not be redistributed can still show where the detector put its boxes.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "detector/detector.h"

namespace fs = std::filesystem;
using namespace moeforge;

int main(int argc, char** argv) {
  detector::DetectOptions opts;
  std::string out;
  int cell = 360, cols = 6, mosaic = 0;
  std::vector<std::string> inputs, clear;
  CLI::App app{"moeforge-detect-sheet: run a detector on image files, print the boxes as JSON Lines, draw a contact sheet"};
  app.add_option("--detector", opts.detector, "Backend(s), e.g. cascade+yunet")->capture_default_str();
  app.add_option("--model", opts.model, "Model name or path");
  app.add_option("--out", out, "Write the contact sheet here");
  app.add_option("--cell", cell, "Tile side in px")->capture_default_str()->check(CLI::Range(64, 4096));
  app.add_option("--cols", cols, "Tiles per row")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--min-neighbors", opts.min_neighbors, "Cascade minNeighbors")->capture_default_str();
  app.add_option("--score-threshold", opts.score_threshold, "dnn score threshold")->capture_default_str();
  app.add_option("--input-size", opts.input_size, "dnn input size")->capture_default_str();
  app.add_option("--margin", opts.margin, "Crop margin (the dashed square)")->capture_default_str();
  app.add_option("--mosaic", mosaic,
                 "Pixelate each tile's artwork into blocks of this many px (boxes stay sharp): for images that "
                 "may not be redistributed")
      ->capture_default_str()->check(CLI::Range(0, 256));
  app.add_option("--clear", clear, "With --mosaic: files whose path contains this are shown as they are (repeatable)");
  app.add_option("inputs", inputs, "Image files or folders")->required();
  CLI11_PARSE(app, argc, argv);
  std::vector<std::string> files;
  for (const auto& a : inputs) {
    if (fs::is_directory(a)) {
      std::vector<std::string> in;
      for (auto& e : fs::recursive_directory_iterator(a))
        if (e.is_regular_file()) in.push_back(e.path().string());
      std::sort(in.begin(), in.end());
      files.insert(files.end(), in.begin(), in.end());
    } else {
      files.push_back(a);
    }
  }
  auto det = detector::FaceDetector::Create(opts);
  if (!det.ok()) {
    std::fprintf(stderr, "moeforge-detect-sheet: %s\n", det.status().ToString().c_str());
    return det.status().ExitCode();
  }
  std::vector<cv::Mat> tiles;
  int total = 0;
  for (const auto& f : files) {
    cv::Mat img = cv::imread(f, cv::IMREAD_COLOR);
    if (img.empty()) continue;
    auto faces = (*det)->Detect(img);
    if (!faces.ok()) {
      std::fprintf(stderr, "%s: %s\n", f.c_str(), faces.status().ToString().c_str());
      continue;
    }
    total += static_cast<int>(faces->size());
    std::printf("{\"file\":\"%s\",\"width\":%d,\"height\":%d,\"faces\":[", f.c_str(), img.cols, img.rows);
    for (size_t k = 0; k < faces->size(); ++k) {
      const auto& b = (*faces)[k].box;
      std::printf("%s{\"x\":%.1f,\"y\":%.1f,\"w\":%.1f,\"h\":%.1f,\"score\":%.3f,\"backend\":\"%s\"}", k ? "," : "",
                  b.x, b.y, b.width, b.height, (*faces)[k].score, (*faces)[k].backend.c_str());
    }
    std::printf("]}\n");
    if (out.empty()) continue;
    double s = static_cast<double>(cell) / std::max(img.cols, img.rows);
    cv::Mat small;
    cv::resize(img, small, cv::Size(), s, s, cv::INTER_AREA);
    cv::Mat tile(cell, cell, CV_8UC3, cv::Scalar(40, 40, 40));
    bool shown = mosaic == 0 || std::any_of(clear.begin(), clear.end(), [&](const std::string& c) {
      return f.find(c) != std::string::npos;
    });
    if (!shown) {  // blocks of `mosaic` px: where the faces are stays visible, the artwork does not
      cv::Mat coarse;
      cv::resize(small, coarse, cv::Size(std::max(1, small.cols / mosaic), std::max(1, small.rows / mosaic)), 0, 0,
                 cv::INTER_AREA);
      cv::resize(coarse, small, small.size(), 0, 0, cv::INTER_NEAREST);
    }
    small.copyTo(tile(cv::Rect(0, 0, small.cols, small.rows)));
    int th = std::max(1, cell / 180);
    for (const auto& fc : *faces) {
      auto S = [&](const cv::Rect2d& r) {
        return cv::Rect(cvRound(r.x * s), cvRound(r.y * s), cvRound(r.width * s), cvRound(r.height * s));
      };
      cv::rectangle(tile, S(fc.raw), cv::Scalar(160, 160, 160), 1);
      cv::rectangle(tile, S(detector::CropSquare(fc.box, opts.margin)), cv::Scalar(255, 128, 0), 1);
      cv::rectangle(tile, S(fc.box), cv::Scalar(0, 255, 0), th);
      char label[16];
      std::snprintf(label, sizeof label, "%.2f", fc.score);
      cv::putText(tile, label, S(fc.box).tl() + cv::Point(2, 12), cv::FONT_HERSHEY_SIMPLEX, 0.4,
                  cv::Scalar(0, 255, 255), 1);
    }
    std::string name = fs::path(f).parent_path().filename().string() + "/" + fs::path(f).filename().string() +
                       "  " + std::to_string(faces->size());
    cv::rectangle(tile, cv::Rect(0, cell - 18, cell, 18), cv::Scalar(0, 0, 0), cv::FILLED);
    cv::putText(tile, name, cv::Point(4, cell - 5), cv::FONT_HERSHEY_SIMPLEX, 0.42, cv::Scalar(255, 255, 255), 1);
    tiles.push_back(tile);
  }
  std::fprintf(stderr, "%zu images, %d faces\n", files.size(), total);
  if (!out.empty() && !tiles.empty()) {
    int rows = (static_cast<int>(tiles.size()) + cols - 1) / cols;
    cv::Mat sheet(rows * cell, std::min<int>(cols, tiles.size()) * cell, CV_8UC3, cv::Scalar(20, 20, 20));
    for (size_t i = 0; i < tiles.size(); ++i)
      tiles[i].copyTo(sheet(cv::Rect(static_cast<int>(i % cols) * cell, static_cast<int>(i / cols) * cell, cell, cell)));
    if (!cv::imwrite(out, sheet, {cv::IMWRITE_JPEG_QUALITY, 85})) {
      std::fprintf(stderr, "cannot write %s\n", out.c_str());
      return 1;
    }
  }
  return 0;
}
