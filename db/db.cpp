#include "db/db.h"
#include "core/process.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace moeforge::db {

namespace {

// An SQLite failure as a Status that names the database file, with what to do for the
// faults a user can fix: a full disk, a read-only file or folder, a damaged file.
Status SqliteError(sqlite3* db, int rc, const std::string& detail) {
  const char* file = db ? sqlite3_db_filename(db, "main") : nullptr;
  std::string where = file && *file ? file : "database";
  std::string msg = "sqlite: " + where + ": " + detail;
  // The operating system's reason, when SQLite's own message hides it ("unable to open
  // database file" on a read-only file system).
  if (int e = db ? sqlite3_system_errno(db) : 0; e != 0 && (rc & 0xff) != SQLITE_CORRUPT)
    msg += " [" + std::string(std::strerror(e)) + "]";
  int os_errno = db ? sqlite3_system_errno(db) : 0;
  if (os_errno == ENOSPC) rc = SQLITE_FULL;  // SQLite reports some ENOSPC as a plain I/O error
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return Status::IoError(msg + ". The disk holding " + where +
                             " is full: free space and run again (committed work is kept)");
    case SQLITE_READONLY:
      return Status::IoError(msg + ". " + where + " or its folder is read-only: make the workspace writable");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corrupt(msg + ". " + where +
                             " is damaged: restore it from a backup (sqlite3's .recover may save part of it)");
    default:
      return Status::IoError(msg);
  }
}

// Statement journals in memory up to 16 MiB (SQLite's default spills at 64 KiB). A
// multi-row statement inside a batch (a post's tags in one INSERT, with foreign keys on)
// journals every page it touches that the batch already dirtied, some 20-40 pages; at
// the default those went to a file in /var/tmp, one pwrite per page and per page
// number: two thirds of a crawl's write syscalls. A statement larger than the threshold
// (a cascading delete of a huge workspace) still spills. Process-wide, and only possible
// before SQLite initialises: the first Open sets it.
void ConfigureSqliteOnce() {
  static const bool configured = [] {
    return sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, 16 << 20) == SQLITE_OK;
  }();
  (void)configured;
}

}  // namespace


Stmt::~Stmt() {
  if (s_ != nullptr) sqlite3_finalize(s_);
}

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    if (s_ != nullptr) sqlite3_finalize(s_);
    s_ = o.s_;
    o.s_ = nullptr;
  }
  return *this;
}

Stmt& Stmt::Bind(int i, int64_t v) {
  sqlite3_bind_int64(s_, i, v);
  return *this;
}
Stmt& Stmt::Bind(int i, double v) {
  sqlite3_bind_double(s_, i, v);
  return *this;
}
Stmt& Stmt::Bind(int i, const std::string& v) {
  sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::Bind(int i, const char* v) {
  if (v == nullptr) return Bind(i, nullptr);
  sqlite3_bind_text(s_, i, v, -1, SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::Bind(int i, std::nullptr_t) {
  sqlite3_bind_null(s_, i);
  return *this;
}
Stmt& Stmt::BindBlob(int i, const void* data, size_t n) {
  sqlite3_bind_blob(s_, i, data, static_cast<int>(n), SQLITE_TRANSIENT);
  return *this;
}

Result<bool> Stmt::Step() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3* db = sqlite3_db_handle(s_);
  std::string msg = std::string(sqlite3_errmsg(db)) + " (in: " + sqlite3_sql(s_) + ")";
  sqlite3_reset(s_);
  return SqliteError(db, rc, msg);
}

Status Stmt::Run() {
  while (true) {
    auto r = Step();
    if (!r.ok()) return r.status();
    if (!*r) break;
  }
  Reset();
  return Status::Ok();
}

void Stmt::Reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}

std::string Stmt::Text(int col) const {
  const unsigned char* t = sqlite3_column_text(s_, col);
  if (t == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(t), static_cast<size_t>(sqlite3_column_bytes(s_, col)));
}

std::string Stmt::Blob(int col) const {
  const void* b = sqlite3_column_blob(s_, col);
  if (b == nullptr) return {};
  return std::string(static_cast<const char*>(b), static_cast<size_t>(sqlite3_column_bytes(s_, col)));
}

Result<std::unique_ptr<Database>> Database::Open(const std::string& path, const OpenOptions& opts) {
  if (!opts.create && !std::filesystem::exists(path)) return Status::NotFound("no database at " + path);
  // SQLite reports a read-only file or folder as "unable to open database file" (the -wal
  // and -shm files beside it cannot be made): say what is wrong, and where.
  if (!opts.read_only && std::filesystem::exists(path)) {
    std::string dir = std::filesystem::path(path).parent_path().string();
    for (const std::string& p : {path, dir.empty() ? std::string(".") : dir})
      if (::access(p.c_str(), W_OK) != 0)
        return Status::IoError("cannot write " + p + ": " + std::strerror(errno) +
                               " (moeforge writes to its workspace: make it writable)");
  }
  ConfigureSqliteOnce();
  int flags = SQLITE_OPEN_NOMUTEX;
  flags |= opts.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (opts.create && !opts.read_only) flags |= SQLITE_OPEN_CREATE;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : "out of memory";
    sqlite3_close(raw);
    return Status::IoError("cannot open database " + path + ": " + msg);
  }
  std::unique_ptr<Database> db(new Database(raw, path));
  sqlite3_busy_timeout(raw, opts.busy_timeout_ms);
  sqlite3_extended_result_codes(raw, 1);
  // journal_mode=WAL persists in the file; setting it needs a write lock the first
  // time, which busy_timeout covers.
  if (!opts.read_only) MF_RETURN_IF_ERROR(db->Exec("PRAGMA journal_mode=WAL"));
  MF_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys=ON"));
  MF_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=NORMAL"));
  return db;
}

