#include "demo_booru/render.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

#include "core/models.h"
#include "core/tag_schema.h"

namespace moeforge::demo {
namespace {

cv::Mat Decode(const std::string& bytes) {
  std::vector<uchar> buf(bytes.begin(), bytes.end());
  return cv::imdecode(buf, cv::IMREAD_COLOR);
}

bool Has(const std::vector<std::string>& v, const std::string& t) { return std::find(v.begin(), v.end(), t) != v.end(); }

TEST(RenderTest, SameSeedAndIdGiveTheSameBytes) {
  for (int64_t id : {1, 2, 17, 40}) {
    Illustration a = RenderPost(7, id), b = RenderPost(7, id);
    ASSERT_FALSE(a.encoded.empty()) << id;
    EXPECT_EQ(a.encoded, b.encoded) << id;
    EXPECT_EQ(a.tags, b.tags) << id;
    ASSERT_EQ(a.faces.size(), b.faces.size()) << id;
    for (size_t i = 0; i < a.faces.size(); ++i) EXPECT_EQ(a.faces[i].box, b.faces[i].box) << id;
  }
  EXPECT_NE(RenderPost(7, 3).encoded, RenderPost(7, 4).encoded);
  EXPECT_NE(RenderPost(7, 3).encoded, RenderPost(8, 3).encoded);
  cv::Mat f1 = RenderFace(5, {"pink_hair", "twintails", "blue_eyes"}, 128);
  cv::Mat f2 = RenderFace(5, {"pink_hair", "twintails", "blue_eyes"}, 128);
  ASSERT_EQ(f1.size(), cv::Size(128, 128));
  EXPECT_EQ(cv::norm(f1, f2, cv::NORM_INF), 0.0);
}

TEST(RenderTest, PlanAgreesWithTheRenderedFile) {
  for (int64_t id = 1; id <= 60; ++id) {
    PostPlan plan = PlanPost(11, id);
    Illustration ill = RenderPost(11, id);
    EXPECT_EQ(ill.plan.kind, plan.kind) << id;
    EXPECT_EQ(ill.plan.file_ext, plan.file_ext) << id;
    cv::Mat img = Decode(ill.encoded);
    ASSERT_FALSE(img.empty()) << id;
    EXPECT_EQ(img.cols, plan.width) << id;
    EXPECT_EQ(img.rows, plan.height) << id;
    EXPECT_EQ(ill.bgr.size(), img.size()) << id;
    // PNG starts 0x89 'P' 'N' 'G', JPEG 0xFF 0xD8.
    if (plan.file_ext == "png") EXPECT_EQ(ill.encoded.substr(1, 3), "PNG") << id;
    else EXPECT_EQ(static_cast<unsigned char>(ill.encoded[0]), 0xFF) << id;
  }
}

TEST(RenderTest, PostMixHasEveryKindSizeAndFormat) {
  std::map<std::string, int> kinds, hows, exts;
  int min_side = 1 << 30, max_side = 0;
  for (int64_t id = 1; id <= 400; ++id) {
    PostPlan p = PlanPost(3, id);
    ++kinds[PostKindName(p.kind)];
    ++exts[p.file_ext];
    if (p.kind == PostKind::kDuplicate) {
      ++hows[DuplicateHowName(p.duplicate_how)];
      EXPECT_LT(p.duplicate_of, id);
      EXPECT_GE(p.duplicate_of, 1);
      EXPECT_NE(PlanPost(3, p.duplicate_of).kind, PostKind::kDuplicate) << id;
    } else {
      min_side = std::min({min_side, p.width, p.height});
      max_side = std::max({max_side, p.width, p.height});
    }
  }
  for (const char* k : {"normal", "noface", "monochrome", "duplicate"}) EXPECT_GT(kinds[k], 10) << k;
  for (const char* h : {"exact", "reencode", "resized"}) EXPECT_GT(hows[h], 3) << h;
  EXPECT_GT(exts["png"], 100);
  EXPECT_GT(exts["jpg"], 100);
  EXPECT_GE(min_side, 256);
  EXPECT_LE(max_side, 1024);
  EXPECT_GT(max_side - min_side, 500);
}

TEST(RenderTest, DuplicatesCopyTheirOriginal) {
  int exact = 0, resized = 0;
  for (int64_t id = 2; id <= 400 && (exact < 2 || resized < 2); ++id) {
    PostPlan p = PlanPost(3, id);
    if (p.kind != PostKind::kDuplicate) continue;
    Illustration dup = RenderPost(3, id), orig = RenderPost(3, p.duplicate_of);
    EXPECT_EQ(dup.tags, orig.tags) << id;
    ASSERT_EQ(dup.faces.size(), orig.faces.size()) << id;
    if (p.duplicate_how == DuplicateHow::kExact) {
      ++exact;
      EXPECT_EQ(dup.encoded, orig.encoded) << id;
    } else if (p.duplicate_how == DuplicateHow::kResized) {
      ++resized;
      cv::Mat small = Decode(dup.encoded), big;
      cv::resize(Decode(orig.encoded), big, small.size(), 0, 0, cv::INTER_AREA);
      // Same picture, smaller: the mean pixel difference is a few grey levels at most.
      EXPECT_LT(cv::norm(small, big, cv::NORM_L1) / small.total() / 3, 6.0) << id;
      double f = static_cast<double>(small.cols) / orig.plan.width;
      for (size_t i = 0; i < dup.faces.size(); ++i) {
        EXPECT_NEAR(dup.faces[i].box.x, orig.faces[i].box.x * f, 2) << id;
        EXPECT_NEAR(dup.faces[i].box.width, orig.faces[i].box.width * f, 2) << id;
        EXPECT_GE(dup.faces[i].box.width, 40) << id;
      }
    } else {
      EXPECT_NE(dup.encoded, orig.encoded) << id;
      EXPECT_EQ(Decode(dup.encoded).size(), Decode(orig.encoded).size()) << id;
    }
  }
  EXPECT_GE(exact, 2);
  EXPECT_GE(resized, 2);
}

TEST(RenderTest, TruthTagsAndBoxesAreConsistent) {
  const TagSchema& schema = TagSchema::Default();
  std::map<std::string, int> count;
  int faces = 0;
  for (int64_t id = 1; id <= 250; ++id) {
    Illustration ill = RenderPost(5, id);
    cv::Rect frame(0, 0, ill.plan.width, ill.plan.height);
    const PostKind kind = ill.plan.kind == PostKind::kDuplicate ? ill.plan.duplicate_source_kind : ill.plan.kind;
    if (kind == PostKind::kNoFace) {
      EXPECT_TRUE(ill.faces.empty()) << id;
      EXPECT_TRUE(Has(ill.tags, "no_humans")) << id;
      continue;
    }
    size_t n = ill.faces.size();
    ASSERT_GE(n, 1u) << id;
    ASSERT_LE(n, 3u) << id;
    EXPECT_TRUE(Has(ill.tags, n == 1 ? "1girl" : (n == 2 ? "2girls" : "3girls"))) << id;
    EXPECT_TRUE(Has(ill.tags, n == 1 ? "solo" : "multiple_girls")) << id;
    if (kind == PostKind::kMonochrome) {
      EXPECT_TRUE(Has(ill.tags, "monochrome") && Has(ill.tags, "greyscale")) << id;
      cv::Mat img = Decode(ill.encoded), ch[3];
      cv::split(img, ch);
      EXPECT_EQ(cv::norm(ch[0], ch[2], cv::NORM_INF), 0.0) << id;
    }
    for (size_t i = 0; i < n; ++i) {
      const FaceTruth& f = ill.faces[i];
      EXPECT_EQ(f.box & frame, f.box) << id;
      if (ill.plan.duplicate_how != DuplicateHow::kResized) {
        EXPECT_GE(f.box.width, 40) << id;
        EXPECT_LE(f.box.width, 301) << id;
      }
      for (size_t j = 0; j < i; ++j) EXPECT_EQ((f.box & ill.faces[j].box).area(), 0) << id;
      int hair = 0, eyes = 0;
      for (const std::string& t : f.tags) {
        int col = schema.IndexOf(t);
        ASSERT_GE(col, 0) << t;
        const std::string& group = schema.groups()[schema.group_of()[col]].name;
        hair += group == "hair_color";
        eyes += group == "eye_color";
        EXPECT_TRUE(Has(ill.tags, t)) << id << " " << t;
        if (ill.plan.kind != PostKind::kDuplicate) ++count[t];
      }
      EXPECT_EQ(hair, 1) << id;
      EXPECT_EQ(eyes, 1) << id;
      EXPECT_FALSE(Has(f.tags, "long_hair") && Has(f.tags, "short_hair")) << id;
      if (ill.plan.kind != PostKind::kDuplicate) ++faces;
    }
  }
  // Every tag of the schema is drawn, binaries often enough on both sides.
  ASSERT_GT(faces, 200);
  for (const TagGroup& g : schema.groups()) {
    for (const std::string& t : g.tags) {
      double share = static_cast<double>(count[t]) / faces;
      if (g.exclusive) {
        EXPECT_GT(share, 0.5 / g.tags.size()) << t;
        EXPECT_LT(share, 2.0 / g.tags.size()) << t;
      } else {
        EXPECT_GT(share, 0.12) << t;
        EXPECT_LT(share, 0.5) << t;
      }
    }
  }
}

TEST(RenderTest, FaceWearsItsTags) {
  // Each tag changes the picture; the same tags on the same seed do not.
  std::vector<std::string> base{"brown_hair", "brown_eyes"};
  cv::Mat plain = RenderFace(9, base, 256);
  for (const std::string& t : TagSchema::Default().tags()) {
    if (t == "brown_hair" || t == "brown_eyes") continue;
    std::vector<std::string> tags = base;
    if (t.size() > 5 && t.compare(t.size() - 5, 5, "_hair") == 0 && t != "long_hair" && t != "short_hair" &&
        t != "drill_hair")
      tags[0] = t;
    else if (t.size() > 5 && t.compare(t.size() - 5, 5, "_eyes") == 0)
      tags[1] = t;
    else
      tags.push_back(t);
    cv::Mat img = RenderFace(9, tags, 256);
    cv::Mat diff, ch[3];
    cv::absdiff(img, plain, diff);
    cv::split(diff, ch);
    int changed = cv::countNonZero(cv::max(cv::max(ch[0], ch[1]), ch[2]) > 40);
    EXPECT_GT(changed, 25) << t << " is not visible";
  }
}

TEST(RenderTest, ScoreDetectionsFollowsTheMatchingRule) {
  struct Case {
    cv::Rect truth, det;
    bool match;
  } cases[] = {
      {{100, 100, 100, 106}, {105, 110, 90, 90}, true},     // on the face
      {{100, 100, 100, 106}, {60, 80, 180, 180}, true},     // takes in hair, centre inside
      {{100, 100, 100, 106}, {130, 130, 39, 39}, false},    // too small
      {{100, 100, 100, 106}, {20, 20, 201, 201}, false},    // too big
      {{100, 100, 100, 106}, {190, 100, 40, 40}, false},    // centre outside
  };
  for (const Case& c : cases) EXPECT_EQ(DetectionMatches(c.truth, c.det), c.match) << c.det;
  std::vector<FaceTruth> truth(2);
  truth[0].box = {0, 0, 50, 53};
  truth[1].box = {200, 0, 50, 53};
  DetectionScore s = ScoreDetections(truth, {{5, 5, 45, 45}, {8, 8, 40, 40}, {400, 400, 50, 50}});
  EXPECT_EQ(s.faces, 2);
  EXPECT_EQ(s.faces_found, 1);
  EXPECT_EQ(s.detections, 3);
  EXPECT_EQ(s.detections_true, 2);
}

// The bar: lbpcascade_animeface with its README parameters finds the drawn faces.
TEST(RenderTest, AnimeFaceCascadeFindsTheFaces) {
  // The search path is a colon-separated list: resolve through it as every stage does.
  auto resolved = ResolveModel("lbpcascade_animeface");
  if (!resolved.ok()) GTEST_SKIP() << resolved.status().ToString();
  const std::string& path = *resolved;
  cv::CascadeClassifier cascade;
  ASSERT_TRUE(cascade.load(path)) << "cannot load " << path;
  DetectionScore total;
  for (int64_t id = 1; id <= 500; ++id) {
    Illustration ill = RenderPost(2024, id);
    cv::Mat grey;
    cv::cvtColor(Decode(ill.encoded), grey, cv::COLOR_BGR2GRAY);
    cv::equalizeHist(grey, grey);
    std::vector<cv::Rect> found;
    cascade.detectMultiScale(grey, found, 1.1, 5, 0, cv::Size(24, 24));
    total += ScoreDetections(ill.faces, found);
  }
  double recall = static_cast<double>(total.faces_found) / total.faces;
  double precision = total.detections ? static_cast<double>(total.detections_true) / total.detections : 0.0;
  std::printf("lbpcascade_animeface on 500 posts: recall %.4f (%d/%d faces), precision %.4f (%d/%d detections)\n",
              recall, total.faces_found, total.faces, precision, total.detections_true, total.detections);
  EXPECT_GE(recall, 0.95);
  EXPECT_GE(precision, 0.95);
}

}  // namespace
}  // namespace moeforge::demo
