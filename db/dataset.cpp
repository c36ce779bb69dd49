#include "db/dataset.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <unordered_map>

#include "db/filter.h"
#include "db/stage_run.h"

namespace moeforge::db {

namespace {

// "NAME@PREFIX" -> {NAME, PREFIX} when PREFIX is 4+ hex digits (a model SHA-256 prefix);
// otherwise the whole text is the name.
std::pair<std::string, std::string> SplitVersion(const std::string& s) {
  auto at = s.rfind('@');
  if (at == std::string::npos || s.size() - at - 1 < 4) return {s, ""};
  for (size_t i = at + 1; i < s.size(); ++i)
    if (!std::isxdigit(static_cast<unsigned char>(s[i]))) return {s, ""};
  std::string prefix = s.substr(at + 1);
  for (auto& c : prefix) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return {s.substr(0, at), prefix};
}

Result<TaggerInfo> TaggerFromRow(Stmt& st) {
  TaggerInfo t;
  t.id = st.Int(0);
  t.name = st.Text(1);
  t.model_sha256 = st.Text(2);
  auto schema = TagSchema::FromToml(st.Text(4));
  if (!schema.ok()) return schema.status().WithContext("tagger '" + t.name + "'");
  t.schema = std::move(schema).value();
  t.thresholds.assign(static_cast<size_t>(t.schema.size()), 0.5f);
  auto params = nlohmann::json::parse(st.Text(3), nullptr, false);
  if (!params.is_discarded() && params.contains("thresholds") && params["thresholds"].is_array() &&
      params["thresholds"].size() == t.thresholds.size()) {
    for (size_t i = 0; i < t.thresholds.size(); ++i) t.thresholds[i] = params["thresholds"][i].get<float>();
  }
  return t;
}

const char* kTaggerColumns = "SELECT id, name, model_sha256, params_json, schema_toml FROM taggers ";

Result<TaggerInfo> TaggerById(Database& db, int64_t id) {
  MF_ASSIGN_OR_RETURN(Stmt st, db.Prepare(std::string(kTaggerColumns) + "WHERE id=?"));
  st.Bind(1, id);
  MF_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return Status::NotFound("tagger row " + std::to_string(id) + " is gone from this workspace");
  return TaggerFromRow(st);
}

struct DetectorRef {
  int64_t id = 0;  // 0: no face detected yet
  std::string name;
};

// The detector called `name` (NAME or NAME@SHA256-PREFIX, newest such row), or when
// empty the newest detector that found faces.
Result<DetectorRef> FindDetector(Database& db, const std::string& name) {
  if (name.empty()) {
    MF_ASSIGN_OR_RETURN(Stmt st, db.Prepare("SELECT d.id, d.name FROM detectors d "
                                            "WHERE d.id = (SELECT max(detector_id) FROM faces)"));
    MF_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return DetectorRef{};
    return DetectorRef{st.Int(0), st.Text(1)};
  }
  auto [base, prefix] = SplitVersion(name);
  MF_ASSIGN_OR_RETURN(Stmt st, db.Prepare("SELECT id, name FROM detectors WHERE name=? AND "
                                          "substr(model_sha256, 1, length(?2)) = ?2 ORDER BY id DESC LIMIT 1"));
  st.BindAll(base, prefix);
  MF_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return Status::NotFound("no detector named '" + name + "' has run in this workspace (see `moeforge status`)");
  return DetectorRef{st.Int(0), st.Text(1)};
}

// What a dataset request resolves to: one tagger version, one detector, a compiled filter.
struct Selection {
  bool has_tagger = false;
  TaggerInfo tagger;
  DetectorRef detector;
  CompiledFilter filter;
};

Result<Selection> Select(Database& db, const std::string& view, const std::string& tagger, bool need_tagger) {
  ViewInfo v;
  if (!view.empty()) {
    MF_ASSIGN_OR_RETURN(v, GetView(db, view));
  }
  Selection s;
  if (!tagger.empty()) {
    MF_ASSIGN_OR_RETURN(s.tagger, FindTagger(db, tagger));
    s.has_tagger = true;
  } else if (v.tagger_id != 0) {
    MF_ASSIGN_OR_RETURN(s.tagger, TaggerById(db, v.tagger_id));
    s.has_tagger = true;
  } else {
    auto t = FindTagger(db, v.tagger);
    if (t.ok()) {
      s.tagger = std::move(t).value();
      s.has_tagger = true;
    } else if (need_tagger || t.status().code() != Status::Code::kNotFound || !v.tagger.empty()) {
      return t.status();
    }
  }
  s.detector = v.detector_id != 0 ? DetectorRef{v.detector_id, v.detector} : DetectorRef{};
  if (s.detector.id == 0) {
    MF_ASSIGN_OR_RETURN(s.detector, FindDetector(db, ""));
  }
  auto f = CompileFilter(v.filter, s.has_tagger ? &s.tagger : nullptr);
  if (!f.ok()) return f.status().WithContext("view '" + view + "' (" + v.filter + ")");
  s.filter = std::move(f).value();
  return s;
}

// The WHERE clause over v_dataset for `s`: its detector's faces with a crop, tagged by its
// tagger, and with `with_filter` passing the filter. Appends the bound values to `params`.
std::string SelectionWhere(const Selection& s, bool with_filter, std::vector<SqlValue>* params) {
  std::string sql = "v_dataset.crop_path IS NOT NULL AND v_dataset.detector_id = ?";
  params->push_back(s.detector.id);
  if (s.has_tagger) {
    sql += " AND EXISTS (SELECT 1 FROM face_tags ft WHERE ft.tagger_id = ? AND ft.face_id = v_dataset.face_id)";
    params->push_back(s.tagger.id);
  }
  if (with_filter) {
    sql += " AND (" + s.filter.sql + ")";
    params->insert(params->end(), s.filter.params.begin(), s.filter.params.end());
  }
  return sql;
}

Result<int64_t> Count(Database& db, const Selection& s, bool with_filter) {
  std::vector<SqlValue> params;
  MF_ASSIGN_OR_RETURN(Stmt st, db.Prepare("SELECT count(*) FROM v_dataset WHERE " + SelectionWhere(s, with_filter, &params)));
  BindParams(st, 1, params);
  MF_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.Int(0) : 0;
}

}  // namespace

Status CreateView(Database& db, const ViewInfo& view) {
  if (view.name.empty()) return Status::InvalidArgument("a view needs a name");
  Selection s;
  if (!view.tagger.empty()) {
    MF_ASSIGN_OR_RETURN(s.tagger, FindTagger(db, view.tagger));
    s.has_tagger = true;
  } else {
    auto t = FindTagger(db, "");
    if (t.ok()) {
      s.tagger = std::move(t).value();
      s.has_tagger = true;
    } else if (t.status().code() != Status::Code::kNotFound) {
      return t.status();
    }
  }
  MF_ASSIGN_OR_RETURN(s.detector, FindDetector(db, view.detector));
  auto f = CompileFilter(view.filter, s.has_tagger ? &s.tagger : nullptr);
  if (!f.ok()) return f.status().WithContext("view '" + view.name + "'");
  s.filter = std::move(f).value();
  // The SQL is ours, but run it once so a view never stores what cannot load.
  auto probe = Count(db, s, true);
  if (!probe.ok()) return probe.status().WithContext("view '" + view.name + "'");
  MF_ASSIGN_OR_RETURN(Stmt * st, db.Cached(
      "INSERT INTO views(name, filter_text, tagger, created_at, detector_id, tagger_id) VALUES(?,?,?,?,?,?) "
      "ON CONFLICT(name) DO UPDATE SET filter_text=excluded.filter_text, tagger=excluded.tagger, "
      "created_at=excluded.created_at, detector_id=excluded.detector_id, tagger_id=excluded.tagger_id"));
  st->BindAll(view.name, view.filter);
  if (s.has_tagger) st->Bind(3, s.tagger.name); else st->Bind(3, nullptr);
  st->Bind(4, NowIso());
  if (s.detector.id != 0) st->Bind(5, s.detector.id); else st->Bind(5, nullptr);
  if (s.has_tagger) st->Bind(6, s.tagger.id); else st->Bind(6, nullptr);
  return st->Run();
}

namespace {
const char* kViewColumns =
    "SELECT v.name, v.filter_text, coalesce(t.name, v.tagger, ''), v.created_at, coalesce(d.name, ''), "
    "coalesce(v.tagger_id, 0), coalesce(v.detector_id, 0) FROM views v "
    "LEFT JOIN taggers t ON t.id = v.tagger_id LEFT JOIN detectors d ON d.id = v.detector_id ";

ViewInfo ViewFromRow(const Stmt& st) {
  return ViewInfo{st.Text(0), st.Text(1), st.Text(2), st.Text(3), st.Text(4), st.Int(5), st.Int(6)};
}
}  // namespace

Result<ViewInfo> GetView(Database& db, const std::string& name) {
  MF_ASSIGN_OR_RETURN(Stmt st, db.Prepare(std::string(kViewColumns) + "WHERE v.name=?"));
  st.Bind(1, name);
  MF_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return Status::NotFound("no view named '" + name + "' (see `moeforge view list`)");
  return ViewFromRow(st);
}

Result<std::vector<ViewInfo>> ListViews(Database& db) {
  MF_ASSIGN_OR_RETURN(Stmt st, db.Prepare(std::string(kViewColumns) + "ORDER BY v.name"));
  std::vector<ViewInfo> out;
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(ViewFromRow(st));
  }
  return out;
}

