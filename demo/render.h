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
};
PostPlan PlanPost(uint64_t seed, int64_t id);

struct Illustration {
  PostPlan plan;
  cv::Mat bgr;                    // 8UC3
  std::vector<FaceTruth> faces;   // empty for kNoFace
  // Post-level tags: the union of the characters' tags plus 1girl/2girls/multiple_girls,
  // solo, monochrome/greyscale, and some background tags.
  std::vector<std::string> tags;
  std::string encoded;            // file bytes in plan.file_ext's format
};

// Draws post `id` (1-based). Deterministic: the same bytes every time.
Illustration RenderPost(uint64_t seed, int64_t id);

// One character's face, centred on a plain background, `size` px square, wearing
// exactly `tags` (schema tags); for contact sheets and tests.
cv::Mat RenderFace(uint64_t seed, const std::vector<std::string>& tags, int size);

}  // namespace moeforge::demo
