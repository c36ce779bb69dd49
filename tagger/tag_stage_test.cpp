// The tag stage end to end on a workspace of demo faces: train the built-in tagger from
// source tags of single-character posts, tag every face, resume, re-tag beside.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <tuple>
#include <random>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/hash.h"
#include "core/process.h"
#include "db/dataset.h"
#include "demo_booru/render.h"
#include "tagger/backend.h"
#include "tagger/metrics.h"
#include "tagger/tagger.h"
#include "tagger/testing.h"

namespace moeforge::tagger {
namespace {

int64_t Count(db::Database& db, const std::string& sql) { return db.QueryInt(sql).value(); }

// One test so that one process trains once (CTest runs each test in its own process).
TEST(TagStageTest, TrainTagResumeRetag) {
  std::string root = std::string(MOEFORGE_BINARY_DIR) + "/tagger_test_ws_" + std::to_string(::getpid());
  testing::FakeWorkspace fw(root);
  std::mt19937_64 rng(7);
  // 120 solo posts, 6 two-character posts (trained on for what their tags lack).
  for (int i = 0; i < 120; ++i) {
    auto tags = testing::RandomCharacterTags(rng);
    auto post = tags;
    post.insert(post.end(), {"1girl", "solo", "simple_background"});
    fw.AddPost({demo::RenderFace(1000 + i, tags, 64)}, post);
  }
  std::vector<std::vector<std::string>> multi_truth;
  for (int i = 0; i < 6; ++i) {
    auto a = testing::RandomCharacterTags(rng), b = testing::RandomCharacterTags(rng);
    auto post = a;
    post.insert(post.end(), b.begin(), b.end());
    post.insert(post.end(), {"2girls", "multiple_girls"});
    multi_truth.push_back(a);
    multi_truth.push_back(b);
    fw.AddPost({demo::RenderFace(5000 + 2 * i, a, 64), demo::RenderFace(5001 + 2 * i, b, 64)}, post);
  }
  const int64_t kFaces = 132;
  TagTrainOptions to;
  to.epochs = 12;
  to.input_size = 32;
  to.width = 16;
  to.batch = 32;
  to.threads = 1;
  to.quiet = true;
  to.val_fraction = 0.15;
  auto train = TrainTagger(fw.ws(), to);
  const std::string model = fw.ws().models_dir() + "/builtin-tagger.pt";
  {
    SCOPED_TRACE("train on single-character posts and the faces of multi-character posts");
    ASSERT_TRUE(train.ok()) << train.status().ToString();
    EXPECT_EQ(train->done, 132);
    EXPECT_EQ(train->skipped, 0);
    EXPECT_EQ(train->extra["multi_character_faces"], 12);
    EXPECT_GE(train->extra["best_epoch"].get<int>(), 1);
    ASSERT_TRUE(std::filesystem::exists(model));
    EXPECT_EQ(train->extra["sha256"].get<std::string>(), Sha256File(model).value());
    EXPECT_EQ(Count(fw.db(), "SELECT count(*) FROM stage_runs WHERE stage = 'tag-train' AND done = 132"), 1);
  }
  {
    // The crops of a two-character picture get each character's own hair colour, not
    // the post's union (their training labels were the union). 12 faces, 13 colours:
    // chance 8%.
    SCOPED_TRACE("multi-character crops");
    auto backend = OpenBuiltinTagger(model);
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    std::vector<cv::Mat> mats;
    std::vector<std::vector<float>> truth;
    const auto& schema = (*backend)->schema();
    for (size_t i = 0; i < multi_truth.size(); ++i) {
      mats.push_back(demo::RenderFace(5000 + i, multi_truth[i], 64));
      truth.push_back(schema.Encode(multi_truth[i]));
    }
    auto scores = (*backend)->Score(mats);
    ASSERT_TRUE(scores.ok());
    auto report = Evaluate(schema, *scores, truth, (*backend)->thresholds());
    ASSERT_EQ(report.groups.size(), 2u);
    EXPECT_GE(report.groups[0].accuracy(), 0.5) << report.ToText(schema);
  }
  TagOptions o;
  o.tagger = "builtin:" + model;
  o.quiet = true;
  o.threads = 1;
  {
    SCOPED_TRACE("tag every face once, resumably");
    o.limit = 50;
    auto first = Tag(fw.ws(), o);
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    EXPECT_EQ(first->done, 50);
    o.limit = 0;
    auto rest = Tag(fw.ws(), o);
    ASSERT_TRUE(rest.ok());
    EXPECT_EQ(rest->done, kFaces - 50);
    auto again = Tag(fw.ws(), o);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->done, 0);
    EXPECT_EQ(Count(fw.db(), "SELECT count(*) FROM taggers"), 1);
    EXPECT_EQ(Count(fw.db(), "SELECT count(*) FROM face_tags"), kFaces * 34);
    EXPECT_EQ(Count(fw.db(), "SELECT count(DISTINCT face_id) FROM v_face_tags WHERE tagger = 'builtin:builtin-tagger'"),
              kFaces);
  }
  {
    SCOPED_TRACE("a new threshold is a new tagger beside the old");
    o.thresholds = {0.25f};
    auto r = Tag(fw.ws(), o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->done, kFaces);
    EXPECT_EQ(Count(fw.db(), "SELECT count(*) FROM taggers"), 2);
    EXPECT_EQ(Count(fw.db(), "SELECT count(*) FROM face_tags"), 2 * kFaces * 34);
    auto t = db::FindTagger(fw.db(), "builtin:builtin-tagger");
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_FLOAT_EQ(t->thresholds[20], 0.25f);  // the newest row
  }
  {
    // Re-tagging with another model: its rows sit beside the built-in tagger's, and a
    // dataset or view asks for one by name.
    SCOPED_TRACE("a second tagger beside the first; views pick the one asked for");
    TagOptions w;
    w.tagger = "wd14:" + std::string(MOEFORGE_SOURCE_DIR) + "/tests/fixtures/tagger/wd14_tiny";
    w.quiet = true;
    auto r = Tag(fw.ws(), w);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->done, kFaces);
    EXPECT_EQ(Count(fw.db(), "SELECT count(DISTINCT tagger) FROM v_face_tags"), 2);
    EXPECT_EQ(Count(fw.db(), "SELECT count(*) FROM v_face_tags WHERE tagger = 'wd14:wd14_tiny'"), kFaces * 34);
    auto wd = db::LoadDataset(fw.db(), "", "wd14:wd14_tiny");
    auto bi = db::LoadDataset(fw.db(), "", "builtin:builtin-tagger");
    ASSERT_TRUE(wd.ok()) << wd.status().ToString();
    ASSERT_TRUE(bi.ok()) << bi.status().ToString();
    EXPECT_EQ(wd->tagger, "wd14:wd14_tiny");
    EXPECT_EQ(bi->tagger, "builtin:builtin-tagger");
    ASSERT_EQ(wd->size(), static_cast<size_t>(kFaces));
    ASSERT_EQ(bi->size(), static_cast<size_t>(kFaces));
    // Each dataset's scores are that tagger's own rows.
    for (const auto* ds : {&*wd, &*bi}) {
      auto q = fw.db().Prepare("SELECT score FROM v_face_tags WHERE tagger = ? AND face_id = ? AND tag = 'blue_eyes' LIMIT 1");
      ASSERT_TRUE(q.ok());
      q->BindAll(ds->tagger, ds->face_ids[0]);
      ASSERT_TRUE(q->Step().value());
      EXPECT_FLOAT_EQ(static_cast<float>(q->Double(0)), ds->scores[24]) << ds->tagger;
    }
    ASSERT_TRUE(db::CreateView(fw.db(), {"by_wd14", "1", "wd14:wd14_tiny", ""}).ok());
    auto v = db::LoadDataset(fw.db(), "by_wd14", "");
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ(v->tagger, "wd14:wd14_tiny");
    EXPECT_EQ(v->scores, wd->scores);
    EXPECT_NE(wd->scores, bi->scores);
  }
  {
    // Issue 15: the tagger's decisions are in the rows. Three taggers by now: the
    // built-in one with its calibrated thresholds, again at 0.25, and WD14.
    SCOPED_TRACE("present is the tagger's decision, with its thresholds beside it");
    const TagSchema& schema = TagSchema::Default();
    EXPECT_EQ(Count(fw.db(), "SELECT count(*) FROM taggers"), 3);
    EXPECT_EQ(Count(fw.db(), "SELECT count(*) FROM tagger_thresholds"), 3 * 34);
    EXPECT_EQ(Count(fw.db(), "SELECT count(*) FROM face_tags WHERE present IS NULL"), 0);
    // Binary tags: present exactly when the score reaches the tagger's threshold.
    EXPECT_EQ(Count(fw.db(), "SELECT count(*) FROM v_face_tags WHERE threshold IS NOT NULL"), 3 * kFaces * 11);
    EXPECT_EQ(Count(fw.db(), "SELECT count(*) FROM v_face_tags WHERE threshold IS NOT NULL "
                             "AND present != (score >= threshold)"), 0);
    EXPECT_GT(Count(fw.db(), "SELECT count(*) FROM v_face_tags WHERE threshold IS NOT NULL AND present = 1"), 0);
    // The built-in tagger's thresholds are the model's own.
    auto model_th = (*OpenBuiltinTagger(model))->thresholds();
    auto q = fw.db().Prepare("SELECT tag, threshold FROM tagger_thresholds th JOIN taggers t ON t.id = th.tagger_id "
                             "WHERE t.name = 'builtin:builtin-tagger' AND th.threshold IS NOT NULL "
                             "AND t.id = (SELECT min(id) FROM taggers)");
    ASSERT_TRUE(q.ok());
    int n = 0;
    while (q->Step().value()) {
      EXPECT_FLOAT_EQ(static_cast<float>(q->Double(1)), model_th[static_cast<size_t>(schema.IndexOf(q->Text(0)))]);
      ++n;
    }
    EXPECT_EQ(n, 11);
    // Exclusive groups: exactly one present tag per face, group and tagger, and it is
    // the group's highest score.
    std::map<std::tuple<int64_t, int64_t, int>, std::pair<int, double>> present;  // -> (count, score)
    std::map<std::tuple<int64_t, int64_t, int>, double> top;
    auto rows = fw.db().Prepare("SELECT tagger_id, face_id, tag, score, present FROM v_face_tags WHERE threshold IS NULL");
    ASSERT_TRUE(rows.ok());
    while (rows->Step().value()) {
      int c = schema.IndexOf(rows->Text(2));
      ASSERT_GE(c, 0);
      auto key = std::make_tuple(rows->Int(0), rows->Int(1), schema.group_of()[static_cast<size_t>(c)]);
      ASSERT_FALSE(schema.groups()[static_cast<size_t>(std::get<2>(key))].exclusive == false);
      top[key] = std::max(top.count(key) ? top[key] : -1.0, rows->Double(3));
      if (rows->Int(4) == 1) ++present[key].first, present[key].second = rows->Double(3);
    }
    EXPECT_EQ(top.size(), static_cast<size_t>(3 * kFaces * 2));
    for (const auto& [key, best] : top) {
      ASSERT_EQ(present[key].first, 1);
      EXPECT_EQ(present[key].second, best);
    }
  }
  std::filesystem::remove_all(root);
}

