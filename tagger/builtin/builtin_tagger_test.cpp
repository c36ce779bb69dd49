// The built-in tagger's model file and training core.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include <opencv2/imgproc.hpp>
#include <unistd.h>

#include "core/hash.h"
#include "core/workspace.h"
#include "tagger/builtin/builtin_tagger.h"
#include "torch_common/cpu_autocast.h"
#include "tagger/builtin/train.h"

namespace moeforge::tagger {
namespace {

std::string TmpPath(const std::string& name) {
  return std::string(MOEFORGE_BINARY_DIR) + "/tagger_builtin_" + std::to_string(::getpid()) + "_" + name;
}

// Two marks a 16 px crop may show, a dot and a stripe, not exclusive.
Result<TagSchema> MarksSchema() {
  return TagSchema::FromToml(R"(name = "marks"
[[group]]
name = "marks"
tags = ["dot", "stripe"]
)");
}

// A tiny network on 16 px crops, quiet: what the training tests share. Each sets the rest.
TrainCoreOptions TinyTraining(int epochs, int width, int batch, double val_fraction) {
  TrainCoreOptions o;
  o.epochs = epochs;
  o.input_size = 16;
  o.width = width;
  o.blocks = 2;
  o.batch = batch;
  o.val_fraction = val_fraction;
  o.quiet = true;
  return o;
}

TEST(BuiltinTaggerTest, ModelFileRoundTrips) {
  TaggerNetOptions o;
  o.width = 8;
  o.blocks = 3;
  BuiltinTagger t(TagSchema::Default(), o, 32);
  std::vector<float> th(34, 0.5f);
  th[20] = 0.37f;
  t.set_thresholds(th);
  std::string path = TmpPath("model.pt");
  ASSERT_TRUE(t.Save(path).ok());
  EXPECT_EQ(t.sha256(), Sha256File(path).value());

  auto l = BuiltinTagger::Load(path);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  auto& m = **l;
  EXPECT_EQ(m.sha256(), t.sha256());
  EXPECT_EQ(m.input_size(), 32);
  EXPECT_EQ(m.schema().ToToml(), TagSchema::Default().ToToml());
  EXPECT_FLOAT_EQ(m.thresholds()[20], 0.37f);
  torch::manual_seed(3);
  auto x = torch::rand({4, 3, 32, 32}) * 2 - 1;
  EXPECT_TRUE(torch::allclose(m.Logits(x), t.Logits(x)));
  EXPECT_EQ(m.Logits(x).sizes(), (std::vector<int64_t>{4, 34}));
  // 8 -> 16 -> 32 channels, average- and max-pooled side by side (pool "avgmax").
  EXPECT_EQ(m.Features(x).sizes(), (std::vector<int64_t>{4, 64}));
  auto f = m.Features(x);
  EXPECT_TRUE((f.narrow(1, 32, 32) >= f.narrow(1, 0, 32) - 1e-6).all().item<bool>());  // max >= mean
  // Another size is resized to the input size.
  EXPECT_EQ(m.Logits(torch::zeros({2, 3, 64, 64})).size(0), 2);
  // Exclusive groups are distributions; binaries are independent.
  auto p = m.Probabilities(x);
  EXPECT_NEAR(p[0].narrow(0, 0, 13).sum().item<float>(), 1.0f, 1e-5);
  EXPECT_NEAR(p[0].narrow(0, 24, 10).sum().item<float>(), 1.0f, 1e-5);
  // The plain average pool (how models were written before the choice) round-trips too.
  o.pool = "avg";
  BuiltinTagger avg(TagSchema::Default(), o, 32);
  ASSERT_TRUE(avg.Save(path).ok());
  auto la = BuiltinTagger::Load(path);
  ASSERT_TRUE(la.ok()) << la.status().ToString();
  EXPECT_EQ((*la)->Features(x).sizes(), (std::vector<int64_t>{4, 32}));
  EXPECT_TRUE(torch::allclose((*la)->Logits(x), avg.Logits(x)));
  EXPECT_FALSE((*la)->flip_average());
  std::filesystem::remove(path);
}

TEST(BuiltinTaggerTest, FlipAverageScoresACropAndItsMirrorAlikeAndIsRecorded) {
  TaggerNetOptions o;
  o.width = 8;
  o.blocks = 3;
  BuiltinTagger t(TagSchema::Default(), o, 32);
  torch::manual_seed(5);
  auto x = torch::rand({3, 3, 32, 32}) * 2 - 1;
  auto mirror = x.flip({3});
  auto plain = t.Logits(x), plain_mirror = t.Logits(mirror);
  ASSERT_FALSE(torch::allclose(plain, plain_mirror));  // a random net is not symmetric
  t.set_flip_average(true);
  // The mean of the two passes; a crop and its mirror get the same scores.
  EXPECT_TRUE(torch::allclose(t.Logits(x), (plain + plain_mirror) * 0.5, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(t.Logits(x), t.Logits(mirror), 1e-5, 1e-5));
  // Features stay the crop's own.
  t.set_flip_average(false);
  auto f = t.Features(x);
  t.set_flip_average(true);
  EXPECT_TRUE(torch::allclose(t.Features(x), f));

  std::string path = TmpPath("flip.pt");
  ASSERT_TRUE(t.Save(path).ok());
  auto l = BuiltinTagger::Load(path);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_TRUE((*l)->flip_average());
  EXPECT_TRUE(torch::allclose((*l)->Logits(x), t.Logits(x), 1e-5, 1e-5));
  std::filesystem::remove(path);
}

TEST(BuiltinTaggerTest, BadFilesAreErrors) {
  EXPECT_EQ(BuiltinTagger::Load(TmpPath("missing.pt")).status().code(), Status::Code::kNotFound);
  std::string junk = TmpPath("junk.pt");
  ASSERT_TRUE(WriteFileAtomic(junk, "not a model", 11).ok());
  EXPECT_EQ(BuiltinTagger::Load(junk).status().code(), Status::Code::kCorrupt);
  // A torch archive without our metadata.
  torch::serialize::OutputArchive a;
  a.write("x", torch::zeros({2}));
  a.save_to(junk);
  EXPECT_EQ(BuiltinTagger::Load(junk).status().code(), Status::Code::kCorrupt);
  std::filesystem::remove(junk);
}

// The schema is data: a user's own tag list (here, shapes' colours and a stripe) trains
// the same way.
TEST(BuiltinTaggerTest, TrainsOnAUsersOwnSchema) {
  auto schema = TagSchema::FromToml(R"(name = "shapes"
[[group]]
name = "colour"
exclusive = true
tags = ["red_shape", "green_shape", "blue_shape"]
[[group]]
name = "marks"
tags = ["stripe"]
)");
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  std::mt19937_64 rng(5);
  std::vector<LabeledCrop> crops;
  const cv::Scalar colours[] = {{40, 40, 220}, {40, 200, 40}, {220, 60, 40}};
  const char* names[] = {"red_shape", "green_shape", "blue_shape"};
  for (int i = 0; i < 240; ++i) {
    int c = static_cast<int>(rng() % 3);
    bool stripe = rng() % 2;
    cv::Mat m(24, 24, CV_8UC3, cv::Scalar(230, 230, 230));
    int x = static_cast<int>(rng() % 8), y = static_cast<int>(rng() % 8);
    cv::circle(m, {x + 8, y + 8}, 6, colours[c], -1);
    if (stripe) cv::line(m, {0, 20}, {23, 20}, cv::Scalar(0, 0, 0), 2);
    std::vector<std::string> tags = {names[c]};
    if (stripe) tags.push_back("stripe");
    LabeledCrop lc;
    lc.bgr = m;
    lc.target = schema->Encode(tags);
    lc.split_key = "k" + std::to_string(i);
    crops.push_back(std::move(lc));
  }
  // fp32, then bf16 autocast (which only takes effect where the CPU has native bf16).
  for (bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16" : "fp32");
    TrainCoreOptions o = TinyTraining(6, 8, 32, 0.25);
    o.bf16 = bf16;
    auto r = TrainOnCrops(*schema, crops, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->bf16, bf16 && torch_common::CpuHasBf16());
    EXPECT_EQ(r->n_train + r->n_val, 240);
    EXPECT_EQ(r->n_val, 60);
    ASSERT_EQ(r->val.groups.size(), 1u);
    EXPECT_GE(r->val.groups[0].accuracy(), 0.9) << r->val.ToText(*schema);
    ASSERT_EQ(r->val.tags.size(), 1u);
    EXPECT_GE(r->val.tags[0].f1(), 0.8) << r->val.ToText(*schema);
  }
}

// Issue 15: a multi-character post's tags are the union of its characters'. A tag the
// post lacks is a negative for each of its faces; a tag it has is left out (whose is
// it?); its colours are each face's candidates.
TEST(BuiltinTaggerTest, MultiCharacterPostsLabelWhatTheyLack) {
  const TagSchema& s = TagSchema::Default();
  auto col = [&](const char* t) { return static_cast<size_t>(s.IndexOf(t)); };
  struct Case {
    const char* name;
    std::vector<std::string> post;
    bool single, binaries;
    // binary tag -> expected (target, known)
    std::vector<std::tuple<const char*, float, float>> binary;
    // hair colours expected as candidates; an empty list: the group teaches nothing
    std::vector<const char*> hair;
  };
  const Case cases[] = {
      {"solo post: every tag is a label",
       {"1girl", "solo", "blonde_hair", "blue_eyes", "smile"}, true, true,
       {{"smile", 1, 1}, {"hat", 0, 1}, {"glasses", 0, 1}}, {"blonde_hair"}},
      {"two characters: what the post lacks is a negative, what it has is left out",
       {"2girls", "multiple_girls", "blonde_hair", "red_hair", "blue_eyes", "smile", "hat"}, false, true,
       {{"smile", 1, 0}, {"hat", 1, 0}, {"glasses", 0, 1}, {"blush", 0, 1}, {"ribbon", 0, 1}},
       {"blonde_hair", "red_hair"}},
      {"two characters of one hair colour: that colour is each face's",
       {"2girls", "pink_hair", "green_eyes", "long_hair"}, false, true,
       {{"long_hair", 1, 0}, {"short_hair", 0, 1}}, {"pink_hair"}},
      {"a folder labelled with colours only: no binary is a label",
       {"aqua_hair", "aqua_eyes"}, true, false,
       {{"smile", 0, 0}, {"hat", 0, 0}}, {"aqua_hair"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    LabeledCrop l = LabelFromPostTags(s, c.post, c.single, c.binaries);
    ASSERT_EQ(l.target.size(), 34u);
    ASSERT_EQ(l.known.size(), 34u);
    EXPECT_EQ(l.complete, c.single);
    for (const auto& [tag, target, known] : c.binary) {
      EXPECT_EQ(l.target[col(tag)], target) << tag;
      EXPECT_EQ(l.known[col(tag)], known) << tag;
    }
    std::vector<std::string> hair;
    for (const auto& t : s.groups()[0].tags)
      if (l.target[col(t.c_str())] > 0) hair.push_back(t);
    EXPECT_EQ(hair, std::vector<std::string>(c.hair.begin(), c.hair.end()));
  }
}

// Early stopping: the weights kept are those of the best validation epoch, not the
// last one, and training stops `patience` epochs after it.
TEST(BuiltinTaggerTest, EarlyStoppingKeepsTheBestEpoch) {
  auto schema = MarksSchema();
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  // A seed whose validation curve ends below its best (with some others it is flat).
  std::mt19937_64 rng(3);
  std::vector<LabeledCrop> crops;
  for (int i = 0; i < 160; ++i) {
    cv::Mat m(16, 16, CV_8UC3, cv::Scalar(200, 200, 200));
    bool dot = rng() % 2, stripe = rng() % 2;
    if (dot) cv::circle(m, {8, 6}, 3, cv::Scalar(0, 0, 0), -1);
    if (stripe) cv::line(m, {0, 13}, {15, 13}, cv::Scalar(0, 0, 0), 1);
    // A third of the labels are wrong, so validation peaks and then wanders as the
    // network learns the noise.
    if (rng() % 3 == 0) dot = !dot;
    std::vector<std::string> tags;
    if (dot) tags.push_back("dot");
    if (stripe) tags.push_back("stripe");
    LabeledCrop lc;
    lc.bgr = m;
    lc.target = schema->Encode(tags);
    lc.split_key = "k" + std::to_string(i);
    crops.push_back(std::move(lc));
  }
  TrainCoreOptions o = TinyTraining(40, 4, 16, 0.3);
  o.patience = 4;
  o.lr = 1e-2;
  o.augment = false;
  auto r = TrainOnCrops(*schema, crops, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(static_cast<int>(r->val_curve.size()), r->epochs_run);
  ASSERT_GE(r->best_epoch, 1);
  double best = *std::max_element(r->val_curve.begin(), r->val_curve.end());
  EXPECT_EQ(r->val_curve[static_cast<size_t>(r->best_epoch - 1)], best);
  // The first of equals is kept.
  for (int e = 1; e < r->best_epoch; ++e) {
    EXPECT_LT(r->val_curve[static_cast<size_t>(e - 1)], best);
  }
  if (r->epochs_run < o.epochs) {
    EXPECT_EQ(r->epochs_run - r->best_epoch, o.patience);
  }
  // This data stops early, after an epoch that was worse than the best: so keeping
  // the last epoch's weights would score otherwise.
  EXPECT_LT(r->epochs_run, o.epochs);
  EXPECT_LT(r->val_curve.back(), best) << ::testing::PrintToString(r->val_curve);
  // The model returned scores the best epoch's figure on the same validation faces.
  std::set<std::string> val(r->val_keys.begin(), r->val_keys.end());
  std::vector<cv::Mat> vm;
  std::vector<std::vector<float>> vt;
  for (const auto& c : crops)
    if (val.count(c.split_key)) vm.push_back(c.bgr), vt.push_back(c.target);
  EXPECT_DOUBLE_EQ(ValidationScore(*schema, ScoreCrops(*r->model, vm), vt, true), best);
}

// The multiple-instance term on a tiny case: rows 0 and 1 are one post that has tag 0
// (bag 0), rows 2 and 4 a post that has neither tag (bag 1), row 3 a face labelled for
// itself (no bag).
TEST(BuiltinTaggerTest, MultiInstanceLossOnATinyCase) {
  auto z = torch::tensor({{1.0f, 0.0f}, {-2.0f, 3.0f}, {0.5f, 0.5f}, {4.0f, 4.0f}, {-1.0f, 2.0f}}).requires_grad_();
  auto bag = torch::tensor({0, 0, 1, -1, 1}, torch::kLong);
  auto pos = torch::tensor({{1.0f, 0.0f}, {1.0f, 0.0f}, {0.0f, 0.0f}, {1.0f, 1.0f}, {0.0f, 0.0f}});
  auto sig = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };

  auto [sum, count] = MultiInstanceLoss(z, bag, pos, "noisy-or");
  // One labelled (bag, tag) pair: bag 0, tag 0. Row 3 has no bag, so its "positives"
  // are not a bag's.
  EXPECT_FLOAT_EQ(count[0].item<float>(), 1.f);
  EXPECT_FLOAT_EQ(count[1].item<float>(), 0.f);
  EXPECT_FLOAT_EQ(sum[1].item<float>(), 0.f);
  double none = (1 - sig(1.0)) * (1 - sig(-2.0));
  EXPECT_NEAR(sum[0].item<double>(), -std::log(1 - none), 1e-5);
  sum.sum().backward();
  auto g = z.grad().clone();
  // Both faces of the bag are pushed up, the likelier one harder; no other row moves.
  EXPECT_LT(g[0][0].item<float>(), g[1][0].item<float>());
  EXPECT_LT(g[1][0].item<float>(), 0.f);
  for (int r : {2, 3, 4}) EXPECT_EQ(g[r].abs().sum().item<float>(), 0.f) << r;

  z.grad().zero_();
  auto [msum, mcount] = MultiInstanceLoss(z, bag, pos, "max");
  EXPECT_FLOAT_EQ(mcount[0].item<float>(), 1.f);
  EXPECT_NEAR(msum[0].item<double>(), -std::log(sig(1.0)), 1e-5);
  msum.sum().backward();
  // Only the bag's likeliest face carries the gradient.
  EXPECT_LT(z.grad()[0][0].item<float>(), 0.f);
  EXPECT_EQ(z.grad()[1][0].item<float>(), 0.f);

  // A bag whose faces all say a firm no still has a finite loss and a gradient.
  auto firm = torch::full({2, 1}, -30.0f).requires_grad_();
  auto [fsum, fcount] = MultiInstanceLoss(firm, torch::tensor({0, 0}, torch::kLong), torch::ones({2, 1}), "noisy-or");
  EXPECT_TRUE(std::isfinite(fsum[0].item<float>()));
  EXPECT_GT(fsum[0].item<float>(), 25.f);
  fsum.sum().backward();
  EXPECT_LT(firm.grad()[0][0].item<float>(), -0.1f);
}

// A tag that single-character posts never show is learnt only from the posts of two
// characters that name it: with the multiple-instance loss the tagger ranks it right on
// faces it has not seen; without, it cannot (so the first result is not an accident).
TEST(BuiltinTaggerTest, MultiInstanceLabelsTeachWhatOnlyMultiCharacterPostsShow) {
  auto schema = MarksSchema();
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  std::mt19937_64 rng(7);
  auto draw = [&](bool dot, bool stripe) {
    cv::Mat m(16, 16, CV_8UC3, cv::Scalar(200, 200, 200));
    int dx = static_cast<int>(rng() % 5) - 2;
    if (dot) cv::circle(m, {8 + dx, 6}, 3, cv::Scalar(0, 0, 0), -1);
    if (stripe) cv::line(m, {0, 12 + dx / 2}, {15, 12 + dx / 2}, cv::Scalar(30, 30, 160), 2);
    return m;
  };
  std::vector<LabeledCrop> crops;
  for (int i = 0; i < 120; ++i) {  // single-character posts: dots, never a stripe
    bool dot = rng() % 2;
    LabeledCrop c = LabelFromPostTags(*schema, dot ? std::vector<std::string>{"dot"} : std::vector<std::string>{},
                                      true, true);
    c.bgr = draw(dot, false);
    c.split_key = "solo" + std::to_string(i);
    crops.push_back(std::move(c));
  }
  for (int i = 0; i < 150; ++i) {  // two characters each: the post names the union
    bool s0 = rng() % 2, s1 = rng() % 3 == 0, d0 = rng() % 2, d1 = rng() % 2;
    std::vector<std::string> tags;
    if (d0 || d1) tags.push_back("dot");
    if (s0 || s1) tags.push_back("stripe");
    for (auto [d, st] : {std::make_pair(d0, s0), std::make_pair(d1, s1)}) {
      LabeledCrop c = LabelFromPostTags(*schema, tags, false, true);
      c.bgr = draw(d, st);
      c.split_key = "pair" + std::to_string(i);
      crops.push_back(std::move(c));
    }
  }
  std::vector<cv::Mat> test;
  std::vector<bool> test_stripe;
  for (int i = 0; i < 80; ++i) {
    bool st = i % 2;
    test.push_back(draw(rng() % 2, st));
    test_stripe.push_back(st);
  }
  // The stripe's F1 on the test faces by the tagger's own decisions (its threshold),
  // and the share of (stripe, no stripe) pairs its score ranks right (AUC).
  auto score = [&](BuiltinTagger& m) {
    auto s = ScoreCrops(m, test);
    size_t col = static_cast<size_t>(schema->IndexOf("stripe"));
    double right = 0, pairs = 0;
    TagScore t;
    for (size_t i = 0; i < s.size(); ++i) {
      bool p = s[i][col] >= m.thresholds()[col];
      (p ? (test_stripe[i] ? t.tp : t.fp) : (test_stripe[i] ? t.fn : t.tn))++;
      for (size_t j = 0; j < s.size(); ++j)
        if (test_stripe[i] && !test_stripe[j]) right += s[i][col] > s[j][col] ? 1 : s[i][col] == s[j][col] ? 0.5 : 0, ++pairs;
    }
    return std::make_pair(t.f1(), right / pairs);
  };
  TrainCoreOptions o = TinyTraining(15, 8, 16, 0.1);
  o.lr = 5e-3;
  o.augment = false;
  std::map<std::string, std::pair<double, double>> got;  // F1, AUC
  for (const char* kind : {"none", "noisy-or", "max"}) {
    o.multi_instance = kind;
    auto r = TrainOnCrops(*schema, crops, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    got[kind] = score(*r->model);
  }
  // Without the bags no face ever says "stripe", and the tagger never does; its scores
  // rank stripes only as well as a feature never labelled happens to move them.
  EXPECT_EQ(got["none"].first, 0.0);
  EXPECT_LT(got["none"].second, 0.9) << "AUC";
  // With them it ranks every stripe above every plain face. (No validation face shows a
  // stripe, so its threshold stays 0.5, which the bags' faces need not reach: the
  // decisions are not asserted here.)
  for (const char* kind : {"noisy-or", "max"}) EXPECT_GT(got[kind].second, 0.99) << kind << " AUC";
  o.multi_instance = "sum";
  EXPECT_EQ(TrainOnCrops(*schema, crops, o).status().code(), Status::Code::kInvalidArgument);

  // Faces of single-character posts alone (a face folder): every kind trains the very
  // model "none" does, so the option costs such data nothing.
  crops.resize(120);
  o.epochs = 3;
  std::map<std::string, torch::Tensor> logits;
  auto x = torch::rand({4, 3, 16, 16}) * 2 - 1;
  for (const char* kind : {"none", "noisy-or", "max"}) {
    o.multi_instance = kind;
    auto r = TrainOnCrops(*schema, crops, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    logits[kind] = r->model->Logits(x);
  }
  for (const char* kind : {"noisy-or", "max"}) EXPECT_TRUE(torch::equal(logits[kind], logits["none"])) << kind;
}

}  // namespace
}  // namespace moeforge::tagger
