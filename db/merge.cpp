// Folding workspaces into one (see merge.h). The input database is ATTACHed to OUT's
// connection and each table copied by INSERT OR IGNORE ... SELECT, with row ids mapped
// through temporary tables keyed by each table's natural key.
#include "db/merge.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "db/db.h"

namespace moeforge::db {

namespace {

namespace fs = std::filesystem;

struct FileCounts {
  int64_t linked = 0, copied = 0, present = 0;
};

// Places src at dst unless dst exists: a hard link, or a copy (in `tmp`, renamed into
// place), so a path that exists is always whole.
Status PlaceFile(const std::string& src, const std::string& dst, const std::string& tmp, bool copy, FileCounts& n) {
  std::error_code ec;
  if (fs::exists(dst, ec)) {
    ++n.present;
    return Status::Ok();
  }
  fs::create_directories(fs::path(dst).parent_path(), ec);
  if (!copy && ::link(src.c_str(), dst.c_str()) == 0) {
    ++n.linked;
    return Status::Ok();
  }
  if (!copy && errno == EEXIST) {
    ++n.present;
    return Status::Ok();
  }
  const std::string part = tmp + "/merge-part-" + std::to_string(::getpid());
  fs::copy_file(src, part, fs::copy_options::overwrite_existing, ec);
  if (ec) return Status::IoError("copying " + src + " to " + part + ": " + ec.message());
  int fd = ::open(part.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  fs::rename(part, dst, ec);
  if (ec) return Status::IoError("renaming " + part + ": " + ec.message());
  ++n.copied;
  return Status::Ok();
}

// A crop's path names its detector's row id (crops/d<ID>/...): rewritten to OUT's id.
std::string CropPathIn(const std::string& path, int64_t old_id, int64_t new_id) {
  const std::string prefix = "crops/d" + std::to_string(old_id) + "/";
  if (path.rfind(prefix, 0) != 0 || old_id == new_id) return path;
  return "crops/d" + std::to_string(new_id) + "/" + path.substr(prefix.size());
}
// The same rewrite in SQL, of column `col` with the old detector id `old`.
std::string CropPathSql(const std::string& col, const std::string& old) {
  return fmt::format(
      "CASE WHEN {0} LIKE 'crops/d' || {1} || '/%' THEN 'crops/d' || (SELECT new FROM temp.detmap WHERE old = {1}) "
      "|| substr({0}, length('crops/d' || {1}) + 1) ELSE {0} END",
      col, old);
}

Result<std::vector<std::string>> Columns(Database& db, const std::string& schema, const std::string& table) {
  MF_ASSIGN_OR_RETURN(Stmt q, db.Prepare("SELECT name FROM pragma_table_info(?1, ?2)"));
  q.Bind(1, table).Bind(2, schema);
  std::vector<std::string> cols;
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    cols.push_back(q.Text(0));
  }
  return cols;
}

// INSERT OR IGNORE INTO main.T(columns both sides have) SELECT ... FROM src.T t, with
// some columns computed (`exprs`, over alias t) and some left out (`skip`: row ids).
Status CopyTable(Database& db, const std::string& table, const std::map<std::string, std::string>& exprs,
                 const std::set<std::string>& skip, const std::string& order = "") {
  MF_ASSIGN_OR_RETURN(auto mine, Columns(db, "main", table));
  MF_ASSIGN_OR_RETURN(auto theirs, Columns(db, "src", table));
  std::set<std::string> have(theirs.begin(), theirs.end());
  std::string cols, sel;
  for (const auto& c : mine) {
    if (skip.count(c) || !have.count(c)) continue;
    auto e = exprs.find(c);
    cols += (cols.empty() ? "" : ", ") + c;
    sel += (sel.empty() ? "" : ", ") + (e != exprs.end() ? e->second : "t." + c);
  }
  // Rows keep their input order (new row ids follow it); WITHOUT ROWID tables have none.
  return db.Exec(fmt::format("INSERT OR IGNORE INTO main.{0}({1}) SELECT {2} FROM src.{0} t{3}", table, cols, sel,
                             order.empty() ? "" : " ORDER BY " + order))
      .WithContext("merging table " + table);
}

const char* kCounted[] = {"sources", "images", "posts", "source_tags", "detections_done",
                          "faces",   "face_crops", "taggers", "face_tags"};

Result<std::map<std::string, int64_t>> Counts(Database& db) {
  std::map<std::string, int64_t> n;
  for (const char* t : kCounted) {
    MF_ASSIGN_OR_RETURN(n[t], db.QueryInt(std::string("SELECT count(*) FROM main.") + t));
  }
  return n;
}

// Detector (or tagger) ids of the input mapped to OUT's, inserting the missing ones.
Result<std::map<int64_t, int64_t>> MapByNaturalKey(Database& out, const std::string& table) {
  MF_RETURN_IF_ERROR(CopyTable(out, table, {}, {"id"}, "t.id"));
  MF_ASSIGN_OR_RETURN(Stmt q, out.Prepare(fmt::format(
                                  "SELECT s.id, m.id FROM src.{0} s JOIN main.{0} m ON m.name = s.name AND "
                                  "m.model_sha256 = s.model_sha256 AND m.params_json = s.params_json",
                                  table)));
  std::map<int64_t, int64_t> map;
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    map[q.Int(0)] = q.Int(1);
  }
  return map;
}

// Every file the input's rows name, with the path it gets in OUT.
Result<std::vector<std::pair<std::string, std::string>>> FilesOf(Database& out,
                                                                 const std::map<int64_t, int64_t>& detectors) {
  std::vector<std::pair<std::string, std::string>> files;
  {
    MF_ASSIGN_OR_RETURN(Stmt q, out.Prepare("SELECT blob_path FROM src.images WHERE blob_path IS NOT NULL"));
    while (true) {
      MF_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      files.emplace_back(q.Text(0), q.Text(0));
    }
  }
  MF_ASSIGN_OR_RETURN(Stmt q, out.Prepare(
      "SELECT detector_id, crop_path FROM src.faces WHERE crop_path IS NOT NULL UNION "
      "SELECT f.detector_id, c.path FROM src.face_crops c JOIN src.faces f ON f.id = c.face_id"));
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    auto d = detectors.find(q.Int(0));
    files.emplace_back(q.Text(1), d == detectors.end() ? q.Text(1) : CropPathIn(q.Text(1), d->first, d->second));
  }
  return files;
}

