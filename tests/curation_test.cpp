// The curation flows end to end on the real binary: demo booru -> `moeforge run` -> views
// in the filter language -> every export format, each read back by an independent reader
// (tests/read_export.py: Python's zipfile, tarfile, json, zlib) and compared with the
// database; `moeforge query` cannot write; two detect runs and a view give each face once.
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/models.h"
#include "db/dataset.h"
#include "db/db.h"
#include "tests/e2e_util.h"

namespace moeforge::testing {
namespace {

namespace fs = std::filesystem;

bool HaveCascade() { return ResolveModel("lbpcascade_animeface").ok(); }

int64_t QueryInt(const std::string& ws, const std::string& sql) {
  Outcome r = Moeforge("query -w " + ws + " --json \"" + sql + "\"", true);
  EXPECT_EQ(r.status, 0) << sql << "\n" << r.out;
  auto j = nlohmann::json::parse(r.LastLine(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.empty()) return -1;
  return j.begin()->get<int64_t>();
}

nlohmann::json LastJson(const Outcome& r) { return nlohmann::json::parse(r.LastLine(), nullptr, false); }

// A demo workspace: crawled from the demo booru, detected, tagged by a freshly trained
// built-in tagger; with `train`, also the pipeline's default `clean` view and a few steps
// of training. Returns the workspace folder ("" after a failure, reported).
std::string RunDemo(const std::string& name, bool train, DemoBooruProcess& booru) {
  std::string dir = TempDir(name);
  std::ofstream cfg(dir + "/run.toml");
  cfg << "workspace = '" << dir << "/ws'\n"
      << "[crawl]\nsource = 'danbooru'\nurl = '" << booru.url() << "'\nlimit = 40\n"
      << "[detect]\ncrop_size = 64\n[tag_train]\nepochs = 2\n"
      << "[train]\nenabled = " << (train ? "true" : "false")
      << "\nrun = 'r'\nresolution = 32\nsteps = 4\nbatch = 8\ng_channels = 16\ng_blocks = 1\n"
      << "d_channels = 16\nd_blocks = 1\n[sample]\nenabled = false\n";
  cfg.close();
  Outcome r = Moeforge("run " + dir + "/run.toml");
  EXPECT_EQ(r.status, 0) << r.out;
  if (r.status != 0) return "";
  if (train) {
    EXPECT_NE(r.out.find("view: "), std::string::npos) << "the pipeline's view step ran:\n" << r.out;
  }
  return dir + "/ws";
}

TEST(Curation, RunThenViewsQueryAndEveryExportFormatReadBack) {
  if (!HaveCascade()) GTEST_SKIP() << "lbpcascade_animeface not on MOEFORGE_MODEL_PATH";
  DemoBooruProcess booru("--posts 40 --seed 7");
  ASSERT_FALSE(booru.url().empty());
  std::string ws = RunDemo("curation", /*train=*/true, booru);
  ASSERT_FALSE(ws.empty());
  std::string dir = fs::path(ws).parent_path().string();
  // The pipeline's default view, in the filter language.
  Outcome show = Moeforge("view show -w " + ws + " clean --json", true);
  ASSERT_EQ(show.status, 0) << show.out;
  nlohmann::json v = LastJson(show);
  EXPECT_EQ(v["filter"], "mono_score < 0.5");
  ASSERT_GT(v["faces"].get<int64_t>(), 5) << v.dump();
  int64_t hair_total = 0;
  for (auto& [tag, n] : v["tags"]["hair_color"].items()) hair_total += n.get<int64_t>();
  EXPECT_EQ(hair_total, v["faces"].get<int64_t>()) << "one hair colour per face";

  auto database = db::OpenWorkspace(Workspace(ws));
  ASSERT_TRUE(database.ok());
  auto ds = db::LoadDataset(**database, "clean", "");
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  ASSERT_EQ(static_cast<int64_t>(ds->size()), v["faces"].get<int64_t>());
  std::map<std::string, size_t> row_of;
  for (size_t i = 0; i < ds->size(); ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "%08lld", static_cast<long long>(ds->face_ids[i]));
    row_of[key] = i;
  }
  for (std::string format : {"imagefolder", "captions", "stylegan", "webdataset"}) {
    SCOPED_TRACE(format);
    std::string out = dir + "/export-" + format;
    Outcome e = Moeforge("export -w " + ws + " --view clean --format " + format + " --out " + out +
                         " --shard-size 10 --json", true);
    ASSERT_EQ(e.status, 0) << e.out;
    nlohmann::json sum = LastJson(e);
    EXPECT_EQ(sum["done"], static_cast<int64_t>(ds->size())) << sum.dump();
    std::string cmd = "python3 " MOEFORGE_SOURCE_DIR "/tests/read_export.py " + out + " " + format;
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
    ASSERT_EQ(pclose(p), 0) << text;
    nlohmann::json r = nlohmann::json::parse(text, nullptr, false);
    ASSERT_FALSE(r.is_discarded()) << text;
    ASSERT_EQ(r["samples"].size(), ds->size());
    std::vector<std::string> order;
    for (const auto& s : r["samples"]) {
      std::string key = s["key"];
      ASSERT_TRUE(row_of.count(key)) << key;
      size_t i = row_of[key];
      order.push_back(key);
      EXPECT_TRUE(s["png"]["ok"].get<bool>()) << s.dump();
      EXPECT_EQ(s["png"]["width"], 64);
      std::vector<float> tv = ds->TagVector(i);
      std::vector<std::string> tags;
      for (size_t k = 0; k < tv.size(); ++k)
        if (tv[k] > 0.5f) tags.push_back(ds->schema.tags()[k]);
      if (s.contains("label")) {
        EXPECT_EQ(s["label"], tv) << key;
      }
      if (s.contains("tags")) {
        EXPECT_EQ(s["tags"], tags) << key;
      }
      if (s.contains("class")) {
        EXPECT_NE(std::find(tags.begin(), tags.end(), s["class"].get<std::string>()), tags.end()) << key;
      }
    }
    if (format == "stylegan") {
      std::vector<std::string> sorted = order;
      std::sort(sorted.begin(), sorted.end());
      EXPECT_EQ(order, sorted) << "dataset.json lists the faces in order";
    }
    // Again: nothing rewritten.
    Outcome again = Moeforge("export -w " + ws + " --view clean --format " + format + " --out " + out +
                             " --shard-size 10 --json", true);
    ASSERT_EQ(again.status, 0) << again.out;
    EXPECT_EQ(LastJson(again)["written"], 0) << again.out;
  }

  // Views: the filter language, injection refused with the column named.
  Outcome c = Moeforge("view create -w " + ws + " big --where \"face_size >= 40 and not glasses and source_tag = solo\"");
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_NE(c.out.find("view big: "), std::string::npos) << c.out;
  Outcome list = Moeforge("view list -w " + ws + " --json", true);
  ASSERT_EQ(list.status, 0);
  EXPECT_NE(list.out.find("\"name\":\"big\""), std::string::npos) << list.out;
  for (const char* bad : {"1) OR 1 OR (1", "mono_score < 0.5; DROP TABLE faces", "no_such_column > 1"}) {
    Outcome r = Moeforge("view create -w " + ws + " bad --where \"" + std::string(bad) + "\"");
    EXPECT_EQ(r.status, 2) << bad << "\n" << r.out;
    EXPECT_NE(r.out.find("column "), std::string::npos) << r.out;
    std::string s = r.out;
    while (!s.empty() && s.back() == '\n') s.pop_back();
    EXPECT_EQ(s.find('\n'), std::string::npos) << "one line: " << r.out;
  }
  EXPECT_EQ(Moeforge("view show -w " + ws + " bad").status, 2);
  EXPECT_EQ(Moeforge("view delete -w " + ws + " big").status, 0);
  EXPECT_EQ(Moeforge("view delete -w " + ws + " big").status, 2);

  // Re-tagging with a retrained model of the same name: its rows sit beside the old
  // version's, and a view pinned to the old version (NAME@SHA256-PREFIX) keeps reading them.
  std::string old_sha = [&] {
    Outcome q = Moeforge("query -w " + ws + " \"SELECT DISTINCT tagger_sha256 FROM v_face_tags\"", true);
    return q.out.substr(q.out.find('\n') + 1, 12);
  }();
  ASSERT_EQ(old_sha.size(), 12u);
  ASSERT_EQ(Moeforge("tag train -w " + ws + " --epochs 1 --seed 99").status, 0);
  Outcome retag = Moeforge("tag -w " + ws + " --tagger builtin:" + ws + "/models/builtin-tagger.pt --json", true);
  ASSERT_EQ(retag.status, 0) << retag.out;
  EXPECT_EQ(LastJson(retag)["done"], QueryInt(ws, "SELECT count(*) FROM faces WHERE crop_path IS NOT NULL"))
      << "the new version tags every face again";
  EXPECT_EQ(QueryInt(ws, "SELECT count(DISTINCT tagger_sha256) FROM v_face_tags"), 2);
  EXPECT_EQ(QueryInt(ws, "SELECT count(DISTINCT tagger) FROM v_face_tags"), 1) << "one name, two versions";
  ASSERT_EQ(Moeforge("view create -w " + ws + " old_tags --where \"\" --tagger builtin:builtin-tagger@" + old_sha).status, 0);
  ASSERT_EQ(Moeforge("view create -w " + ws + " new_tags --where \"\"").status, 0);
  {
    auto d2 = db::OpenWorkspace(Workspace(ws));
    ASSERT_TRUE(d2.ok());
    for (const char* view : {"old_tags", "new_tags"}) {
      auto v2 = db::GetView(**d2, view);
      ASSERT_TRUE(v2.ok());
      auto loaded = db::LoadDataset(**d2, view, "");
      ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
      ASSERT_GT(loaded->size(), 0u);
      auto q = (*d2)->Prepare("SELECT score, tagger_sha256 FROM v_face_tags WHERE tagger_id = ? AND face_id = ? AND tag = ?");
      ASSERT_TRUE(q.ok());
      q->BindAll(v2->tagger_id, loaded->face_ids[0], loaded->schema.tags()[0]);
      ASSERT_TRUE(*q->Step());
      EXPECT_FLOAT_EQ(static_cast<float>(q->Double(0)), loaded->scores[0]) << view;
      EXPECT_EQ(q->Text(1).substr(0, 12) == old_sha, std::string(view) == "old_tags") << view;
    }
  }

  // Raw SQL: read-only.
  int64_t faces = QueryInt(ws, "SELECT count(*) FROM v_faces");
  ASSERT_GT(faces, 0);
  std::string attach = dir + "/attached.db";
  for (std::string sql : std::vector<std::string>{"DELETE FROM faces", "DROP TABLE faces", "UPDATE faces SET w = 0",
                          "INSERT INTO views(name, filter_text, created_at) VALUES('x', '', 'now')",
                          "SELECT 1; DELETE FROM faces", "CREATE TABLE t(x)", "PRAGMA user_version = 9",
                          "ATTACH '" + attach + "' AS a", "SELECT * FROM no_such_table"}) {
    Outcome r = Moeforge("query -w " + ws + " \"" + sql + "\"");
    EXPECT_NE(r.status, 0) << sql << "\n" << r.out;
  }
  EXPECT_EQ(QueryInt(ws, "SELECT count(*) FROM v_faces"), faces);
  EXPECT_EQ(QueryInt(ws, "PRAGMA user_version"), db::CurrentSchemaVersion());  // unchanged by the refused queries
  EXPECT_FALSE(fs::exists(attach));
  Outcome tsv = Moeforge("query -w " + ws + " \"SELECT tagger, tagger_sha256 FROM v_face_tags LIMIT 1\"", true);
  ASSERT_EQ(tsv.status, 0) << tsv.out;
  EXPECT_EQ(tsv.out.rfind("tagger\ttagger_sha256\n", 0), 0u) << tsv.out;
}

TEST(Curation, TwoDetectRunsAndAViewYieldEachFaceOnce) {
  if (!HaveCascade()) GTEST_SKIP() << "lbpcascade_animeface not on MOEFORGE_MODEL_PATH";
  DemoBooruProcess booru("--posts 40 --seed 8");
  ASSERT_FALSE(booru.url().empty());
  std::string ws = RunDemo("twice", /*train=*/false, booru);
  ASSERT_FALSE(ws.empty());
  std::string dir = fs::path(ws).parent_path().string();
  ASSERT_EQ(Moeforge("view create -w " + ws + " first --where \"\"").status, 0);
  int64_t first_faces = QueryInt(ws, "SELECT count(*) FROM faces WHERE crop_path IS NOT NULL");
  // A second detector configuration over the same images: every face found again.
  Outcome d = Moeforge("detect -w " + ws + " --crop-size 64 --margin 0.3 --json", true);
  ASSERT_EQ(d.status, 0) << d.out;
  ASSERT_EQ(QueryInt(ws, "SELECT count(DISTINCT detector_id) FROM v_faces"), 2);
  Outcome t = Moeforge("tag -w " + ws + " --tagger builtin:" + ws + "/models/builtin-tagger.pt --json", true);
  ASSERT_EQ(t.status, 0) << t.out;
  int64_t newest = QueryInt(ws, "SELECT max(detector_id) FROM faces");
  int64_t newest_faces = QueryInt(ws, "SELECT count(*) FROM faces WHERE crop_path IS NOT NULL AND detector_id = " +
                                           std::to_string(newest));
  int64_t all_faces = QueryInt(ws, "SELECT count(*) FROM faces WHERE crop_path IS NOT NULL");
  ASSERT_LT(newest_faces, all_faces);
  Outcome c = Moeforge("view create -w " + ws + " every --where \"\"");
  ASSERT_EQ(c.status, 0) << c.out;
  Outcome show = Moeforge("view show -w " + ws + " every --json", true);
  ASSERT_EQ(show.status, 0) << show.out;
  EXPECT_EQ(LastJson(show)["faces"], newest_faces) << show.out;
  // The export of the view has each face once.
  std::string out = dir + "/once";
  Outcome e = Moeforge("export -w " + ws + " --view every --format captions --out " + out + " --json", true);
  ASSERT_EQ(e.status, 0) << e.out;
  EXPECT_EQ(LastJson(e)["done"], newest_faces);
  // The view made before keeps its pinned detector.
  Outcome first = Moeforge("view show -w " + ws + " first --json", true);
  ASSERT_EQ(first.status, 0) << first.out;
  EXPECT_EQ(LastJson(first)["faces"], first_faces) << first.out;
  EXPECT_EQ(first_faces + newest_faces, all_faces);
}

}  // namespace
}  // namespace moeforge::testing
