// The demo booru's illustrations: procedurally drawn anime-style pictures, the same
// bytes for the same (seed, post id) on every machine. Each picture comes with its
// truth: the face boxes (top of the hair fringe to the chin, ear to ear) and the tags
// of each character drawn.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace moeforge::demo {

enum class PostKind { kNormal, kNoFace, kMonochrome, kDuplicate };
const char* PostKindName(PostKind k);  // "normal" | "noface" | "monochrome" | "duplicate"

// How a duplicate was made from its original: the very same file bytes, the same pixels
// re-encoded as JPEG, or a smaller JPEG (face boxes scaled with it).
enum class DuplicateHow { kNone, kExact, kReencode, kResized };
const char* DuplicateHowName(DuplicateHow h);  // "" | "exact" | "reencode" | "resized"

struct FaceTruth {
  cv::Rect box;                   // in the final image's pixels
  std::vector<std::string> tags;  // schema tags of this character (Danbooru names)
};

// What a post will be, decided from (seed, id) alone, cheap (no drawing).
struct PostPlan {
  int64_t id = 0;
  PostKind kind = PostKind::kNormal;
  int64_t duplicate_of = 0;    // for kDuplicate: an earlier post id
  std::string file_ext;        // "png" | "jpg"
  int width = 0, height = 0;
  // For kDuplicate: how it was made, and the original's kind (a duplicate of a
  // monochrome post is monochrome too).
  DuplicateHow duplicate_how = DuplicateHow::kNone;
  PostKind duplicate_source_kind = PostKind::kNormal;
  int jpeg_quality = 90;       // when file_ext is "jpg"
};
PostPlan PlanPost(uint64_t seed, int64_t id);

struct Illustration {
  PostPlan plan;
  cv::Mat bgr;                    // 8UC3, the pixels before encoding
  std::vector<FaceTruth> faces;   // empty for kNoFace
  // Post-level tags: the union of the characters' tags plus 1girl/2girls/multiple_girls,
  // solo, monochrome/greyscale, and some background tags. For monochrome posts the
  // characters' tags still say what was drawn before greying (e.g. blue_hair); for
  // kNoFace, "no_humans". Sorted.
  std::vector<std::string> tags;
  std::string encoded;            // file bytes in plan.file_ext's format
};

// Draws post `id` (1-based). Deterministic: the same bytes every time.
Illustration RenderPost(uint64_t seed, int64_t id);

// One character's face, centred on a plain background, `size` px square, wearing
// exactly `tags` (schema tags); for contact sheets and tests.
cv::Mat RenderFace(uint64_t seed, const std::vector<std::string>& tags, int size);

// Scores a detector's boxes against the truth of one picture. A detection matches a
// true face when its centre lies in the true box and its width is 0.4 to 2.0 times the
// true width (cascade boxes take in some hair); a face is found when some detection
// matches it, a detection is true when it matches some face.
struct DetectionScore {
  int faces = 0, faces_found = 0;
  int detections = 0, detections_true = 0;
  DetectionScore& operator+=(const DetectionScore& o);
};
bool DetectionMatches(const cv::Rect& truth, const cv::Rect& detection);
DetectionScore ScoreDetections(const std::vector<FaceTruth>& truth, const std::vector<cv::Rect>& detections);

}  // namespace moeforge::demo
