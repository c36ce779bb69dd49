#include "studio/catalog.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "core/tag_schema.h"
#include "db/dataset.h"
#include "db/filter.h"

namespace fs = std::filesystem;

namespace moeforge::studio {

class Catalog::Lease {
 public:
  Lease(Catalog* c, int pool, std::unique_ptr<db::Database> d) : c_(c), pool_(pool), d_(std::move(d)) {}
  Lease(Lease&& o) noexcept : c_(o.c_), pool_(o.pool_), d_(std::move(o.d_)) {}
  ~Lease() {
    if (!d_) return;
    std::lock_guard<std::mutex> lock(c_->mu_);
    c_->free_[pool_].push_back(std::move(d_));
    c_->cv_.notify_all();
  }
  db::Database& operator*() { return *d_; }
  db::Database* operator->() { return d_.get(); }

 private:
  Catalog* c_;
  int pool_;
  std::unique_ptr<db::Database> d_;
};

namespace {

nlohmann::json SchemaGroupsJson(const TagSchema& schema) {
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& g : schema.groups())
    groups.push_back({{"name", g.name}, {"exclusive", g.exclusive}, {"tags", g.tags}});
  return groups;
}

// A face's tags from one tagger: score and decision (the tagger's own, or for rows from
// before it recorded one, TagSchema::Decide as training does).
struct FaceTags {
  std::vector<float> scores;
  std::vector<int> present;  // 1/0, -1: not recorded
};

nlohmann::json TagsJson(const db::TaggerInfo& t, const FaceTags& ft) {
  std::vector<bool> decided;
  bool fallback = std::find(ft.present.begin(), ft.present.end(), -1) != ft.present.end();
  if (fallback) decided = t.schema.Decide(ft.scores, t.thresholds);
  nlohmann::json out = nlohmann::json::array();
  for (int c = 0; c < t.schema.size(); ++c) {
    const size_t i = static_cast<size_t>(c);
    bool on = ft.present[i] >= 0 ? ft.present[i] == 1 : static_cast<bool>(decided[i]);
    out.push_back({{"tag", t.schema.tags()[i]}, {"score", ft.scores[i]}, {"on", on}});
  }
  return out;
}

// Reads `tagger`'s rows for `ids` into `out` (by face id).
Status LoadTags(db::Database& db, const db::TaggerInfo& tagger, const std::vector<int64_t>& ids,
                std::map<int64_t, FaceTags>* out) {
  if (ids.empty()) return Status::Ok();
  std::string sql = "SELECT face_id, tag, score, present FROM face_tags WHERE tagger_id = ? AND face_id IN (";
  for (size_t i = 0; i < ids.size(); ++i) sql += i ? ",?" : "?";
  sql += ")";
  MF_ASSIGN_OR_RETURN(db::Stmt st, db.Prepare(sql));
  st.Bind(1, tagger.id);
  for (size_t i = 0; i < ids.size(); ++i) st.Bind(static_cast<int>(i) + 2, ids[i]);
  const size_t T = static_cast<size_t>(tagger.schema.size());
  for (int64_t id : ids) (*out)[id] = FaceTags{std::vector<float>(T, 0.f), std::vector<int>(T, 0)};
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    int c = tagger.schema.IndexOf(st.Text(1));
    if (c < 0) continue;
    FaceTags& f = (*out)[st.Int(0)];
    f.scores[static_cast<size_t>(c)] = static_cast<float>(st.Double(2));
    f.present[static_cast<size_t>(c)] = st.IsNull(3) ? -1 : static_cast<int>(st.Int(3));
  }
  return Status::Ok();
}

