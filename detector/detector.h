// The detect stage (DESIGN.md): finds anime faces in the workspace's images, crops them
// the way the MakeGirlsMoe data needs (a square with the hair, padded, area-resized,
// PNG) and records faces + quality columns + provenance in the database.
//
// Backends, behind FaceDetector:
//   cascade  OpenCV CascadeClassifier, lbpcascade_animeface.xml (the default)
//   haar     the second anime cascade, haar_anime_face_detect.xml
//   yunet    YuNet ONNX (the current 12-output layout, decoded here) via cv::dnn
//   yolo     a YOLOv5-layout ONNX ([1, N, 5+C] rows: cx cy w h obj cls...), decode + NMS
//   whole    no model: the image is one face already cropped (Getchu-style folders); the
//            crop is the image's centred square
//   a+b      several backends, boxes fused ("cascade+yunet", the default)
// Whatever the backend, a face box means one thing: from the top of the hair fringe to
// the chin, ear to ear (the demo booru's truth). Raw boxes are calibrated to that.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "core/status.h"
#include "core/workspace.h"
#include "db/stage_run.h"

namespace moeforge::detector {

struct DetectOptions {
  // cascade|haar|yunet|yolo|whole, or several fused: "cascade+yunet" (the default) finds 99.9% of
  // the demo booru's faces and ~95% of the real illustrations' where the cascade alone
  // finds 97% / ~86%, with no more false ones (detector/NOTES.md).
  std::string detector = "cascade+yunet";
  std::string model;                 // name or path; empty: the backend's default model
  std::vector<int> crop_sizes = {128};
  // Added on every side of the face box, as a fraction of the face side, so the square
  // crop takes in the hair: side = face * (1 + 2 * margin).
  double margin = 0.35;
  double max_pad = 0.3;   // faces whose crop would be more than this fraction padding are dropped
  int min_face = 24;      // faces narrower than this (calibrated box, original px) are dropped
  int threads = 0;        // 0: all cores
  bool json = false;
  int64_t limit = 0;      // at most this many images this run (0: all)
  std::string shard;      // "i/N": only the images whose SHA-256 hashes to part i (core/shard.h)
  bool retry_failed = false;  // redo images this detector recorded as failed

  // Cascade backends (lbpcascade_animeface README: scaleFactor 1.1, minNeighbors 5).
  double scale_factor = 1.1;
  int min_neighbors = 5;
  // dnn backends (yunet, yolo).
  int input_size = 640;          // the longer side is letterboxed to this (multiple of 32)
  double score_threshold = 0.6;
  double nms_threshold = 0.3;
};

// One face found in an image.
struct Face {
  cv::Rect2d box;       // calibrated: fringe to chin, ear to ear; original image pixels
  cv::Rect2d raw;       // the backend's own box
  double score = 0;     // 0..1
  std::string backend;  // which backend found it ("cascade", "yunet", ...)
};

// A detector for one thread (OpenCV cascades and nets are not safe to share between
// threads): Create() one per worker.
class FaceDetector {
 public:
  virtual ~FaceDetector() = default;
  // Faces in a BGR (or grey) image, calibrated, sorted by score (best first), smallest
  // faces (below opts.min_face) already dropped.
  virtual Result<std::vector<Face>> Detect(const cv::Mat& image) = 0;
  // "cascade:lbpcascade_animeface", "cascade:lbpcascade_animeface+yunet:face_detection_yunet_2026may".
  virtual std::string name() const = 0;
  // SHA-256 of the model file(s) (for fusion: of their hashes joined).
  virtual std::string model_sha256() const = 0;
  // The parameters that change what is detected, calibration included.
  virtual nlohmann::json params() const = 0;

  // Loads the models named by opts. NotFound naming the model when it is missing;
  // Unsupported naming the model and the reason when OpenCV cannot import it.
  static Result<std::unique_ptr<FaceDetector>> Create(const DetectOptions& opts);
};

// A square crop of one face, and its quality figures.
struct FaceCrop {
  cv::Rect2d square;                // the square cut, original pixels (may leave the image)
  double pad_frac = 0;              // fraction of the square outside the image, padded
  std::vector<cv::Mat> images;      // one per opts.crop_sizes, INTER_AREA (or LINEAR upscale)
  double sharpness = 0;             // variance of the Laplacian of the face, at 128 px
  double mono_score = 0;            // 0 colourful .. 1 monochrome
};

// The crop square for a face box under opts.margin (centred on the face, raised a little
// because the hair volume sits above the fringe).
cv::Rect2d CropSquare(const cv::Rect2d& face, double margin);
// Cuts, pads (edge replicate) and resizes one face. InvalidArgument when the padding is
// above opts.max_pad.
Result<FaceCrop> CropFace(const cv::Mat& bgr, const cv::Rect2d& face, const DetectOptions& opts);

// Runs the stage: every stored image this detector (name + model hash + params) has not
// seen yet goes through decode -> detect -> crop -> encode on all cores; results are
// committed by one batched writer, per image atomically, so a killed run loses nothing.
// Images that fail to decode are recorded as failed with their reason; the run goes on.
Result<db::StageSummary> Detect(const Workspace& ws, const DetectOptions& opts);

// Parses "cascade", "yunet+cascade" ...: InvalidArgument for an unknown backend.
Status ValidateOptions(const DetectOptions& opts);

}  // namespace moeforge::detector
