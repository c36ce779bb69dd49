#include "tagger/metrics.h"

#include <gtest/gtest.h>

namespace moeforge::tagger {
namespace {

TagSchema Small() {
  return TagSchema::FromToml(R"(name = "s"
[[group]]
name = "hair"
exclusive = true
tags = ["a_hair", "b_hair", "c_hair"]
[[group]]
name = "other"
tags = ["hat", "smile"]
)").value();
}

TEST(MetricsTest, AccuracyConfusionAndF1) {
  auto s = Small();
  // columns: a b c hat smile
  std::vector<std::vector<float>> scores = {{.7f, .2f, .1f, .9f, .1f},
                                            {.1f, .8f, .1f, .4f, .6f},
                                            {.5f, .1f, .4f, .2f, .7f},
                                            {.1f, .1f, .8f, .6f, .2f}};
  std::vector<std::vector<float>> truth = {{1, 0, 0, 1, 0}, {0, 1, 0, 1, 1}, {0, 0, 1, 0, 1}, {0, 0, 0, 0, 0}};
  auto r = Evaluate(s, scores, truth, {0.5f, 0.5f, 0.5f, 0.5f, 0.5f});
  ASSERT_EQ(r.groups.size(), 1u);
  EXPECT_EQ(r.groups[0].n, 3);  // the last face has no hair label
  EXPECT_EQ(r.groups[0].correct, 2);
  EXPECT_EQ(r.groups[0].confusion[2][0], 1);  // c_hair taken for a_hair
  ASSERT_EQ(r.tags.size(), 2u);
  // hat: predicted {0, 3}, truth {0, 1}: tp 1 fp 1 fn 1.
  EXPECT_EQ(r.tags[0].tp, 1);
  EXPECT_EQ(r.tags[0].fp, 1);
  EXPECT_EQ(r.tags[0].fn, 1);
  EXPECT_DOUBLE_EQ(r.tags[0].f1(), 0.5);
  EXPECT_DOUBLE_EQ(r.tags[1].f1(), 1.0);
  EXPECT_NE(r.ToText(s).find("hair accuracy: 66.67%"), std::string::npos) << r.ToText(s);
}

TEST(MetricsTest, CalibratedThresholdsMaximiseF1) {
  auto s = Small();
  std::vector<std::vector<float>> scores, truth;
  // hat positives score 0.3..0.4, negatives 0.0..0.2: any threshold in (0.2, 0.3] is perfect.
  for (int i = 0; i < 10; ++i) {
    bool pos = i % 2;
    scores.push_back({.3f, .3f, .3f, pos ? .3f + .01f * i : .02f * i, .5f});
    truth.push_back({1, 0, 0, pos ? 1.f : 0.f, 0});
  }
  auto th = CalibrateThresholds(s, scores, truth);
  EXPECT_FLOAT_EQ(th[0], 0.5f);  // exclusive: argmax, untouched
  EXPECT_GT(th[3], 0.18f);
  EXPECT_LE(th[3], 0.31f);
  EXPECT_FLOAT_EQ(th[4], 0.5f);  // no positives: left alone
  EXPECT_DOUBLE_EQ(Evaluate(s, scores, truth, th).tags[0].f1(), 1.0);
}

}  // namespace
}  // namespace moeforge::tagger