// "K:ID" -> K and ID; the page cursor (K the sort key's value, ID the last face).
Status ParseCursor(const std::string& s, double* k, int64_t* id) {
  auto colon = s.rfind(':');
  Status bad = Status::InvalidArgument("malformed page cursor '" + s + "' (use the `next` value of the previous page)");
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size() || s.size() > 64) return bad;
  std::string a = s.substr(0, colon), b = s.substr(colon + 1);
  char* end = nullptr;
  errno = 0;
  *k = std::strtod(a.c_str(), &end);
  if (*end != '\0' || errno != 0) return bad;
  if (b.find_first_not_of("0123456789") != std::string::npos || b.size() > 18) return bad;
  *id = std::strtoll(b.c_str(), nullptr, 10);
  return Status::Ok();
}

std::string FormatCursor(double k, int64_t id) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g:%lld", k, static_cast<long long>(id));
  return buf;
}

}  // namespace

Result<std::unique_ptr<Catalog>> Catalog::Open(const Workspace& ws, int connections) {
  MF_RETURN_IF_ERROR(ws.CheckExists());
  std::unique_ptr<Catalog> c(new Catalog(ws));
  db::OpenOptions opts;
  opts.read_only = true;
  const int scan = std::max(1, connections);
  for (int i = 0; i < scan + 2; ++i) {
    auto d = db::Database::Open(ws.db_path(), opts);
    if (!d.ok()) {
      if (d.status().code() == Status::Code::kNotFound)
        return Status::NotFound("no workspace at " + ws.root() + " (create one with `moeforge init`)");
      return d.status();
    }
    MF_RETURN_IF_ERROR((*d)->Exec("PRAGMA query_only = 1"));
    if (i == 0) {
      MF_ASSIGN_OR_RETURN(int64_t v, (*d)->QueryInt("PRAGMA user_version"));
      if (v != db::CurrentSchemaVersion())
        return Status::Unsupported("workspace " + ws.root() + " has schema version " + std::to_string(v) +
                                   ", this moeforge reads " + std::to_string(db::CurrentSchemaVersion()) +
                                   " (any stage command, e.g. `moeforge status`, migrates it; serve only reads)");
    }
    MF_ASSIGN_OR_RETURN(int64_t version, (*d)->QueryInt("PRAGMA data_version"));
    c->data_version_[d->get()] = version;
    c->free_[i < scan ? 0 : 1].push_back(std::move(d).value());
  }
  return c;
}

Catalog::~Catalog() = default;

Catalog::Lease Catalog::Acquire(Lane lane) {
  const int pool = lane == Lane::kScan ? 0 : 1;
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !free_[pool].empty(); });
  auto d = std::move(free_[pool].back());
  free_[pool].pop_back();
  return Lease(this, pool, std::move(d));
}

Result<uint64_t> Catalog::Generation(db::Database& d) {
  MF_ASSIGN_OR_RETURN(int64_t v, d.QueryInt("PRAGMA data_version"));
  std::lock_guard<std::mutex> lock(cache_mu_);
  int64_t& seen = data_version_[&d];
  if (seen != v) {
    seen = v;
    ++generation_;
  }
  return generation_;
}

Result<nlohmann::json> Catalog::Cached(const std::string& key, uint64_t generation,
                                       const std::function<Result<nlohmann::json>()>& compute) {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.first == generation_ && generation == generation_) return it->second.second;
  }
  MF_ASSIGN_OR_RETURN(nlohmann::json value, compute());
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_.size() >= 256) cache_.clear();  // a bound, not an LRU: recomputing is only slow
  cache_[key] = {generation, value};
  return value;
}

Result<std::string> Catalog::InsideWorkspace(const std::string& rel) const {
  if (rel.empty()) return Status::NotFound("no file recorded");
  // Lexically, not through symlinks: a workspace may keep blobs/ or crops/ on another disk.
  fs::path r = fs::path(rel);
  fs::path root = fs::path(ws_.root()).lexically_normal();
  fs::path p = (root / r).lexically_normal();
  auto rel_back = p.lexically_relative(root);
  if (r.is_absolute() || rel_back.empty() || *rel_back.begin() == "..")
    return Status::InvalidArgument("the database names a file outside the workspace: " + rel);
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return Status::NotFound("missing file " + rel);
  return p.string();
}