// The rows of one input, in one transaction (src attached).
Status MergeRows(Database& out) {
  const std::string post_is_second_copy =
      "(t.state = 'stored' AND EXISTS (SELECT 1 FROM main.posts q WHERE q.image_sha256 = t.image_sha256 "
      "AND q.state = 'stored'))";
  MF_RETURN_IF_ERROR(out.Exec(
      "DROP TABLE IF EXISTS temp.srcmap; DROP TABLE IF EXISTS temp.postmap; DROP TABLE IF EXISTS temp.facemap;"));
  MF_RETURN_IF_ERROR(CopyTable(out, "sources", {}, {"id"}, "t.id"));
  MF_RETURN_IF_ERROR(out.Exec(
      "CREATE TEMP TABLE srcmap(old INTEGER PRIMARY KEY, new INTEGER);"
      "INSERT INTO temp.srcmap SELECT s.id, m.id FROM src.sources s JOIN main.sources m ON m.kind = s.kind AND m.url = s.url;"));
  // Originals before the near duplicates that point at them.
  MF_RETURN_IF_ERROR(CopyTable(out, "images", {}, {}, "t.near_dup_of IS NOT NULL, t.rowid"));
  MF_RETURN_IF_ERROR(CopyTable(out, "posts",
                               {{"source_id", "(SELECT new FROM temp.srcmap WHERE old = t.source_id)"},
                                {"state", "CASE WHEN " + post_is_second_copy + " THEN 'duplicate' ELSE t.state END"},
                                {"dup_distance", "CASE WHEN " + post_is_second_copy + " THEN 0 ELSE t.dup_distance END"}},
                               {"id"}, "t.id"));
  MF_RETURN_IF_ERROR(out.Exec(
      "CREATE TEMP TABLE postmap(old INTEGER PRIMARY KEY, new INTEGER);"
      "INSERT INTO temp.postmap SELECT t.id, p.id FROM src.posts t JOIN temp.srcmap m ON m.old = t.source_id "
      "JOIN main.posts p ON p.source_id = m.new AND p.remote_id = t.remote_id;"));
  MF_RETURN_IF_ERROR(CopyTable(out, "source_tags", {{"post_id", "(SELECT new FROM temp.postmap WHERE old = t.post_id)"}}, {}));
  MF_RETURN_IF_ERROR(CopyTable(out, "frontier",
                               {{"source_id", "(SELECT new FROM temp.srcmap WHERE old = t.source_id)"},
                                {"post_id", "CASE WHEN t.post_id = 0 THEN 0 ELSE "
                                            "(SELECT new FROM temp.postmap WHERE old = t.post_id) END"}},
                               {"id"}, "t.id"));
  MF_RETURN_IF_ERROR(
      CopyTable(out, "crawl_cursors", {{"source_id", "(SELECT new FROM temp.srcmap WHERE old = t.source_id)"}}, {}));
  MF_RETURN_IF_ERROR(CopyTable(out, "robots_cache", {}, {}));
  // An image's detections and its faces together, as detect commits them.
  MF_RETURN_IF_ERROR(CopyTable(out, "detections_done",
                               {{"detector_id", "(SELECT new FROM temp.detmap WHERE old = t.detector_id)"}}, {}));
  MF_RETURN_IF_ERROR(CopyTable(out, "faces",
                               {{"detector_id", "(SELECT new FROM temp.detmap WHERE old = t.detector_id)"},
                                {"crop_path", CropPathSql("t.crop_path", "t.detector_id")}},
                               {"id"}, "t.id"));
  MF_RETURN_IF_ERROR(out.Exec(
      "CREATE TEMP TABLE facemap(old INTEGER PRIMARY KEY, new INTEGER);"
      "INSERT INTO temp.facemap SELECT t.id, f.id FROM src.faces t JOIN temp.detmap d ON d.old = t.detector_id "
      "JOIN main.faces f ON f.detector_id = d.new AND f.image_sha256 = t.image_sha256 AND f.idx = t.idx;"));
  MF_RETURN_IF_ERROR(CopyTable(out, "face_crops",
                               {{"face_id", "(SELECT new FROM temp.facemap WHERE old = t.face_id)"},
                                {"path", CropPathSql("t.path", "(SELECT detector_id FROM src.faces WHERE id = t.face_id)")}},
                               {}));
  MF_RETURN_IF_ERROR(CopyTable(out, "tagger_thresholds",
                               {{"tagger_id", "(SELECT new FROM temp.tagmap WHERE old = t.tagger_id)"}}, {}));
  MF_RETURN_IF_ERROR(CopyTable(out, "face_tags",
                               {{"tagger_id", "(SELECT new FROM temp.tagmap WHERE old = t.tagger_id)"},
                                {"face_id", "(SELECT new FROM temp.facemap WHERE old = t.face_id)"}},
                               {}));
  return Status::Ok();
}

