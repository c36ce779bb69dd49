// External taggers in their real formats (tiny models made by
// scripts/make_external_tagger_fixtures.py): OpenCV dnn loads them, moeforge's
// preprocessing matches values computed independently with numpy, and the scores land
// on the right schema columns.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/models.h"
#include "core/tag_schema.h"
#include "tagger/backend.h"
#include "tagger/external/external.h"

namespace moeforge::tagger {
namespace {

const std::string kDir = std::string(MOEFORGE_SOURCE_DIR) + "/tests/fixtures/tagger";

nlohmann::json Expected() {
  std::ifstream in(kDir + "/expected.json");
  return nlohmann::json::parse(in);
}

void CheckPixels(const cv::Mat& pre, const nlohmann::json& pixels, const std::string& what) {
  for (const auto& p : pixels) {
    int y = p["y"], x = p["x"];
    auto v = pre.at<cv::Vec3f>(y, x);
    for (int c = 0; c < 3; ++c)
      EXPECT_NEAR(v[c], p["bgr"][c].get<double>(), 1e-3) << what << " pixel (" << y << "," << x << ") channel " << c;
  }
}

// Each schema column's score is the external vocabulary's score for that tag, whether
// it is spelled with '_', ' ', or under an alias (gray_hair).
void CheckScores(const TagSchema& schema, const std::vector<float>& row, const nlohmann::json& scores,
                 bool spaces) {
  int checked = 0;
  for (int c = 0; c < schema.size(); ++c) {
    std::string tag = schema.tags()[static_cast<size_t>(c)];
    if (tag == "grey_hair") tag = "gray_hair";
    if (spaces) std::replace(tag.begin(), tag.end(), '_', ' ');
    ASSERT_TRUE(scores.contains(tag)) << tag;
    EXPECT_NEAR(row[static_cast<size_t>(c)], scores[tag].get<double>(), 1e-5) << tag;
    ++checked;
  }
  EXPECT_EQ(checked, 34);
}

TEST(Wd14Test, PreprocessingMatchesIndependentValues) {
  cv::Mat probe = cv::imread(kDir + "/probe.png");
  ASSERT_FALSE(probe.empty());
  cv::Mat pre = Wd14Preprocess(probe, 448);
  ASSERT_EQ(pre.type(), CV_32FC3);
  ASSERT_EQ(pre.size(), cv::Size(448, 448));
  CheckPixels(pre, Expected()["wd14"]["pixels"], "wd14");
  // White padding above and below the 100x60 picture.
  EXPECT_EQ(pre.at<cv::Vec3f>(0, 200), cv::Vec3f(255, 255, 255));
}

TEST(Wd14Test, ScoresBatchesOntoSchemaColumns) {
  auto t = OpenTagger("wd14:" + kDir + "/wd14_tiny");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->name(), "wd14:wd14_tiny");
  EXPECT_EQ((*t)->model_sha256().size(), 64u);
  cv::Mat probe = cv::imread(kDir + "/probe.png"), flipped;
  cv::flip(probe, flipped, 0);
  auto rows = (*t)->Score({probe, flipped, probe});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 3u);
  auto scores = Expected()["wd14"]["scores"];
  CheckScores((*t)->schema(), (*rows)[0], scores, false);
  CheckScores((*t)->schema(), (*rows)[2], scores, false);
  EXPECT_NE((*rows)[0], (*rows)[1]);  // the batch's images are not mixed up
}

TEST(Wd14Test, AGraphOpenCvCannotImportFailsClearly) {
  auto t = OpenTagger("wd14:" + kDir + "/wd14_unsupported");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Status::Code::kUnsupported);
  EXPECT_NE(t.status().message().find("model.onnx"), std::string::npos) << t.status().message();
  EXPECT_NE(t.status().message().find("Einsum"), std::string::npos) << t.status().message();
}

TEST(Wd14Test, RealTagTableMapsOntoTheSchema) {
  auto table = ResolveModel("wd14_selected_tags");
  if (!table.ok()) GTEST_SKIP() << table.status().ToString();
  auto names = ReadSelectedTags(*table);
  ASSERT_TRUE(names.ok()) << names.status().ToString();
  EXPECT_EQ(names->size(), 6913u);  // 4 ratings + 6909 general; the empty last row skipped
  EXPECT_EQ(names->front(), "general");
  auto cols = MapVocabulary(TagSchema::Default(), *names);
  int mapped = 0;
  for (size_t c = 0; c < cols.size(); ++c) {
    const auto& tag = TagSchema::Default().tags()[c];
    if (cols[c] >= 0) {
      ++mapped;
      EXPECT_EQ((*names)[static_cast<size_t>(cols[c])], tag);
    } else {
      EXPECT_EQ(tag, "silver_hair");  // Danbooru folds it into grey_hair
    }
  }
  EXPECT_EQ(mapped, 33);
}

TEST(I2vTest, PreprocessingMatchesIndependentValues) {
  cv::Mat probe = cv::imread(kDir + "/probe.png");
  cv::Mat pre = I2vPreprocess(probe, 224);
  ASSERT_EQ(pre.size(), cv::Size(224, 224));
  CheckPixels(pre, Expected()["i2v"]["pixels"], "i2v");
}

TEST(I2vTest, CaffeModelLoadsAndScoresOntoSchemaColumns) {
  auto t = OpenTagger("i2v:" + kDir + "/i2v_tiny");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->name(), "i2v:illust2vec_tag_tiny");
  cv::Mat probe = cv::imread(kDir + "/probe.png"), grey;
  cv::cvtColor(probe, grey, cv::COLOR_BGR2GRAY);
  auto rows = (*t)->Score({probe, grey});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2u);
  CheckScores((*t)->schema(), (*rows)[0], Expected()["i2v"]["scores"], true);
}

TEST(ExternalTest, VocabularyWithoutSchemaTagsIsRefused) {
  auto schema = TagSchema::FromToml("name = \"x\"\n[[group]]\nname = \"g\"\ntags = [\"cat_ears\"]\n");
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  auto t = OpenWd14Tagger(kDir + "/wd14_tiny", *schema);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace moeforge::tagger