Status Catalog::CheckRun(const std::string& run) {
  if (run.empty()) return Status::InvalidArgument("missing parameter 'run'");
  if (run.size() > 200 || run == "." || run == ".." || run.find_first_of("/\\") != std::string::npos ||
      run.find('\0') != std::string::npos)
    return Status::InvalidArgument("bad run name '" + run + "'");
  auto d = Acquire(Lane::kLookup);
  MF_ASSIGN_OR_RETURN(db::Stmt * st, d->Cached("SELECT 1 FROM runs WHERE name = ?"));
  st->Bind(1, run);
  MF_ASSIGN_OR_RETURN(bool row, st->Step());
  st->Reset();
  if (!row) return Status::NotFound("no run named '" + run + "'");
  return Status::Ok();
}

Result<nlohmann::json> Catalog::Faces(const FaceQuery& q) {
  if (q.limit < 1) return Status::InvalidArgument("limit must be >= 1");
  auto d = Acquire(Lane::kScan);
  MF_ASSIGN_OR_RETURN(db::FaceSelection sel, db::SelectFaces(*d, q.view, q.filter));
  // The sort key, an SQL expression over v_dataset (from this table only) and its values.
  std::string key;
  std::vector<db::SqlValue> key_params;
  std::string face_key;  // the same key over `faces c`, when it is a column of faces
  if (q.sort == "face_id") key = "v_dataset.face_id";
  else if (q.sort == "score") key = "coalesce(v_dataset.score, -1)", face_key = "coalesce(c.score, -1)";
  else if (q.sort == "sharpness") key = "coalesce(v_dataset.sharpness, -1)", face_key = "coalesce(c.sharpness, -1)";
  else if (q.sort == "mono_score") key = "coalesce(v_dataset.mono_score, -1)", face_key = "coalesce(c.mono_score, -1)";
  else if (q.sort == "face_size") key = "min(v_dataset.w, v_dataset.h)", face_key = "min(c.w, c.h)";
  else if (q.sort.rfind("tag:", 0) == 0) {
    std::string tag = q.sort.substr(4);
    if (!sel.has_tagger) return Status::InvalidArgument("sort " + q.sort + ": no tagger has run in this workspace");
    int c = sel.tagger.schema.IndexOf(tag);
    if (c < 0) return Status::InvalidArgument("sort " + q.sort + ": '" + tag + "' is not a tag of " + sel.tagger.name);
    key = "coalesce((SELECT ft.score FROM face_tags ft WHERE ft.tagger_id = ? AND ft.face_id = v_dataset.face_id "
          "AND ft.tag = ?), -1)";
    key_params = {sel.tagger.id, sel.tagger.schema.tags()[static_cast<size_t>(c)]};
  } else {
    return Status::InvalidArgument("unknown sort '" + q.sort +
                                   "' (face_id, score, sharpness, mono_score, face_size, tag:NAME)");
  }
  double after_k = 0;
  int64_t after_id = 0;
  const bool paged = !q.after.empty();
  if (paged) MF_RETURN_IF_ERROR(ParseCursor(q.after, &after_k, &after_id));
  const char* cmp = q.desc ? "<" : ">";
  const char* dir = q.desc ? " DESC" : "";
  std::string cols =
      "v_dataset.face_id, v_dataset.post_id, v_dataset.w, v_dataset.h, v_dataset.score, v_dataset.sharpness, "
      "v_dataset.mono_score, v_dataset.rating";
  auto row_json = [](const db::Stmt& st) {
    const int64_t id = st.Int(0);
    nlohmann::json f = {{"id", id},
                        {"w", st.Double(2)},
                        {"h", st.Double(3)},
                        {"crop", "/files/crop/" + std::to_string(id)},
                        {"k", st.Double(8)}};
    f["post_id"] = st.IsNull(1) ? nlohmann::json(nullptr) : nlohmann::json(st.Int(1));
    f["score"] = st.IsNull(4) ? nlohmann::json(nullptr) : nlohmann::json(st.Double(4));
    f["sharpness"] = st.IsNull(5) ? nlohmann::json(nullptr) : nlohmann::json(st.Double(5));
    f["mono_score"] = st.IsNull(6) ? nlohmann::json(nullptr) : nlohmann::json(st.Double(6));
    f["rating"] = st.Text(7);
    return f;
  };
  std::vector<nlohmann::json> rows;  // up to limit + 1, in page order
  const size_t want = static_cast<size_t>(q.limit) + 1;
  if (!face_key.empty()) {
    // A key that is a column of `faces`: candidates in key order from `faces` alone (a
    // narrow top-N sort, no view), then those the selection passes, in that order, round
    // after round until the page is full. The view's joins run for the candidates only
    // (370 ms -> a few ms a page at 50k faces for a filter most faces pass).
    const int batch = std::max(1024, 4 * q.limit + 4);
    double ck = after_k;
    int64_t cid = after_id;
    bool from_cursor = paged;
    while (rows.size() < want) {
      std::string cand_sql = "SELECT c.id, " + face_key + " FROM faces c WHERE c.detector_id = ?";
      if (from_cursor) cand_sql += " AND (" + face_key + ", c.id) " + cmp + " (?, ?)";
      cand_sql += std::string(" ORDER BY 2") + dir + ", 1" + dir + " LIMIT ?";
      MF_ASSIGN_OR_RETURN(db::Stmt cand, d->Prepare(cand_sql));
      int b = 1;
      cand.Bind(b++, sel.detector_id);
      if (from_cursor) {
        cand.Bind(b++, ck);
        cand.Bind(b++, cid);
      }
      cand.Bind(b++, batch);
      std::vector<std::pair<int64_t, double>> cands;
      while (true) {
        MF_ASSIGN_OR_RETURN(bool row, cand.Step());
        if (!row) break;
        cands.emplace_back(cand.Int(0), cand.Double(1));
      }
      if (cands.empty()) break;
      std::string check = "SELECT " + cols + ", " + key + " AS k FROM v_dataset WHERE " + sel.where +
                          " AND v_dataset.face_id IN (";
      for (size_t i = 0; i < cands.size(); ++i) check += i ? ",?" : "?";
      check += ")";
      MF_ASSIGN_OR_RETURN(db::Stmt st, d->Prepare(check));
      std::vector<db::SqlValue> params = key_params;
      params.insert(params.end(), sel.params.begin(), sel.params.end());
      for (const auto& c : cands) params.push_back(c.first);
      db::BindParams(st, 1, params);
      std::map<int64_t, nlohmann::json> passed;
      while (true) {
        MF_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        passed[st.Int(0)] = row_json(st);
      }
      for (const auto& c : cands) {
        auto it = passed.find(c.first);
        if (it == passed.end()) continue;
        rows.push_back(std::move(it->second));
        if (rows.size() == want) break;
      }
      if (static_cast<int>(cands.size()) < batch) break;
      ck = cands.back().second;
      cid = cands.back().first;
      from_cursor = true;
    }
  } else {
    std::string sql;
    std::vector<db::SqlValue> params;
    if (q.sort == "face_id") {
      // Keyset on the rowid, walked in order: CROSS JOIN keeps SQLite from starting at the
      // detector's index and sorting every face (300 ms instead of 3 ms at 50k faces); it
      // seeks to the cursor and stops after one page.
      sql = "SELECT " + cols + ", v_dataset.face_id FROM faces studio_f CROSS JOIN v_dataset ON v_dataset.face_id = "
            "studio_f.id WHERE " + sel.where;
      params = sel.params;
      if (paged) {
        sql += std::string(" AND studio_f.id ") + cmp + " ?";
        params.push_back(after_id);
      }
      sql += std::string(" ORDER BY studio_f.id") + dir + " LIMIT ?";
    } else {
      sql = "SELECT * FROM (SELECT " + cols + ", " + key + " AS k FROM v_dataset WHERE " + sel.where + ")";
      params = key_params;
      params.insert(params.end(), sel.params.begin(), sel.params.end());
      if (paged) {
        sql += std::string(" WHERE (k, face_id) ") + cmp + " (?, ?)";
        params.push_back(after_k);
        params.push_back(after_id);
      }
      sql += std::string(" ORDER BY k") + dir + ", face_id" + dir + " LIMIT ?";
    }
    params.push_back(static_cast<int64_t>(want));
    MF_ASSIGN_OR_RETURN(db::Stmt st, d->Prepare(sql));
    db::BindParams(st, 1, params);
    while (true) {
      MF_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      rows.push_back(row_json(st));
    }
  }
  std::string next;
  if (rows.size() == want) {
    rows.pop_back();
    next = FormatCursor(rows.back()["k"].get<double>(), rows.back()["id"].get<int64_t>());
  }
  nlohmann::json faces = nlohmann::json::array();
  std::vector<int64_t> ids;
  for (auto& r : rows) {
    ids.push_back(r["id"].get<int64_t>());
    faces.push_back(std::move(r));
  }
  if (sel.has_tagger) {
    std::map<int64_t, FaceTags> tags;
    MF_RETURN_IF_ERROR(LoadTags(*d, sel.tagger, ids, &tags));
    for (size_t i = 0; i < ids.size(); ++i) faces[i]["tags"] = TagsJson(sel.tagger, tags[ids[i]]);
  }
  return nlohmann::json{{"faces", faces},
                        {"next", next.empty() ? nlohmann::json(nullptr) : nlohmann::json(next)},
                        {"tagger", sel.has_tagger ? sel.tagger.name : ""},
                        {"sort", q.sort},
                        {"desc", q.desc}};
}