TEST(TagStageTest, BinaryTagsAreKnownOnlyWhenThePostTagsMoreThanColours) {
  const TagSchema& schema = TagSchema::Default();
  EXPECT_TRUE(BinaryTagsKnown(schema, {"1girl", "solo", "blonde_hair", "blue_eyes"}));
  EXPECT_TRUE(BinaryTagsKnown(schema, {"blonde_hair", "smile"}));
  EXPECT_FALSE(BinaryTagsKnown(schema, {"aqua_hair", "aqua_eyes"}));  // an mlds labels.csv row
  EXPECT_FALSE(BinaryTagsKnown(schema, {}));
}

// What `moeforge run` hashes to decide whether to train again: every option a model
// depends on, and not where it is written or how many threads train it.
TEST(TagStageTest, TrainParamsNameEveryOptionTheModelDependsOn) {
  const TagTrainOptions d;
  const auto base = TagTrainParams(d);
  std::vector<std::pair<const char*, std::function<void(TagTrainOptions&)>>> changes = {
      {"epochs", [](auto& o) { o.epochs += 1; }},
      {"patience", [](auto& o) { o.patience += 1; }},
      {"input_size", [](auto& o) { o.input_size += 8; }},
      {"batch", [](auto& o) { o.batch += 1; }},
      {"lr", [](auto& o) { o.lr *= 2; }},
      {"width", [](auto& o) { o.width += 1; }},
      {"blocks", [](auto& o) { o.blocks += 1; }},
      {"pool", [](auto& o) { o.pool = "avg"; }},
      {"bf16", [](auto& o) { o.bf16 = !o.bf16; }},
      {"val_fraction", [](auto& o) { o.val_fraction += 0.05; }},
      {"seed", [](auto& o) { o.seed += 1; }},
      {"multi_character", [](auto& o) { o.multi_character = !o.multi_character; }},
      {"augment", [](auto& o) { o.augment = !o.augment; }},
      {"label_smoothing", [](auto& o) { o.label_smoothing += 0.1; }},
      {"multi_instance", [](auto& o) { o.multi_instance = o.multi_instance == "max" ? "none" : "max"; }},
      {"flip_average", [](auto& o) { o.flip_average = !o.flip_average; }},
      {"schema", [](auto& o) { o.schema = "mine.toml"; }},
      {"detector", [](auto& o) { o.detector = "yunet"; }},
      {"max_faces", [](auto& o) { o.max_faces = 10; }},
  };
  for (const auto& [name, change] : changes) {
    TagTrainOptions o = d;
    change(o);
    EXPECT_NE(TagTrainParams(o), base) << name;
    EXPECT_TRUE(base.contains(name)) << name;
  }
  EXPECT_EQ(base.size(), changes.size()) << base.dump();
  TagTrainOptions same = d;
  same.out = "elsewhere.pt", same.threads = 1, same.json = true, same.quiet = true;
  EXPECT_EQ(TagTrainParams(same), base);
}

