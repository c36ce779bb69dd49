// Helpers for the tagger's tests and tools (header-only, not part of the library): a
// workspace filled with demo faces through plain SQL, so the tag stage can be tested
// without crawling or detecting.
#pragma once

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "core/hash.h"
#include "core/tag_schema.h"
#include "core/workspace.h"
#include "db/db.h"
#include "db/stage_run.h"

namespace moeforge::tagger::testing {

// A random character's schema tags, distributed as the demo booru draws them.
inline std::vector<std::string> RandomCharacterTags(std::mt19937_64& rng) {
  const auto& s = TagSchema::Default();
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<std::string> t;
  for (const auto& g : s.groups()) {
    if (!g.exclusive) continue;
    t.push_back(g.tags[std::uniform_int_distribution<size_t>(0, g.tags.size() - 1)(rng)]);
  }
  double len = u(rng), style = u(rng);
  if (len < 0.4) t.push_back("long_hair");
  else if (len < 0.7) t.push_back("short_hair");
  if (style < 0.25) t.push_back("twintails");
  else if (style < 0.45) t.push_back("drill_hair");
  else if (style < 0.65) t.push_back("ponytail");
  const std::pair<const char*, double> binaries[] = {{"blush", 0.3}, {"smile", 0.4}, {"open_mouth", 0.3},
                                                     {"hat", 0.25},  {"ribbon", 0.3}, {"glasses", 0.2}};
  for (auto& [tag, p] : binaries)
    if (u(rng) < p) t.push_back(tag);
  return t;
}

// Builds rows the crawler and detector would leave: one source, and per call one
// post + image + its faces (crops written as PNG under crops/).
class FakeWorkspace {
 public:
  explicit FakeWorkspace(const std::string& root) : ws_(root) {
    std::filesystem::remove_all(root);
    db_ = std::move(db::OpenWorkspace(ws_, true).value());
    ws_.CreateDirs();
    db_->Exec("INSERT INTO sources(kind, url) VALUES('danbooru', 'http://demo')");
    db_->Exec("INSERT INTO detectors(name, model_sha256, params_json, created_at) VALUES('cascade:test', 'x', '{}', 'now')");
  }
  const Workspace& ws() const { return ws_; }
  db::Database& db() { return *db_; }

  // Returns the face ids.
  std::vector<int64_t> AddPost(const std::vector<cv::Mat>& faces, const std::vector<std::string>& post_tags) {
    ++posts_;
    std::string sha = Sha256Hex("image" + std::to_string(posts_));
    auto ins = [&](const std::string& sql) {
      auto s = db_->Exec(sql);
      if (!s.ok()) throw std::runtime_error(s.ToString());
    };
    ins("INSERT INTO images(sha256, bytes, added_at) VALUES('" + sha + "', 1, 'now')");
    ins("INSERT INTO posts(source_id, remote_id, image_sha256, state, updated_at) VALUES(1, '" +
        std::to_string(posts_) + "', '" + sha + "', 'stored', 'now')");
    int64_t post_id = db_->LastInsertRowid();
    for (const auto& t : post_tags)
      ins("INSERT OR IGNORE INTO source_tags(post_id, tag) VALUES(" + std::to_string(post_id) + ", '" + t + "')");
    std::vector<int64_t> ids;
    for (size_t i = 0; i < faces.size(); ++i) {
      std::string rel = "crops/p" + std::to_string(posts_) + "_" + std::to_string(i) + ".png";
      cv::imwrite(ws_.Abs(rel), faces[i]);
      ins("INSERT INTO faces(detector_id, image_sha256, idx, x, y, w, h, score, crop_path, crop_size) VALUES(1, '" +
          sha + "', " + std::to_string(i) + ", 0, 0, 10, 10, " + std::to_string(1.0 - 0.1 * i) + ", '" + rel +
          "', " + std::to_string(faces[i].cols) + ")");
      ids.push_back(db_->LastInsertRowid());
    }
    return ids;
  }

 private:
  Workspace ws_;
  std::unique_ptr<db::Database> db_;
  int posts_ = 0;
};

}  // namespace moeforge::tagger::testing