Result<nlohmann::json> Catalog::Histogram(const std::string& view, const std::string& filter) {
  auto d = Acquire(Lane::kScan);
  MF_ASSIGN_OR_RETURN(uint64_t generation, Generation(*d));
  // The selection compiles (or fails) before the cache is asked: a bad filter is always an error.
  MF_ASSIGN_OR_RETURN(db::FaceSelection sel, db::SelectFaces(*d, view, filter));
  return Cached(std::string("histogram") + '\0' + view + '\0' + filter, generation, [&]() {
    return HistogramOf(*d, sel);
  });
}

Result<nlohmann::json> Catalog::HistogramOf(db::Database& db, const db::FaceSelection& sel) {
  db::Database* d = &db;
  MF_ASSIGN_OR_RETURN(db::Stmt count, d->Prepare("SELECT count(*) FROM v_dataset WHERE " + sel.where));
  db::BindParams(count, 1, sel.params);
  MF_ASSIGN_OR_RETURN(bool row, count.Step());
  nlohmann::json out = {{"total", row ? count.Int(0) : 0}, {"tags", nlohmann::json::object()}};
  if (!sel.has_tagger) {
    out["groups"] = nlohmann::json::array();
    return out;
  }
  out["tagger"] = sel.tagger.name;
  out["groups"] = SchemaGroupsJson(sel.tagger.schema);
  // A row without the tagger's decision (written before schema v2) counts at score >= 0.5.
  MF_ASSIGN_OR_RETURN(db::Stmt st, d->Prepare(
      "SELECT ft.tag, count(*) FROM face_tags ft WHERE ft.tagger_id = ? AND coalesce(ft.present, ft.score >= 0.5) "
      "AND ft.face_id IN (SELECT v_dataset.face_id FROM v_dataset WHERE " + sel.where + ") GROUP BY ft.tag"));
  st.Bind(1, sel.tagger.id);
  db::BindParams(st, 2, sel.params);
  while (true) {
    MF_ASSIGN_OR_RETURN(bool r, st.Step());
    if (!r) break;
    out["tags"][st.Text(0)] = st.Int(1);
  }
  return out;
}

