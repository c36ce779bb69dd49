// The filter language of views, exports and training (docs/filters.md): what a user
// types to choose faces, compiled to an SQL condition over v_dataset in which every
// value the user typed is a bound parameter. Column and table names in the SQL come
// only from this file's own tables, never from the text.
//
//   mono_score < 0.5 and face_size >= 64
//   blonde_hair > 0.7 or hair_color = silver
//   smile and not glasses and source_tag = "solo"
//   rating in (general, sensitive) and faces_in_image = 1
//
// Tag conditions speak about one tagger's rows: a bare tag (`smile`) or `group = value`
// (`hair_color = blonde`) is the tagger's decision; `tag OP number` compares its score.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "core/status.h"
#include "db/dataset.h"
#include "db/db.h"

namespace moeforge::db {

using SqlValue = std::variant<int64_t, double, std::string>;

struct CompiledFilter {
  std::string sql;              // a boolean SQL expression over v_dataset, with ? placeholders
  std::vector<SqlValue> params;  // bound in order
  bool uses_tags = false;       // names a tag or a tag group (needs a tagger)
};

// Compiles `text` ("" selects every face). Tag conditions read `tagger`'s rows; with
// `tagger` null they are an error. Errors are InvalidArgument and start with
// "column N:" (1-based byte offset of the bad token in `text`).
Result<CompiledFilter> CompileFilter(const std::string& text, const TaggerInfo* tagger);

// Binds `params` to `st` from position `first` on.
void BindParams(Stmt& st, int first, const std::vector<SqlValue>& params);

// The faces `view` selects ("" = every face of the newest detector), narrowed by `filter`
// (read against the same tagger), as a condition over v_dataset, for a caller that sorts
// and pages them itself (`moeforge serve`). The same faces LoadDataset(view) returns when
// `filter` is empty, except that untagged faces count when no tagger has run.
struct FaceSelection {
  std::string where;             // an SQL condition over v_dataset, with ? placeholders
  std::vector<SqlValue> params;  // bound in order
  bool has_tagger = false;
  TaggerInfo tagger;             // the tagger tag conditions read (when has_tagger)
  int64_t detector_id = 0;       // 0: no face detected yet (the condition selects nothing)
};
Result<FaceSelection> SelectFaces(Database& db, const std::string& view, const std::string& filter);

}  // namespace moeforge::db
