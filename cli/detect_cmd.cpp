// moeforge detect -w WS [--detector cascade|haar|yunet|yolo|whole|a+b] [--model NAME_OR_PATH]
//                 [--crop-size 128] [--margin M] ...
#include <memory>

#include "cli/command.h"
#include "detector/detector.h"

namespace moeforge::cli {

Command AddDetectCommand(CLI::App& root) {
  auto* app = root.add_subcommand("detect", "Find and crop anime faces in the workspace's images");
  auto ws = std::make_shared<std::string>();
  auto o = std::make_shared<detector::DetectOptions>();
  app->add_option("-w,--workspace", *ws, "Workspace folder")->required();
  app->add_option("--detector", o->detector,
                  "Backend: cascade (lbpcascade_animeface), haar (second anime cascade), yunet, yolo, "
                  "whole (images that are already face crops); several joined by '+' fuse their boxes "
                  "(e.g. cascade+yunet)")
      ->capture_default_str();
  app->add_option("--model", o->model,
                  "Model name or path (default: the backend's own; for fusion one per backend joined by '+')")
      ->capture_default_str();
  app->add_option("--crop-size", o->crop_sizes, "Crop side(s) in pixels; repeat for several sizes")
      ->capture_default_str()
      ->expected(1, -1);
  app->add_option("--margin", o->margin, "Added on every side of the face box, as a fraction of its side (hair room)")
      ->capture_default_str();
  app->add_option("--max-pad", o->max_pad, "Drop faces whose crop would be more than this fraction padding")
      ->capture_default_str();
  app->add_option("--min-face", o->min_face, "Drop faces narrower than this many original pixels")
      ->capture_default_str();
  app->add_option("--scale-factor", o->scale_factor, "Cascade: image pyramid step")->capture_default_str();
  app->add_option("--min-neighbors", o->min_neighbors, "Cascade: neighbours a detection needs")->capture_default_str();
  app->add_option("--input-size", o->input_size, "yunet/yolo: network input side (multiple of 32)")
      ->capture_default_str();
  app->add_option("--score-threshold", o->score_threshold, "yunet/yolo: minimum score")->capture_default_str();
  app->add_option("--nms-threshold", o->nms_threshold, "yunet/yolo: IoU above which NMS drops a box")
      ->capture_default_str();
  app->add_option("--threads", o->threads, "Worker threads (0: all cores)")->capture_default_str();
  app->add_option("--limit", o->limit, "Process at most this many images (0: all)")->capture_default_str();
  app->add_flag("--retry-failed", o->retry_failed, "Redo images this detector recorded as failed");
  app->add_flag("--json", o->json, "Print the summary as one JSON object");
  return {app, [ws, o]() -> int {
            Status v = detector::ValidateOptions(*o);
            if (!v.ok()) return Fail("detect", v);
            auto s = detector::Detect(Workspace(*ws), *o);
            if (!s.ok()) return Fail("detect", s.status());
            db::PrintSummary(*s, o->json);
            return 0;
          }};
}

}  // namespace moeforge::cli