Result<nlohmann::json> Catalog::Face(int64_t face_id) {
  auto d = Acquire(Lane::kLookup);
  MF_ASSIGN_OR_RETURN(db::Stmt f, d->Prepare(
      "SELECT f.id, f.image_sha256, f.x, f.y, f.w, f.h, f.score, f.detector_id, d.name, f.crop_size, f.sharpness, "
      "f.mono_score, f.pad_frac, coalesce(f.backend, ''), i.width, i.height FROM faces f "
      "JOIN detectors d ON d.id = f.detector_id LEFT JOIN images i ON i.sha256 = f.image_sha256 WHERE f.id = ?"));
  f.Bind(1, face_id);
  MF_ASSIGN_OR_RETURN(bool found, f.Step());
  if (!found) return Status::NotFound("no face " + std::to_string(face_id));
  auto num = [&](int c) { return f.IsNull(c) ? nlohmann::json(nullptr) : nlohmann::json(f.Double(c)); };
  const std::string sha = f.Text(1);
  const int64_t detector_id = f.Int(7);
  nlohmann::json out = {{"id", f.Int(0)},
                        {"image_sha256", sha},
                        {"box", {f.Double(2), f.Double(3), f.Double(4), f.Double(5)}},
                        {"score", num(6)},
                        {"detector", f.Text(8)},
                        {"crop_size", num(9)},
                        {"sharpness", num(10)},
                        {"mono_score", num(11)},
                        {"pad_frac", num(12)},
                        {"backend", f.Text(13)},
                        {"image_width", num(14)},
                        {"image_height", num(15)},
                        {"crop", "/files/crop/" + std::to_string(face_id)},
                        {"image", "/files/image/" + std::to_string(face_id)}};
  MF_ASSIGN_OR_RETURN(db::Stmt boxes, d->Prepare(
      "SELECT id, x, y, w, h, score FROM faces WHERE image_sha256 = ? AND detector_id = ? ORDER BY idx"));
  boxes.BindAll(sha, detector_id);
  out["boxes"] = nlohmann::json::array();
  while (true) {
    MF_ASSIGN_OR_RETURN(bool r, boxes.Step());
    if (!r) break;
    out["boxes"].push_back({{"id", boxes.Int(0)},
                            {"box", {boxes.Double(1), boxes.Double(2), boxes.Double(3), boxes.Double(4)}},
                            {"score", boxes.IsNull(5) ? nlohmann::json(nullptr) : nlohmann::json(boxes.Double(5))}});
  }
  MF_ASSIGN_OR_RETURN(db::Stmt posts, d->Prepare(
      "SELECT p.id, p.remote_id, coalesce(p.rating, ''), coalesce(s.kind, ''), coalesce(p.page_url, ''), "
      "(SELECT group_concat(tag, ' ') FROM (SELECT tag FROM source_tags WHERE post_id = p.id ORDER BY tag)) "
      "FROM posts p LEFT JOIN sources s ON s.id = p.source_id WHERE p.image_sha256 = ? ORDER BY p.id LIMIT 20"));
  posts.Bind(1, sha);
  out["posts"] = nlohmann::json::array();
  while (true) {
    MF_ASSIGN_OR_RETURN(bool r, posts.Step());
    if (!r) break;
    out["posts"].push_back({{"id", posts.Int(0)},
                            {"remote_id", posts.Text(1)},
                            {"rating", posts.Text(2)},
                            {"source", posts.Text(3)},
                            {"page_url", posts.Text(4)},
                            {"source_tags", posts.IsNull(5) ? std::string() : posts.Text(5)}});
  }
  auto tagger = db::FindTagger(*d, "");
  if (tagger.ok()) {
    std::map<int64_t, FaceTags> tags;
    MF_RETURN_IF_ERROR(LoadTags(*d, *tagger, {face_id}, &tags));
    out["tagger"] = tagger->name;
    out["tags"] = TagsJson(*tagger, tags[face_id]);
  } else if (tagger.status().code() != Status::Code::kNotFound) {
    return tagger.status();
  }
  return out;
}

