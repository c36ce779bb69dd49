// A small hand-built workspace for the db/ tests (filters, views, datasets): rows written
// directly, so each test knows exactly which face should be selected.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "db/dataset.h"
#include "db/db.h"
#include "db/filter.h"

namespace moeforge::db {

// A workspace with three images and two detectors over them:
//   image A (post 1, general, solo):            face 1 (100x90)
//   image B (post 2, sensitive, 2girls):        face 2 (40x40), face 3 (80x70)
//   image C (post 3, explicit, solo monochrome): face 4 (120x120, mono 0.9)
// detector 1 found faces 1-4; detector 2 (newer) found faces 5 (A) and 6 (C) again.
// Tagger 1 (sha 1111...) scored every face; tagger 2 (same name, sha 2222..., newer)
// re-tagged them and calls face 1 brown-haired.
class TestWorkspace {
 public:
  TestWorkspace() {
    dir_ = (std::filesystem::temp_directory_path() / ("moeforge_db_fixture_" + std::to_string(getpid()))).string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto db = OpenWorkspace(Workspace(dir_), true);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db).value();
    Exec(R"SQL(
      INSERT INTO sources(id, kind, url) VALUES(1, 'danbooru', 'http://127.0.0.1:1');
      INSERT INTO images(sha256, bytes, width, height, added_at) VALUES
        ('aaaa', 1, 400, 300, 'now'), ('bbbb', 1, 800, 600, 'now'), ('cccc', 1, 500, 500, 'now');
      INSERT INTO posts(id, source_id, remote_id, rating, image_sha256, state, updated_at) VALUES
        (1, 1, '101', 'general', 'aaaa', 'stored', 'now'),
        (2, 1, '102', 'sensitive', 'bbbb', 'stored', 'now'),
        (3, 1, '103', 'explicit', 'cccc', 'stored', 'now');
      INSERT INTO source_tags(post_id, tag) VALUES (1, 'solo'), (2, '2girls'), (3, 'solo'), (3, 'monochrome'),
        (3, 'x''); DROP TABLE faces; --');
      INSERT INTO detectors(id, name, model_sha256, params_json, created_at) VALUES
        (1, 'cascade:lbp', 'd1d1d1d1', '{}', 'now'), (2, 'yunet:yunet', 'd2d2d2d2', '{}', 'now');
      INSERT INTO faces(id, detector_id, image_sha256, idx, x, y, w, h, score, crop_path, crop_size, pad_frac,
                        sharpness, mono_score) VALUES
        (1, 1, 'aaaa', 0, 10, 10, 100, 90, 0.9, 'crops/1.png', 64, 0.0, 120, 0.1),
        (2, 1, 'bbbb', 0, 10, 10, 40, 40, 0.8, 'crops/2.png', 64, 0.2, 30, 0.2),
        (3, 1, 'bbbb', 1, 100, 10, 80, 70, 0.7, 'crops/3.png', 64, 0.0, NULL, 0.0),
        (4, 1, 'cccc', 0, 10, 10, 120, 120, 0.6, 'crops/4.png', 64, 0.0, 80, 0.9),
        (5, 2, 'aaaa', 0, 12, 11, 98, 92, 0.95, 'crops/5.png', 64, 0.0, 118, 0.1),
        (6, 2, 'cccc', 0, 11, 10, 118, 121, 0.85, 'crops/6.png', 64, 0.0, 79, 0.9);
    )SQL");
    std::string schema = TagSchema::Default().ToToml();
    for (int t : {1, 2}) {
      auto st = db_->Prepare("INSERT INTO taggers(id, name, model_sha256, params_json, schema_toml, created_at) "
                             "VALUES(?, 'builtin:t', ?, '{}', ?, 'now')");
      EXPECT_TRUE(st.ok());
      st->BindAll(t, std::string(64, t == 1 ? '1' : '2'), schema);
      EXPECT_TRUE(st->Run().ok());
    }
    // Scores of tagger 1; faces 5 and 6 are faces 1 and 4 seen by detector 2.
    Tags(1, 1, {{"blonde_hair", 0.9}, {"brown_hair", 0.1}, {"blue_eyes", 0.8}, {"smile", 0.7}, {"glasses", 0.1}});
    Tags(1, 2, {{"brown_hair", 0.6}, {"blonde_hair", 0.3}, {"red_eyes", 0.7}, {"smile", 0.2}, {"glasses", 0.9}});
    Tags(1, 3, {{"silver_hair", 0.8}, {"blue_eyes", 0.6}, {"smile", 0.55}, {"glasses", 0.4}});
    Tags(1, 4, {{"black_hair", 0.7}, {"green_eyes", 0.5}, {"smile", 0.9}, {"glasses", 0.2}});
    Tags(1, 5, {{"blonde_hair", 0.85}, {"blue_eyes", 0.8}, {"smile", 0.6}});
    Tags(1, 6, {{"black_hair", 0.7}, {"green_eyes", 0.5}, {"smile", 0.8}});
    // The tagger's own decision wins over the fallback: 0.55 >= 0.5, but it said no.
    Exec("UPDATE face_tags SET present = 0 WHERE tagger_id = 1 AND face_id = 3 AND tag = 'smile'");
    Tags(2, 1, {{"blonde_hair", 0.2}, {"brown_hair", 0.7}, {"blue_eyes", 0.8}, {"smile", 0.7}, {"glasses", 0.1}});
    for (int f : {2, 3, 4, 5, 6}) Exec("INSERT INTO face_tags(tagger_id, face_id, tag, score, present) "
                                       "SELECT 2, face_id, tag, score, present FROM face_tags WHERE tagger_id = 1 "
                                       "AND face_id = " + std::to_string(f));
  }
  ~TestWorkspace() { std::filesystem::remove_all(dir_); }

  Database& db() { return *db_; }
  const std::string& dir() const { return dir_; }
  TaggerInfo Tagger(int id) {
    auto t = FindTagger(*db_, std::string("builtin:t@") + std::string(8, id == 1 ? '1' : '2'));
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return std::move(t).value();
  }
  // Runs a compiled filter over detector 1's faces; returns the face ids.
  std::set<int64_t> Run(const CompiledFilter& f) {
    auto st = db_->Prepare("SELECT face_id FROM v_dataset WHERE detector_id = 1 AND (" + f.sql + ") ORDER BY face_id");
    EXPECT_TRUE(st.ok()) << st.status().ToString() << "\n" << f.sql;
    std::set<int64_t> out;
    if (!st.ok()) return out;
    BindParams(*st, 1, f.params);
    while (true) {
      auto row = st->Step();
      EXPECT_TRUE(row.ok()) << row.status().ToString() << "\n" << f.sql;
      if (!row.ok() || !*row) break;
      out.insert(st->Int(0));
    }
    return out;
  }
  void Exec(const std::string& sql) { ASSERT_TRUE(db_->Exec(sql).ok()) << sql; }

 private:
  void Tags(int tagger, int face, std::vector<std::pair<const char*, double>> tags) {
    for (auto& [tag, score] : tags) {
      auto st = db_->Prepare("INSERT INTO face_tags(tagger_id, face_id, tag, score) VALUES(?,?,?,?)");
      ASSERT_TRUE(st.ok());
      st->BindAll(tagger, face, std::string(tag), score);
      ASSERT_TRUE(st->Run().ok());
    }
  }
  std::string dir_;
  std::unique_ptr<Database> db_;
};

}  // namespace moeforge::db
