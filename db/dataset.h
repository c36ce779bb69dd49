// Datasets: which faces a stage trains on, and the tag vectors it trains with. A named
// view is a reusable filter (`moeforge view create -w WS NAME --where EXPR`): EXPR is an
// SQL expression over the columns of v_dataset (v_faces' columns plus sharpness,
// mono_score, pad_frac, rating, image_width, image_height, faces_in_image), e.g.
//   "crop_size >= 64 AND mono_score < 0.2 AND faces_in_image = 1"
// Tag conditions go through v_face_tags, e.g.
//   "face_id IN (SELECT face_id FROM v_face_tags WHERE tag = 'hat' AND score > 0.5)".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tag_schema.h"
#include "db/db.h"

namespace moeforge::db {

struct ViewInfo {
  std::string name;
  std::string where_sql;
  std::string tagger;  // empty: the newest tagger
  std::string created_at;
};

// Creates or replaces a view after checking that EXPR compiles and runs.
Status CreateView(Database& db, const ViewInfo& view);
Result<ViewInfo> GetView(Database& db, const std::string& name);
Result<std::vector<ViewInfo>> ListViews(Database& db);

struct TaggerInfo {
  int64_t id = 0;
  std::string name;
  std::string model_sha256;
  TagSchema schema;
  std::vector<float> thresholds;  // per schema tag; 0.5 where the tagger recorded none
};
// The tagger called `name` (the newest such row), or the newest tagger when empty.
Result<TaggerInfo> FindTagger(Database& db, const std::string& name);

struct Dataset {
  TagSchema schema;
  std::string tagger;
  std::vector<int64_t> face_ids;
  std::vector<std::string> crop_paths;  // relative to the workspace
  std::vector<float> scores;            // N x T row-major, the tagger's scores in schema order
  std::vector<float> thresholds;        // per tag
  size_t size() const { return face_ids.size(); }
  // Row i's decided tags as 0/1 (TagSchema::Decide: argmax in exclusive groups).
  std::vector<float> TagVector(size_t i) const;
};

// The faces of `view` ("" = every face) that `tagger` ("" = the view's tagger, else the
// newest) has scored, in face_id order.
Result<Dataset> LoadDataset(Database& db, const std::string& view, const std::string& tagger);

}  // namespace moeforge::db