Result<nlohmann::json> Catalog::Views() {
  auto d = Acquire(Lane::kScan);
  MF_ASSIGN_OR_RETURN(uint64_t generation, Generation(*d));
  return Cached("views", generation, [&]() { return ViewsOf(*d); });
}

Result<nlohmann::json> Catalog::ViewsOf(db::Database& db) {
  db::Database* d = &db;
  MF_ASSIGN_OR_RETURN(auto views, db::ListViews(*d));
  nlohmann::json out = nlohmann::json::array();
  for (const auto& v : views) {
    nlohmann::json j = {{"name", v.name}, {"filter", v.filter}, {"detector", v.detector}, {"tagger", v.tagger}};
    auto c = db::CountView(*d, v.name);
    if (c.ok()) {
      j["selected"] = c->selected;
      j["of"] = c->of;
    } else {
      j["error"] = c.status().message();
    }
    out.push_back(std::move(j));
  }
  return out;
}

Result<nlohmann::json> Catalog::Runs() {
  auto d = Acquire(Lane::kLookup);
  MF_ASSIGN_OR_RETURN(db::Stmt * q, d->Cached(
      "SELECT name, state, step, config_json, dir, coalesce(view, ''), coalesce(tagger, ''), created_at, updated_at "
      "FROM runs ORDER BY updated_at DESC, id DESC"));
  nlohmann::json out = nlohmann::json::array();
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    nlohmann::json r = {{"name", q->Text(0)},     {"state", q->Text(1)},      {"step", q->Int(2)},
                        {"view", q->Text(5)},     {"tagger", q->Text(6)},     {"created_at", q->Text(7)},
                        {"updated_at", q->Text(8)}, {"resolution", 0}};
    auto cfg = nlohmann::json::parse(q->Text(3), nullptr, false);
    if (cfg.is_object() && cfg.contains("gan") && cfg["gan"].is_object())
      r["resolution"] = cfg["gan"].value("resolution", 0);
    if (cfg.is_object() && cfg.contains("options") && cfg["options"].is_object())
      r["steps"] = cfg["options"].value("steps", 0);
    std::error_code ec;
    r["has_checkpoint"] = fs::exists(ws_.Abs(q->Text(4)) + "/checkpoint.pt", ec);
    out.push_back(std::move(r));
  }
  q->Reset();
  return out;
}

