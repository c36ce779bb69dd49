// Face crops as the MakeGirlsMoe data needs them: a square with the hair, what falls
// outside the image padded by edge replication, area-resized; plus quality figures.
#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

#include "detector/detector.h"

namespace moeforge::detector {

cv::Rect2d CropSquare(const cv::Rect2d& face, double margin) {
  double side = std::max(face.width, face.height) * (1 + 2 * margin);
  double cx = face.x + face.width / 2;
  // The hair volume sits above the fringe, the neck below the chin: raise the centre.
  double cy = face.y + face.height / 2 - std::min(0.1, margin / 2) * face.height;
  return {cx - side / 2, cy - side / 2, side, side};
}

namespace {

double Sharpness(const cv::Mat& bgr) {
  cv::Mat grey, lap;
  cv::cvtColor(bgr, grey, cv::COLOR_BGR2GRAY);
  cv::Laplacian(grey, lap, CV_64F);
  cv::Scalar mean, stddev;
  cv::meanStdDev(lap, mean, stddev);
  return stddev[0] * stddev[0];
}

// Mean chroma (max - min channel) mapped so that 0 chroma is 1 (monochrome) and a mean
// chroma of 24 or more (any coloured skin or hair) is 0.
double MonoScore(const cv::Mat& bgr) {
  cv::Mat mx, mn, chroma;
  std::vector<cv::Mat> ch;
  cv::split(bgr, ch);
  cv::max(ch[0], ch[1], mx);
  cv::max(mx, ch[2], mx);
  cv::min(ch[0], ch[1], mn);
  cv::min(mn, ch[2], mn);
  cv::subtract(mx, mn, chroma);
  double mean = cv::mean(chroma)[0];
  return std::clamp(1.0 - mean / 24.0, 0.0, 1.0);
}

}  // namespace

Result<FaceCrop> CropFace(const cv::Mat& bgr_in, const cv::Rect2d& face, const DetectOptions& opts) {
  if (bgr_in.empty()) return Status::InvalidArgument("empty image");
  cv::Mat bgr = bgr_in;
  if (bgr.channels() == 1) cv::cvtColor(bgr_in, bgr, cv::COLOR_GRAY2BGR);
  if (bgr.channels() == 4) cv::cvtColor(bgr_in, bgr, cv::COLOR_BGRA2BGR);

  FaceCrop crop;
  crop.square = CropSquare(face, opts.margin);
  cv::Rect sq(static_cast<int>(std::lround(crop.square.x)), static_cast<int>(std::lround(crop.square.y)),
              std::max(1, static_cast<int>(std::lround(crop.square.width))), 0);
  sq.height = sq.width;
  cv::Rect inside = sq & cv::Rect(0, 0, bgr.cols, bgr.rows);
  if (inside.empty()) return Status::InvalidArgument("face crop lies outside the image");
  crop.pad_frac = 1.0 - static_cast<double>(inside.area()) / sq.area();
  if (crop.pad_frac > opts.max_pad + 1e-9)
    return Status::InvalidArgument("crop would be " + std::to_string(static_cast<int>(crop.pad_frac * 100)) +
                                   "% padding (limit " + std::to_string(static_cast<int>(opts.max_pad * 100)) + "%)");
  cv::Mat square;
  cv::copyMakeBorder(bgr(inside), square, inside.y - sq.y, sq.br().y - inside.br().y, inside.x - sq.x,
                     sq.br().x - inside.br().x, cv::BORDER_REPLICATE);
  for (int size : opts.crop_sizes) {
    cv::Mat out;
    cv::resize(square, out, cv::Size(size, size), 0, 0, cv::INTER_AREA);
    crop.images.push_back(out);
  }
  // Quality at a fixed 128 px so figures compare across face sizes.
  cv::Mat q;
  cv::resize(square, q, cv::Size(128, 128), 0, 0, cv::INTER_AREA);
  crop.sharpness = Sharpness(q);
  crop.mono_score = MonoScore(q);
  return crop;
}

}  // namespace moeforge::detector