Database::~Database() {
  cache_.clear();
  sqlite3_close_v2(db_);
}

Status Database::Error(const std::string& what) const {
  return SqliteError(db_, sqlite3_extended_errcode(db_), what + ": " + sqlite3_errmsg(db_));
}

Status Database::Exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return SqliteError(db_, rc, msg + " (in: " + sql.substr(0, 200) + ")");
  }
  return Status::Ok();
}

Result<Stmt> Database::Prepare(const std::string& sql) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &s, nullptr);
  if (rc != SQLITE_OK) return Error("prepare '" + sql.substr(0, 200) + "'");
  return Stmt(s);
}

Result<Stmt*> Database::Cached(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    auto s = Prepare(sql);
    if (!s.ok()) return s.status();
    it = cache_.emplace(sql, std::make_unique<Stmt>(std::move(s).value())).first;
  } else {
    it->second->Reset();
  }
  return it->second.get();
}

Status Database::Begin() { return Exec("BEGIN IMMEDIATE"); }
Status Database::Commit() { return Exec("COMMIT"); }
Status Database::Rollback() {
  if (sqlite3_get_autocommit(db_)) return Status::Ok();
  return Exec("ROLLBACK");
}

Status Database::Transaction(const std::function<Status()>& fn) {
  MF_RETURN_IF_ERROR(Begin());
  Status s = fn();
  if (!s.ok()) {
    Rollback();
    return s;
  }
  s = Commit();
  if (!s.ok()) Rollback();
  return s;
}

Result<int64_t> Database::QueryInt(const std::string& sql) {
  MF_ASSIGN_OR_RETURN(Stmt st, Prepare(sql));
  MF_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return Status::NotFound("query returned no row: " + sql);
  return st.Int(0);
}

Result<std::unique_ptr<Database>> OpenWorkspace(const Workspace& ws, bool create) {
  if (create) {
    MF_RETURN_IF_ERROR(ws.CreateDirs());
  } else {
    MF_RETURN_IF_ERROR(ws.CheckExists());
  }
  OpenOptions o;
  o.create = create;
  auto db = Database::Open(ws.db_path(), o);
  if (!db.ok()) return db.status();
  MF_RETURN_IF_ERROR(Migrate(**db));
  return db;
}

// ---- BatchWriter ----

BatchWriter::BatchWriter(Database& db, Options opts) : db_(db), opts_(opts) {
  thread_ = std::thread([this] { Loop(); });
}

BatchWriter::~BatchWriter() {
  Flush();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Status BatchWriter::Submit(Op op) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!error_.ok()) return error_;
  queue_.push_back(std::move(op));
  ++submitted_;
  if (static_cast<int>(queue_.size()) >= opts_.max_ops) cv_.notify_all();
  return Status::Ok();
}

Status BatchWriter::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  int64_t target = submitted_;
  flush_ = true;
  cv_.notify_all();
  done_cv_.wait(lock, [&] { return committed_ >= target || !error_.ok(); });
  return error_;
}

int64_t BatchWriter::committed_ops() const {
  std::lock_guard<std::mutex> lock(mu_);
  return committed_;
}

int64_t BatchWriter::committed_batches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return batches_;
}

void BatchWriter::Loop() {
  SetThreadName("mf-db-writer");
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    // Wait for a full batch, a flush request (committed_ < submitted_ and someone
    // waiting is signalled through cv_), the time limit, or stop.
    cv_.wait_for(lock, std::chrono::milliseconds(opts_.max_ms),
                 [&] { return stop_ || flush_ || static_cast<int>(queue_.size()) >= opts_.max_ops; });
    if (queue_.empty()) {
      flush_ = false;
      if (stop_) return;
      continue;
    }
    std::deque<Op> batch;
    while (!queue_.empty() && static_cast<int>(batch.size()) < opts_.max_ops) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    bool failed = !error_.ok();
    lock.unlock();
    Status s;
    if (!failed) {
      s = db_.Transaction([&]() -> Status {
        for (auto& op : batch) MF_RETURN_IF_ERROR(op(db_));
        return Status::Ok();
      });
    }
    lock.lock();
    if (!s.ok() && error_.ok()) error_ = s;
    committed_ += static_cast<int64_t>(batch.size());
    ++batches_;
    done_cv_.notify_all();
  }
}

}  // namespace moeforge::db