Result<nlohmann::json> Catalog::Metrics(const std::string& run, int64_t since_step, int max_points) {
  auto d = Acquire(Lane::kLookup);
  MF_ASSIGN_OR_RETURN(db::Stmt * r, d->Cached("SELECT id, state, step FROM runs WHERE name = ?"));
  r->Bind(1, run);
  MF_ASSIGN_OR_RETURN(bool found, r->Step());
  if (!found) {
    r->Reset();
    return Status::NotFound("no run named '" + run + "'");
  }
  const int64_t run_id = r->Int(0);
  nlohmann::json out = {{"run", run}, {"state", r->Text(1)}, {"step", r->Int(2)}};
  r->Reset();
  MF_ASSIGN_OR_RETURN(db::Stmt * m, d->Cached(
      "SELECT key, step, value FROM metrics WHERE run_id = ? AND step > ? ORDER BY key, step"));
  m->BindAll(run_id, since_step);
  std::map<std::string, std::vector<std::pair<int64_t, double>>> series;
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, m->Step());
    if (!row) break;
    series[m->Text(0)].emplace_back(m->Int(1), m->Double(2));
  }
  m->Reset();
  nlohmann::json metrics = nlohmann::json::object();
  for (auto& [k, pts] : series) {
    nlohmann::json arr = nlohmann::json::array();
    const size_t n = pts.size(), keep = static_cast<size_t>(std::max(2, max_points));
    for (size_t i = 0; i < n; ++i) {
      // Evenly thinned to `keep` points; the last always kept (it is what "live" shows).
      if (n > keep && i + 1 != n && (i * keep) / n == ((i + 1) * keep) / n) continue;
      arr.push_back({pts[i].first, pts[i].second});
    }
    metrics[k] = std::move(arr);
  }
  out["metrics"] = std::move(metrics);
  return out;
}

