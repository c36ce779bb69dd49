// Datasets: which faces a stage trains on or exports, and the tag vectors it uses. A
// named view (`moeforge view create -w WS NAME --where FILTER`) is a reusable filter in
// the filter language of db/filter.h (docs/filters.md), e.g.
//   "face_size >= 64 and mono_score < 0.2 and faces_in_image = 1 and not glasses"
// A view pins one detector and one tagger version (the newest when it is created unless
// named), so a face detected by two detectors, or tagged by two taggers, enters a
// dataset once, and re-tagging does not change what an existing view means.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tag_schema.h"
#include "db/db.h"

namespace moeforge::db {

struct ViewInfo {
  std::string name;
  std::string filter;      // filter-language text ("" selects every face)
  std::string tagger;      // to create: the tagger to pin, NAME or NAME@SHA256-PREFIX ("" = newest);
                           // as read: the pinned tagger's name ("" = none had run: newest at load)
  std::string created_at;
  std::string detector = std::string();  // like tagger, for the detector (e.g. cascade:lbpcascade_animeface)
  int64_t tagger_id = 0;                 // as read: the pinned rows (0: none)
  int64_t detector_id = 0;
};

// Creates or replaces a view after compiling its filter against the tagger it pins.
Status CreateView(Database& db, const ViewInfo& view);
Result<ViewInfo> GetView(Database& db, const std::string& name);
Result<std::vector<ViewInfo>> ListViews(Database& db);
Status DeleteView(Database& db, const std::string& name);

struct TaggerInfo {
  int64_t id = 0;
  std::string name;
  std::string model_sha256;
  TagSchema schema;
  std::vector<float> thresholds;  // per schema tag; 0.5 where the tagger recorded none
};
// The tagger called `name` (the newest such row), or the newest tagger when empty.
// `name` may end in @PREFIX of the model's SHA-256 to pick one version of a tagger.
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
// newest) has scored, of the view's detector (the newest detector for ""), in face_id
// order.
Result<Dataset> LoadDataset(Database& db, const std::string& view, const std::string& tagger);

struct ViewCount {
  int64_t selected = 0;  // faces LoadDataset(view) returns
  int64_t of = 0;        // the faces it chooses from: the detector's, with a crop, tagged when a tagger has run
  std::string detector;  // the detector and tagger counted with ("" when none has run)
  std::string tagger;
};
// Counts what `view` selects without loading it (the one count behind view list, the
// pipeline's view step and export's summary). Works before any tagger has run.
Result<ViewCount> CountView(Database& db, const std::string& view);

}  // namespace moeforge::db