Status SaveMap(Database& out, const std::string& name, const std::map<int64_t, int64_t>& m) {
  MF_RETURN_IF_ERROR(out.Exec("DROP TABLE IF EXISTS temp." + name + "; CREATE TEMP TABLE " + name +
                              "(old INTEGER PRIMARY KEY, new INTEGER);"));
  MF_ASSIGN_OR_RETURN(Stmt ins, out.Prepare("INSERT INTO temp." + name + " VALUES(?1, ?2)"));
  for (auto [a, b] : m) MF_RETURN_IF_ERROR(ins.BindAll(a, b).Run());
  return Status::Ok();
}

Status MergeOne(Database& out, const Workspace& ws_out, const Workspace& in, const MergeOptions& o, FileCounts& files) {
  {
    // Opening migrates the input to this schema, so its columns are the ones we know.
    MF_ASSIGN_OR_RETURN(auto in_db, OpenWorkspace(in));
  }
  {
    MF_ASSIGN_OR_RETURN(Stmt a, out.Prepare("ATTACH DATABASE ?1 AS src"));
    MF_RETURN_IF_ERROR(a.Bind(1, in.db_path()).Run());
  }
  Status s = [&]() -> Status {
    // Detectors and taggers first, in their own transaction (idempotent): crop paths
    // name OUT's detector ids.
    MF_RETURN_IF_ERROR(out.Begin());
    auto det = MapByNaturalKey(out, "detectors");
    auto tag = det.ok() ? MapByNaturalKey(out, "taggers") : Result<std::map<int64_t, int64_t>>(det.status());
    if (!tag.ok()) {
      out.Rollback();
      return tag.status();
    }
    MF_RETURN_IF_ERROR(out.Commit());
    // Every file before the rows that name it.
    MF_ASSIGN_OR_RETURN(auto paths, FilesOf(out, *det));
    for (const auto& [from, to] : paths) MF_RETURN_IF_ERROR(PlaceFile(in.Abs(from), ws_out.Abs(to), ws_out.tmp_dir(), o.copy, files));
    MF_RETURN_IF_ERROR(SaveMap(out, "detmap", *det));
    MF_RETURN_IF_ERROR(SaveMap(out, "tagmap", *tag));
    MF_RETURN_IF_ERROR(out.Begin());
    Status rows = MergeRows(out);
    if (!rows.ok()) {
      out.Rollback();
      return rows;
    }
    return out.Commit();
  }();
  Status detached = out.Exec("DETACH DATABASE src");
  MF_RETURN_IF_ERROR(s.WithContext("merging " + in.root()));
  return detached;
}

}  // namespace