namespace {
// Steps from file names PREFIX<digits>SUFFIX in `dir`, ascending.
std::vector<int64_t> StepsIn(const std::string& dir, const std::string& prefix, const std::string& suffix) {
  std::vector<int64_t> steps;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string n = it->path().filename().string();
    if (n.size() <= prefix.size() + suffix.size() || n.compare(0, prefix.size(), prefix) != 0 ||
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    std::string digits = n.substr(prefix.size(), n.size() - prefix.size() - suffix.size());
    if (digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    steps.push_back(std::stoll(digits));
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}
}  // namespace

Result<nlohmann::json> Catalog::RunFiles(const std::string& run) {
  MF_RETURN_IF_ERROR(CheckRun(run));
  const std::string dir = ws_.runs_dir() + "/" + run;
  nlohmann::json out = {{"run", run},
                        {"samples", StepsIn(dir + "/samples", "step_", ".png")},
                        {"snapshots", StepsIn(dir + "/snapshots", "g_", ".pt")},
                        {"eval", nullptr}};
  std::error_code ec;
  const std::string eval = dir + "/eval.json";
  if (fs::is_regular_file(eval, ec) && fs::file_size(eval, ec) < (1 << 20)) {
    auto text = ReadFile(eval);
    if (text.ok()) {
      auto j = nlohmann::json::parse(*text, nullptr, false);
      out["eval"] = j.is_discarded() ? nlohmann::json{{"error", "eval.json does not parse"}} : j;
    }
  }
  return out;
}

Result<std::string> Catalog::CropPath(int64_t face_id) {
  std::string rel;
  {
    auto d = Acquire(Lane::kLookup);
    MF_ASSIGN_OR_RETURN(db::Stmt * st, d->Cached("SELECT coalesce(crop_path, '') FROM faces WHERE id = ?"));
    st->Bind(1, face_id);
    MF_ASSIGN_OR_RETURN(bool row, st->Step());
    if (row) rel = st->Text(0);
    st->Reset();
    if (!row) return Status::NotFound("no face " + std::to_string(face_id));
  }
  return InsideWorkspace(rel);
}

Result<std::string> Catalog::ImagePath(int64_t face_id, std::vector<FaceBox>* boxes) {
  std::string rel;
  {
    auto d = Acquire(Lane::kLookup);
    MF_ASSIGN_OR_RETURN(db::Stmt st, d->Prepare(
        "SELECT coalesce(i.blob_path, ''), g.id, g.x, g.y, g.w, g.h FROM faces f "
        "JOIN images i ON i.sha256 = f.image_sha256 "
        "JOIN faces g ON g.image_sha256 = f.image_sha256 AND g.detector_id = f.detector_id "
        "WHERE f.id = ? ORDER BY g.idx"));
    st.Bind(1, face_id);
    while (true) {
      MF_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      rel = st.Text(0);
      boxes->push_back({st.Int(1), st.Double(2), st.Double(3), st.Double(4), st.Double(5)});
    }
    if (boxes->empty()) return Status::NotFound("no face " + std::to_string(face_id) + " with a stored image");
  }
  if (rel.empty()) return Status::NotFound("the image of face " + std::to_string(face_id) + " was not stored");
  return InsideWorkspace(rel);
}

Result<std::string> Catalog::SamplePath(const std::string& run, int64_t step) {
  MF_RETURN_IF_ERROR(CheckRun(run));
  char name[64];
  std::snprintf(name, sizeof name, "/samples/step_%06lld.png", static_cast<long long>(step));
  return InsideWorkspace("runs/" + run + name);
}

}  // namespace moeforge::studio
