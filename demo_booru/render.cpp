// The demo booru's renderer: plans a post from (seed, id), then draws it with OpenCV
// primitives. Everything random comes from a splitmix64 stream seeded by (seed, id,
// purpose), never from <random>'s distributions, whose outputs differ between standard
// libraries. Characters are drawn in a face-local frame (render_character.cpp).
#include "demo_booru/render.h"

#include <algorithm>
#include <cmath>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "demo_booru/render_character.h"

namespace moeforge::demo {

const char* PostKindName(PostKind k) {
  switch (k) {
    case PostKind::kNormal: return "normal";
    case PostKind::kNoFace: return "noface";
    case PostKind::kMonochrome: return "monochrome";
    case PostKind::kDuplicate: return "duplicate";
  }
  return "normal";
}

const char* DuplicateHowName(DuplicateHow h) {
  switch (h) {
    case DuplicateHow::kNone: return "";
    case DuplicateHow::kExact: return "exact";
    case DuplicateHow::kReencode: return "reencode";
    case DuplicateHow::kResized: return "resized";
  }
  return "";
}

namespace {

// Streams of one post: each purpose gets its own so that adding a draw in one place
// does not shift every later decision.
enum Stream : uint64_t { kPlanStream = 1, kSceneStream = 2, kBackgroundStream = 3 };

Rng PostRng(uint64_t seed, int64_t id, Stream s) {
  return Rng(MixSeed(MixSeed(seed, static_cast<uint64_t>(id)), s));
}

// The plan of a post that is not a duplicate, as if it were drawn fresh.
PostPlan PlanFresh(uint64_t seed, int64_t id) {
  Rng r = PostRng(seed, id, kPlanStream);
  PostPlan p;
  p.id = id;
  double k = r.U();
  // Roughly 8% no face, 10% monochrome, 10% duplicates (decided by the caller).
  p.kind = k < 0.08 ? PostKind::kNoFace : (k < 0.18 ? PostKind::kMonochrome : PostKind::kNormal);
  p.file_ext = r.B(0.5) ? "png" : "jpg";
  p.jpeg_quality = r.I(82, 95);
  // Long side 320..1024, a handful of common aspect ratios.
  static const double kAspects[] = {1.0, 4.0 / 3.0, 3.0 / 4.0, 16.0 / 9.0, 9.0 / 16.0, 3.0 / 2.0, 2.0 / 3.0};
  double aspect = kAspects[r.I(0, 6)];
  int long_side = r.I(320, 1024);
  if (aspect >= 1.0) {
    p.width = long_side;
    p.height = std::max(256, static_cast<int>(std::lround(long_side / aspect)));
  } else {
    p.height = long_side;
    p.width = std::max(256, static_cast<int>(std::lround(long_side * aspect)));
  }
  return p;
}

// Places 1..3 characters so that no head overlaps another character.
std::vector<Placement> PlaceCharacters(Rng& r, int w, int h) {
  double u = r.U();
  int want = u < 0.55 ? 1 : (u < 0.85 ? 2 : 3);
  std::vector<Placement> placed;
  double max_face = std::min({300.0, w / 2.0, h / 1.7});
  for (int c = 0; c < want; ++c) {
    for (int attempt = 0; attempt < 80; ++attempt) {
      Placement p;
      // Log-uniform face widths: as many small faces as large ones.
      double lo = std::log(40.0), hi = std::log(std::max(41.0, max_face));
      p.face_w = std::exp(r.U(lo, hi));
      double fh = p.face_w * kFaceHeightRatio;
      double margin = 3;
      double cx_lo = p.face_w / 2 + margin, cx_hi = w - p.face_w / 2 - margin;
      // Room above for the hair and below for the chin and neck: a face cut off at the
      // chin is neither natural nor findable (a detector's window reaches below it).
      double cy_lo = fh / 2 + std::max(margin, p.face_w * 0.12), cy_hi = h - fh / 2 - std::max(margin, p.face_w * 0.4);
      if (cx_hi <= cx_lo || cy_hi <= cy_lo) continue;
      p.cx = r.U(cx_lo, cx_hi);
      p.cy = r.U(cy_lo, cy_hi);
      p.tilt_deg = r.U(-9.0, 9.0);
      bool ok = true;
      for (const Placement& q : placed) {
        if ((HeadRegion(p) & HeadRegion(q)).area() > 0 || (HeadRegion(p) & BodyRegion(q)).area() > 0 ||
            (BodyRegion(p) & HeadRegion(q)).area() > 0) {
          ok = false;
          break;
        }
      }
      if (ok) {
        placed.push_back(p);
        break;
      }
    }
  }
  // Upper characters first, so a lower one's hair may fall over an upper one's body.
  std::sort(placed.begin(), placed.end(), [](const Placement& a, const Placement& b) { return a.cy < b.cy; });
  return placed;
}

}  // namespace

PostPlan PlanPost(uint64_t seed, int64_t id) {
  PostPlan fresh = PlanFresh(seed, id);
  Rng r = PostRng(seed, id, kPlanStream);
  for (int i = 0; i < 8; ++i) r.Next();  // past PlanFresh's draws
  if (id <= 1 || !r.B(0.10)) return fresh;
  // A duplicate of an earlier post (its root, so a chain is never deeper than one).
  int64_t lo = std::max<int64_t>(1, id - 40);
  int64_t orig = lo + static_cast<int64_t>(r.Next() % static_cast<uint64_t>(id - lo));
  PostPlan root = PlanPost(seed, orig);
  if (root.kind == PostKind::kDuplicate) orig = root.duplicate_of, root = PlanPost(seed, orig);
  PostPlan p = root;
  p.id = id;
  p.kind = PostKind::kDuplicate;
  p.duplicate_of = orig;
  p.duplicate_source_kind = root.kind;
  double h = r.U();
  if (h < 0.25) {
    p.duplicate_how = DuplicateHow::kExact;  // the same bytes (a booru mirror re-upload)
  } else if (h < 0.6) {
    p.duplicate_how = DuplicateHow::kReencode;  // same pixels, a new JPEG
    p.file_ext = "jpg";
  } else {
    p.duplicate_how = DuplicateHow::kResized;  // smaller and re-encoded
    p.file_ext = "jpg";
    // Never shrink a face below 40 px: the original's placements are cheap to redo.
    double f = r.U(0.5, 0.85);
    if (root.kind != PostKind::kNoFace) {
      Rng scene = PostRng(seed, orig, kSceneStream);
      for (const Placement& pl : PlaceCharacters(scene, root.width, root.height)) f = std::max(f, 42.0 / pl.face_w);
    }
    if (f > 0.9) {
      p.duplicate_how = DuplicateHow::kReencode;
      f = 1.0;
    }
    p.width = std::max(64, static_cast<int>(std::lround(root.width * f)));
    p.height = std::max(64, static_cast<int>(std::lround(root.height * f)));
  }
  p.jpeg_quality = r.I(75, 92);
  return p;
}

namespace {

std::string Encode(const cv::Mat& bgr, const std::string& ext, int quality, bool grey) {
  cv::Mat img = bgr;
  if (grey) cv::cvtColor(bgr, img, cv::COLOR_BGR2GRAY);
  std::vector<uchar> buf;
  if (ext == "png") {
    cv::imencode(".png", img, buf, {cv::IMWRITE_PNG_COMPRESSION, 6});
  } else {
    cv::imencode(".jpg", img, buf, {cv::IMWRITE_JPEG_QUALITY, quality});
  }
  return std::string(buf.begin(), buf.end());
}

void AddUnique(std::vector<std::string>& v, const std::string& t) {
  if (std::find(v.begin(), v.end(), t) == v.end()) v.push_back(t);
}

Illustration RenderFresh(uint64_t seed, const PostPlan& plan) {
  Illustration ill;
  ill.plan = plan;
  Rng bg_rng = PostRng(seed, plan.id, kBackgroundStream);
  Rng rng = PostRng(seed, plan.id, kSceneStream);
  ill.bgr = cv::Mat(plan.height, plan.width, CV_8UC3);
  std::vector<std::string> bg_tags = DrawBackground(bg_rng, ill.bgr);
  std::vector<std::string> tags;
  if (plan.kind == PostKind::kNoFace) {
    DrawObjects(bg_rng, ill.bgr);
    AddUnique(tags, "no_humans");
  } else {
    std::vector<Placement> places = PlaceCharacters(rng, plan.width, plan.height);
    for (const Placement& p : places) {
      Character ch = RandomCharacter(rng);
      DrawCharacter(ill.bgr, ch, p);
      FaceTruth f;
      f.box = FaceBox(p);
      f.tags = CharacterTags(ch);
      ill.faces.push_back(f);
    }
    std::vector<std::string> schema_tags;
    for (const FaceTruth& f : ill.faces)
      for (const std::string& t : f.tags) AddUnique(schema_tags, t);
    size_t n = ill.faces.size();
    tags.push_back(n == 1 ? "1girl" : (n == 2 ? "2girls" : "3girls"));
    tags.push_back(n == 1 ? "solo" : "multiple_girls");
    for (const std::string& t : schema_tags) tags.push_back(t);
  }
  for (const std::string& t : bg_tags) AddUnique(tags, t);
  bool grey = plan.kind == PostKind::kMonochrome;
  if (grey) {
    // Truth tags keep describing what was drawn before greying (hair colour etc.).
    cv::Mat g;
    cv::cvtColor(ill.bgr, g, cv::COLOR_BGR2GRAY);
    cv::cvtColor(g, ill.bgr, cv::COLOR_GRAY2BGR);
    AddUnique(tags, "monochrome");
    AddUnique(tags, "greyscale");
  }
  std::sort(tags.begin(), tags.end());
  ill.tags = tags;
  ill.encoded = Encode(ill.bgr, plan.file_ext, plan.jpeg_quality, grey);
  return ill;
}

}  // namespace

Illustration RenderPost(uint64_t seed, int64_t id) {
  PostPlan plan = PlanPost(seed, id);
  if (plan.kind != PostKind::kDuplicate) return RenderFresh(seed, plan);
  Illustration orig = RenderFresh(seed, PlanPost(seed, plan.duplicate_of));
  Illustration ill;
  ill.plan = plan;
  ill.tags = orig.tags;
  ill.faces = orig.faces;
  bool grey = orig.plan.kind == PostKind::kMonochrome;
  if (plan.duplicate_how == DuplicateHow::kExact) {
    ill.bgr = orig.bgr;
    ill.encoded = orig.encoded;
    return ill;
  }
  // What a re-uploader had: the original file, decoded.
  std::vector<uchar> bytes(orig.encoded.begin(), orig.encoded.end());
  cv::Mat decoded = cv::imdecode(bytes, cv::IMREAD_COLOR);
  if (plan.duplicate_how == DuplicateHow::kResized) {
    cv::resize(decoded, ill.bgr, cv::Size(plan.width, plan.height), 0, 0, cv::INTER_AREA);
    double fx = static_cast<double>(plan.width) / orig.plan.width;
    double fy = static_cast<double>(plan.height) / orig.plan.height;
    for (FaceTruth& f : ill.faces) {
      int x0 = static_cast<int>(std::lround(f.box.x * fx)), y0 = static_cast<int>(std::lround(f.box.y * fy));
      int x1 = static_cast<int>(std::lround((f.box.x + f.box.width) * fx));
      int y1 = static_cast<int>(std::lround((f.box.y + f.box.height) * fy));
      f.box = cv::Rect(x0, y0, x1 - x0, y1 - y0);
    }
  } else {
    ill.bgr = decoded;
  }
  ill.encoded = Encode(ill.bgr, "jpg", plan.jpeg_quality, grey);
  return ill;
}

cv::Mat RenderFace(uint64_t seed, const std::vector<std::string>& tags, int size) {
  Rng r(MixSeed(seed, 0xFACE));
  Character ch = CharacterFromTags(r, tags);
  cv::Mat img(size, size, CV_8UC3, cv::Scalar(244, 244, 240));
  Placement p;
  // Room for a hat above and twintails beside; the body runs off the bottom.
  p.face_w = size / 2.3;
  p.cx = size / 2.0;
  p.cy = size * 0.29 + p.face_w * kFaceHeightRatio / 2;
  p.tilt_deg = 0;
  DrawCharacter(img, ch, p);
  return img;
}

DetectionScore& DetectionScore::operator+=(const DetectionScore& o) {
  faces += o.faces;
  faces_found += o.faces_found;
  detections += o.detections;
  detections_true += o.detections_true;
  return *this;
}

bool DetectionMatches(const cv::Rect& truth, const cv::Rect& d) {
  cv::Point2d c(d.x + d.width / 2.0, d.y + d.height / 2.0);
  bool inside = c.x >= truth.x && c.x <= truth.x + truth.width && c.y >= truth.y && c.y <= truth.y + truth.height;
  double ratio = static_cast<double>(d.width) / std::max(1, truth.width);
  return inside && ratio >= 0.4 && ratio <= 2.0;
}

DetectionScore ScoreDetections(const std::vector<FaceTruth>& truth, const std::vector<cv::Rect>& detections) {
  DetectionScore s;
  s.faces = static_cast<int>(truth.size());
  s.detections = static_cast<int>(detections.size());
  for (const FaceTruth& f : truth) {
    for (const cv::Rect& d : detections) {
      if (DetectionMatches(f.box, d)) {
        ++s.faces_found;
        break;
      }
    }
  }
  for (const cv::Rect& d : detections) {
    for (const FaceTruth& f : truth) {
      if (DetectionMatches(f.box, d)) {
        ++s.detections_true;
        break;
      }
    }
  }
  return s;
}

}  // namespace moeforge::demo