Result<StageSummary> MergeWorkspaces(const Workspace& out, const std::vector<Workspace>& ins, const MergeOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  if (ins.empty()) return Status::InvalidArgument("merge: name at least one input workspace");
  std::error_code ec;
  for (const auto& in : ins) {
    MF_RETURN_IF_ERROR(in.CheckExists());
    if (fs::exists(out.root(), ec) && fs::equivalent(in.root(), out.root(), ec))
      return Status::InvalidArgument("merge: " + in.root() + " is the output workspace itself");
  }
  MF_RETURN_IF_ERROR(out.CreateDirs());
  fs::create_directories(out.tmp_dir(), ec);
  // One merge into OUT at a time; then the partial copies a killed one left are stale.
  const std::string lock_path = out.tmp_dir() + "/merge.lock";
  int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock < 0) return Status::IoError("cannot open " + lock_path);
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{lock};
  if (::flock(lock, LOCK_EX | LOCK_NB) != 0)
    return Status::InvalidArgument("another merge into " + out.root() + " is running (" + lock_path + " is locked)");
  for (const auto& e : fs::directory_iterator(out.tmp_dir(), ec))
    if (e.path().filename().string().rfind("merge-part-", 0) == 0) fs::remove(e.path(), ec);
  MF_ASSIGN_OR_RETURN(auto dbp, OpenWorkspace(out, /*create=*/true));
  Database& db = *dbp;
  MF_ASSIGN_OR_RETURN(auto before, Counts(db));
  nlohmann::json params = {{"inputs", nlohmann::json::array()}, {"copy", o.copy}};
  for (const auto& in : ins) params["inputs"].push_back(in.root());
  MF_ASSIGN_OR_RETURN(int64_t stage_id, BeginStageRun(db, "merge", params));
  FileCounts files;
  StageSummary s;
  s.stage = "merge";
  s.params = params;
  Status status;
  for (const auto& in : ins) {
    if (!(status = MergeOne(db, out, in, o, files)).ok()) break;
    ++s.done;
  }
  auto after = Counts(db);
  if (after.ok())
    for (const char* t : kCounted) s.extra[std::string(t) + "_added"] = (*after)[t] - before[t];
  s.extra["files_linked"] = files.linked;
  s.extra["files_copied"] = files.copied;
  s.extra["files_present"] = files.present;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!status.ok()) s.Fail("input", 1);
  Status fin = FinishStageRun(db, stage_id, s);
  MF_RETURN_IF_ERROR(status);
  MF_RETURN_IF_ERROR(fin);
  return s;
}

}  // namespace moeforge::db