Status DeleteView(Database& db, const std::string& name) {
  MF_ASSIGN_OR_RETURN(Stmt st, db.Prepare("DELETE FROM views WHERE name=?"));
  st.Bind(1, name);
  MF_RETURN_IF_ERROR(st.Run());
  if (db.Changes() == 0) return Status::NotFound("no view named '" + name + "' (see `moeforge view list`)");
  return Status::Ok();
}

Result<TaggerInfo> FindTagger(Database& db, const std::string& name) {
  auto [base, prefix] = SplitVersion(name);
  std::string sql = kTaggerColumns;
  sql += name.empty() ? "ORDER BY id DESC LIMIT 1"
                      : "WHERE name=? AND substr(model_sha256, 1, length(?2)) = ?2 ORDER BY id DESC LIMIT 1";
  MF_ASSIGN_OR_RETURN(Stmt st, db.Prepare(sql));
  if (!name.empty()) st.BindAll(base, prefix);
  MF_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row)
    return Status::NotFound(name.empty() ? std::string("no tagger has run in this workspace (run `moeforge tag` first)")
                                         : "no tagger named '" + name + "' has run in this workspace");
  return TaggerFromRow(st);
}

std::vector<float> Dataset::TagVector(size_t i) const {
  const size_t T = static_cast<size_t>(schema.size());
  std::vector<float> row(scores.begin() + static_cast<long>(i * T), scores.begin() + static_cast<long>((i + 1) * T));
  auto decided = schema.Decide(row, thresholds);
  std::vector<float> v(T);
  for (size_t k = 0; k < T; ++k) v[k] = decided[k] ? 1.f : 0.f;
  return v;
}