TEST(TagStageTest, BadInputIsAnErrorNotACrash) {
  std::string root = std::string(MOEFORGE_BINARY_DIR) + "/tagger_test_bad_" + std::to_string(::getpid());
  testing::FakeWorkspace fw(root);
  TagOptions o;
  o.quiet = true;
  const std::pair<std::string, Status::Code> cases[] = {
      {"nonsense", Status::Code::kInvalidArgument},
      {"foo:bar", Status::Code::kInvalidArgument},
      {"builtin:/no/such/model.pt", Status::Code::kNotFound},
      {"wd14:/no/such/dir", Status::Code::kNotFound},
  };
  for (const auto& [spec, code] : cases) {
    o.tagger = spec;
    auto r = Tag(fw.ws(), o);
    ASSERT_FALSE(r.ok()) << spec;
    EXPECT_EQ(r.status().code(), code) << spec << ": " << r.status().ToString();
  }
  o.tagger = "wd14:" + std::string(MOEFORGE_SOURCE_DIR) + "/tests/fixtures/tagger/wd14_tiny";
  o.thresholds = {0.1f, 0.2f};
  EXPECT_EQ(Tag(fw.ws(), o).status().code(), Status::Code::kInvalidArgument);
  o.thresholds = {1.5f};
  EXPECT_EQ(Tag(fw.ws(), o).status().code(), Status::Code::kInvalidArgument);
  TagOptions missing_ws;
  missing_ws.tagger = "builtin:x";
  EXPECT_EQ(Tag(Workspace(root + "-missing"), missing_ws).status().code(), Status::Code::kNotFound);
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace moeforge::tagger

namespace moeforge::tagger {
namespace {

// The real binary: `moeforge tag` with a tagger, --json summary, exit statuses.
std::pair<int, std::string> RunBin(const std::string& args) {
  const char* bin = std::getenv("MOEFORGE_BIN");
  std::string cmd = std::string(bin ? bin : MOEFORGE_BINARY_DIR "/cli/moeforge") + " " + args + " 2>/dev/null";
  CommandResult r = RunCommand(cmd);
  return {r.status, r.output};
}

TEST(TagCliTest, TagsAWorkspaceAndExitsTwoOnBadUsage) {
  std::string root = std::string(MOEFORGE_BINARY_DIR) + "/tagger_cli_ws_" + std::to_string(::getpid());
  {
    testing::FakeWorkspace fw(root);
    std::mt19937_64 rng(3);
    for (int i = 0; i < 5; ++i) fw.AddPost({demo::RenderFace(i, testing::RandomCharacterTags(rng), 64)}, {"solo"});
  }
  std::string wd14 = std::string(MOEFORGE_SOURCE_DIR) + "/tests/fixtures/tagger/wd14_tiny";
  auto [rc, out] = RunBin("tag -w " + root + " --tagger wd14:" + wd14 + " --json");
  ASSERT_EQ(rc, 0) << out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  auto last = out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
  auto j = nlohmann::json::parse(last);
  EXPECT_EQ(j["stage"], "tag");
  EXPECT_EQ(j["done"], 5);
  EXPECT_EQ(RunBin("tag -w " + root + " --tagger wd14:" + wd14 + " --json").second.find("\"done\":0") != std::string::npos,
            true);
  EXPECT_EQ(RunBin("tag -w " + root).first, 2);                                  // no --tagger
  EXPECT_EQ(RunBin("tag -w " + root + " --tagger nonsense").first, 2);           // bad spec
  EXPECT_EQ(RunBin("tag -w " + root + " --tagger wd14:" + wd14 + " --batch x").first, 2);
  EXPECT_EQ(RunBin("tag -w " + root + " --tagger wd14:" + root + "/none.onnx").first, 2);  // not found
  EXPECT_EQ(RunBin("tag -w " + root + " --tagger wd14:" + std::string(MOEFORGE_SOURCE_DIR) +
                   "/tests/fixtures/tagger/wd14_unsupported").first, 1);  // unsupported graph
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace moeforge::tagger
