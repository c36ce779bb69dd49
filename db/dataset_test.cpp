// Views and datasets: a view pins one detector and one tagger version, so two detect
// runs or a re-tag never put a face in a dataset twice or change what a view means.
#include "db/dataset.h"

#include <set>

#include <gtest/gtest.h>

#include "db/test_workspace.h"

namespace moeforge::db {
namespace {

std::set<int64_t> Faces(const Dataset& ds) { return {ds.face_ids.begin(), ds.face_ids.end()}; }

TEST(Views, PinTheNewestDetectorAndTaggerSoEachFaceEntersOnce) {
  TestWorkspace fx;
  // Detector 2 re-detected images A and C; the default pins it, so faces 1 and 4 (the
  // same faces seen by detector 1) stay out.
  ASSERT_TRUE(CreateView(fx.db(), {"all", "", "", ""}).ok());
  auto v = GetView(fx.db(), "all");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->detector, "yunet:yunet");
  EXPECT_EQ(v->detector_id, 2);
  EXPECT_EQ(v->tagger, "builtin:t");
  EXPECT_EQ(v->tagger_id, 2);
  auto ds = LoadDataset(fx.db(), "all", "");
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ(Faces(*ds), (std::set<int64_t>{5, 6}));
  EXPECT_EQ(ds->size(), 2u) << "no face twice";
  auto everything = LoadDataset(fx.db(), "", "");
  ASSERT_TRUE(everything.ok());
  EXPECT_EQ(Faces(*everything), (std::set<int64_t>{5, 6})) << "no view: the newest detector too";
  auto c = CountView(fx.db(), "all");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->selected, 2);
  EXPECT_EQ(c->of, 2);
  EXPECT_EQ(c->detector, "yunet:yunet");
}

TEST(Views, APinnedTaggerVersionKeepsItsMeaningAfterARetag) {
  TestWorkspace fx;
  ViewInfo blonde{"blonde", "hair_color = blonde", "builtin:t@1111", ""};
  blonde.detector = "cascade:lbp";
  ASSERT_TRUE(CreateView(fx.db(), blonde).ok());
  auto ds = LoadDataset(fx.db(), "blonde", "");
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ(Faces(*ds), (std::set<int64_t>{1}));
  EXPECT_EQ(ds->tagger, "builtin:t");
  EXPECT_FLOAT_EQ(ds->scores[0], 0.9f) << "blonde_hair of tagger 1, not of the newer tagger 2";
  // The same view over the newest version of the tagger (asked for by name).
  auto newest = LoadDataset(fx.db(), "blonde", "builtin:t");
  ASSERT_TRUE(newest.ok());
  EXPECT_TRUE(newest->face_ids.empty()) << "tagger 2 calls face 1 brown-haired";
  // Another tagger version arrives: the view does not move.
  ASSERT_TRUE(fx.db().Exec("INSERT INTO taggers(id, name, model_sha256, params_json, schema_toml, created_at) "
                           "SELECT 3, name, '3333', params_json, schema_toml, 'now' FROM taggers WHERE id = 2").ok());
  auto again = LoadDataset(fx.db(), "blonde", "");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Faces(*again), (std::set<int64_t>{1}));
  auto c = CountView(fx.db(), "blonde");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->selected, 1);
  EXPECT_EQ(c->of, 4);
}

TEST(Views, ListShowsPinsAndDeleteRemoves) {
  TestWorkspace fx;
  ASSERT_TRUE(CreateView(fx.db(), {"b", "smile", "", ""}).ok());
  ASSERT_TRUE(CreateView(fx.db(), {"a", "mono_score < 0.5", "", ""}).ok());
  ASSERT_TRUE(CreateView(fx.db(), {"a", "mono_score < 0.2", "", ""}).ok()) << "create replaces";
  auto list = ListViews(fx.db());
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "a");
  EXPECT_EQ((*list)[0].filter, "mono_score < 0.2");
  EXPECT_EQ((*list)[1].detector, "yunet:yunet");
  ASSERT_TRUE(DeleteView(fx.db(), "a").ok());
  Status gone = DeleteView(fx.db(), "a");
  EXPECT_EQ(gone.code(), Status::Code::kNotFound);
  EXPECT_EQ(ListViews(fx.db())->size(), 1u);
  Status unknown_tagger = CreateView(fx.db(), {"c", "", "wd14:nope", ""});
  EXPECT_EQ(unknown_tagger.code(), Status::Code::kNotFound) << unknown_tagger.ToString();
  ViewInfo unknown_detector{"c", "", "", ""};
  unknown_detector.detector = "ssd:nope";
  EXPECT_EQ(CreateView(fx.db(), unknown_detector).code(), Status::Code::kNotFound);
}

TEST(Views, AStoredViewThatNoLongerCompilesSaysWhichView) {
  TestWorkspace fx;
  // A view written as SQL by an older moeforge.
  ASSERT_TRUE(fx.db().Exec("INSERT INTO views(name, filter_text, created_at) VALUES('old', "
                           "'face_id IN (SELECT face_id FROM v_face_tags)', 'then')").ok());
  auto ds = LoadDataset(fx.db(), "old", "");
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().ExitCode(), 2);
  EXPECT_NE(ds.status().message().find("view 'old'"), std::string::npos) << ds.status().message();
}

// What the studio pages through: a view's faces narrowed by a second filter.
TEST(Views, SelectFacesNarrowsAViewByAFilter) {
  TestWorkspace fx;
  auto ids = [&](const FaceSelection& sel) {
    std::set<int64_t> out;
    auto st = fx.db().Prepare("SELECT face_id FROM v_dataset WHERE " + sel.where);
    EXPECT_TRUE(st.ok()) << st.status().ToString();
    if (!st.ok()) return out;
    BindParams(*st, 1, sel.params);
    while (true) {
      auto row = st->Step();
      EXPECT_TRUE(row.ok());
      if (!row.ok() || !*row) break;
      out.insert(st->Int(0));
    }
    return out;
  };
  struct Case {
    const char* view;
    const char* filter;
    std::set<int64_t> faces;
  } cases[] = {
      {"", "", {5, 6}},                // no view: the newest detector, every face
      {"", "face_id = 5", {5}},
      {"lbp", "", {1, 4}},             // the view's own filter (smile, tagger 2)
      {"lbp", "not glasses and face_id != 4", {1}},
      {"lbp", "hair_color = black", {4}},
  };
  ASSERT_TRUE(CreateView(fx.db(), {"lbp", "smile", "", "", "cascade:lbp"}).ok());
  for (const auto& c : cases) {
    auto sel = SelectFaces(fx.db(), c.view, c.filter);
    ASSERT_TRUE(sel.ok()) << c.view << " / " << c.filter << ": " << sel.status().ToString();
    EXPECT_TRUE(sel->has_tagger);
    EXPECT_EQ(sel->tagger.id, 2);
    EXPECT_EQ(ids(*sel), c.faces) << c.view << " / " << c.filter;
  }
  auto bad = SelectFaces(fx.db(), "", "smile and (");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("column"), std::string::npos) << bad.status().message();
  EXPECT_EQ(SelectFaces(fx.db(), "nope", "").status().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace moeforge::db