Result<Dataset> LoadDataset(Database& db, const std::string& view, const std::string& tagger) {
  MF_ASSIGN_OR_RETURN(Selection s, Select(db, view, tagger, /*need_tagger=*/true));
  const TaggerInfo& t = s.tagger;
  Dataset ds;
  ds.schema = t.schema;
  ds.tagger = t.name;
  ds.thresholds = t.thresholds;
  const size_t T = static_cast<size_t>(t.schema.size());

  std::vector<SqlValue> params;
  MF_ASSIGN_OR_RETURN(Stmt faces, db.Prepare("SELECT face_id, crop_path FROM v_dataset WHERE " +
                                             SelectionWhere(s, true, &params) + " ORDER BY face_id"));
  BindParams(faces, 1, params);
  std::unordered_map<int64_t, size_t> row_of;
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, faces.Step());
    if (!row) break;
    row_of[faces.Int(0)] = ds.face_ids.size();
    ds.face_ids.push_back(faces.Int(0));
    ds.crop_paths.push_back(faces.Text(1));
  }
  ds.scores.assign(ds.face_ids.size() * T, 0.f);
  MF_ASSIGN_OR_RETURN(Stmt tags, db.Prepare("SELECT face_id, tag, score FROM face_tags WHERE tagger_id = ?"));
  tags.Bind(1, t.id);
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, tags.Step());
    if (!row) break;
    auto it = row_of.find(tags.Int(0));
    if (it == row_of.end()) continue;
    int col = t.schema.IndexOf(tags.Text(1));
    if (col >= 0) ds.scores[it->second * T + static_cast<size_t>(col)] = static_cast<float>(tags.Double(2));
  }
  return ds;
}

Result<FaceSelection> SelectFaces(Database& db, const std::string& view, const std::string& filter) {
  MF_ASSIGN_OR_RETURN(Selection s, Select(db, view, "", /*need_tagger=*/false));
  FaceSelection out;
  out.where = SelectionWhere(s, true, &out.params);
  auto extra = CompileFilter(filter, s.has_tagger ? &s.tagger : nullptr);
  if (!extra.ok()) return extra.status();
  out.where += " AND (" + extra->sql + ")";
  out.params.insert(out.params.end(), extra->params.begin(), extra->params.end());
  out.has_tagger = s.has_tagger;
  out.tagger = std::move(s.tagger);
  out.detector_id = s.detector.id;
  return out;
}

Result<ViewCount> CountView(Database& db, const std::string& view) {
  MF_ASSIGN_OR_RETURN(Selection s, Select(db, view, "", /*need_tagger=*/false));
  ViewCount c;
  c.detector = s.detector.name;
  if (s.has_tagger) c.tagger = s.tagger.name;
  if (s.detector.id == 0) return c;
  MF_ASSIGN_OR_RETURN(c.selected, Count(db, s, true));
  MF_ASSIGN_OR_RETURN(c.of, Count(db, s, false));
  return c;
}

}  // namespace moeforge::db
