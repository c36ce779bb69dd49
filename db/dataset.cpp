#include "db/dataset.h"

#include <nlohmann/json.hpp>

#include <unordered_map>

#include "db/stage_run.h"

namespace moeforge::db {

Status CreateView(Database& db, const ViewInfo& view) {
  if (view.name.empty()) return Status::InvalidArgument("a view needs a name");
  std::string where = view.where_sql.empty() ? "1" : view.where_sql;
  if (where.find(';') != std::string::npos) return Status::InvalidArgument("view expression must not contain ';'");
  auto probe = db.Prepare("SELECT count(*) FROM v_dataset WHERE (" + where + ")");
  if (!probe.ok())
    return Status::InvalidArgument("view '" + view.name + "': the expression does not compile: " +
                                   probe.status().message());
  auto row = probe->Step();
  if (!row.ok()) return Status::InvalidArgument("view '" + view.name + "': " + row.status().message());
  if (!view.tagger.empty()) {
    auto t = FindTagger(db, view.tagger);
    if (!t.ok()) return t.status();
  }
  MF_ASSIGN_OR_RETURN(Stmt * st, db.Cached(
      "INSERT INTO views(name, where_sql, tagger, created_at) VALUES(?,?,?,?) "
      "ON CONFLICT(name) DO UPDATE SET where_sql=excluded.where_sql, tagger=excluded.tagger, "
      "created_at=excluded.created_at"));
  st->BindAll(view.name, where);
  if (view.tagger.empty()) st->Bind(3, nullptr); else st->Bind(3, view.tagger);
  st->Bind(4, NowIso());
  return st->Run();
}

Result<ViewInfo> GetView(Database& db, const std::string& name) {
  MF_ASSIGN_OR_RETURN(Stmt * st, db.Cached("SELECT name, where_sql, tagger, created_at FROM views WHERE name=?"));
  st->Bind(1, name);
  MF_ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return Status::NotFound("no view named '" + name + "' (see `moeforge view list`)");
  ViewInfo v{st->Text(0), st->Text(1), st->Text(2), st->Text(3)};
  st->Reset();
  return v;
}

Result<std::vector<ViewInfo>> ListViews(Database& db) {
  MF_ASSIGN_OR_RETURN(Stmt st, db.Prepare("SELECT name, where_sql, tagger, created_at FROM views ORDER BY name"));
  std::vector<ViewInfo> out;
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back({st.Text(0), st.Text(1), st.Text(2), st.Text(3)});
  }
  return out;
}

Result<TaggerInfo> FindTagger(Database& db, const std::string& name) {
  std::string sql = "SELECT id, name, model_sha256, params_json, schema_toml FROM taggers ";
  sql += name.empty() ? "ORDER BY id DESC LIMIT 1" : "WHERE name=? ORDER BY id DESC LIMIT 1";
  MF_ASSIGN_OR_RETURN(Stmt st, db.Prepare(sql));
  if (!name.empty()) st.Bind(1, name);
  MF_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row)
    return Status::NotFound(name.empty() ? std::string("no tagger has run in this workspace (run `moeforge tag` first)")
                                         : "no tagger named '" + name + "' has run in this workspace");
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

std::vector<float> Dataset::TagVector(size_t i) const {
  const size_t T = static_cast<size_t>(schema.size());
  std::vector<float> row(scores.begin() + static_cast<long>(i * T), scores.begin() + static_cast<long>((i + 1) * T));
  auto decided = schema.Decide(row, thresholds);
  std::vector<float> v(T);
  for (size_t k = 0; k < T; ++k) v[k] = decided[k] ? 1.f : 0.f;
  return v;
}

Result<Dataset> LoadDataset(Database& db, const std::string& view, const std::string& tagger) {
  std::string where = "1";
  std::string tagger_name = tagger;
  if (!view.empty()) {
    MF_ASSIGN_OR_RETURN(ViewInfo v, GetView(db, view));
    where = v.where_sql;
    if (tagger_name.empty()) tagger_name = v.tagger;
  }
  MF_ASSIGN_OR_RETURN(TaggerInfo t, FindTagger(db, tagger_name));
  Dataset ds;
  ds.schema = t.schema;
  ds.tagger = t.name;
  ds.thresholds = t.thresholds;
  const size_t T = static_cast<size_t>(t.schema.size());

  MF_ASSIGN_OR_RETURN(Stmt faces, db.Prepare(
      "SELECT face_id, crop_path FROM v_dataset WHERE (" + where + ") AND crop_path IS NOT NULL "
      "AND EXISTS (SELECT 1 FROM face_tags ft WHERE ft.tagger_id = ? AND ft.face_id = v_dataset.face_id) "
      "ORDER BY face_id"));
  faces.Bind(1, t.id);
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

}  // namespace moeforge::db
