// The one database access layer (SQLite). Every connection runs in WAL mode with a
// busy_timeout and foreign keys on; writers take the lock up front (BEGIN IMMEDIATE)
// so two processes on one workspace wait for each other instead of failing with
// SQLITE_BUSY. Statements are prepared once and reused through Database::Cached().
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "core/workspace.h"

namespace moeforge::db {

// A prepared statement. Bind positions are 1-based, column indexes 0-based.
class Stmt {
 public:
  Stmt() = default;
  explicit Stmt(sqlite3_stmt* s) : s_(s) {}
  ~Stmt();
  Stmt(Stmt&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
  Stmt& operator=(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Bind(int i, int64_t v);
  Stmt& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Stmt& Bind(int i, double v);
  Stmt& Bind(int i, const std::string& v);
  Stmt& Bind(int i, const char* v);
  Stmt& Bind(int i, std::nullptr_t);
  Stmt& BindBlob(int i, const void* data, size_t n);
  // Binds every argument in order from position 1.
  template <typename... A>
  Stmt& BindAll(const A&... a) {
    int i = 1;
    (Bind(i++, a), ...);
    return *this;
  }

  // Advances: true when a row is ready, false when done.
  Result<bool> Step();
  // Steps to completion (for writes) and resets for reuse.
  Status Run();
  void Reset();

  int64_t Int(int col) const { return sqlite3_column_int64(s_, col); }
  double Double(int col) const { return sqlite3_column_double(s_, col); }
  std::string Text(int col) const;
  bool IsNull(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::string Blob(int col) const;
  sqlite3_stmt* raw() const { return s_; }

 private:
  sqlite3_stmt* s_ = nullptr;
};

struct OpenOptions {
  bool create = false;      // create the file if missing
  bool read_only = false;
  int busy_timeout_ms = 30000;
};

class Database {
 public:
  static Result<std::unique_ptr<Database>> Open(const std::string& path, const OpenOptions& opts = {});
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  Status Exec(const std::string& sql);
  Result<Stmt> Prepare(const std::string& sql);
  // A statement prepared once per connection and reset before it is returned. Valid
  // until the Database is destroyed. Not for use from two threads at once.
  Result<Stmt*> Cached(const std::string& sql);

  Status Begin();  // BEGIN IMMEDIATE: takes the write lock now, waits up to busy_timeout
  Status Commit();
  Status Rollback();
  // Runs `fn` inside BEGIN IMMEDIATE ... COMMIT; rolls back when it fails.
  Status Transaction(const std::function<Status()>& fn);

  int64_t LastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }
  int Changes() const { return sqlite3_changes(db_); }
  // Runs a query that yields one integer (count(*), user_version...).
  Result<int64_t> QueryInt(const std::string& sql);
  sqlite3* raw() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  Status Error(const std::string& what) const;
  sqlite3* db_;
  std::string path_;
  std::map<std::string, std::unique_ptr<Stmt>> cache_;
};

// The schema version this build writes (PRAGMA user_version).
int CurrentSchemaVersion();
// Brings the database to CurrentSchemaVersion(), one transaction per migration (the
// DDL and the user_version bump commit together). A no-op when already current.
// Refuses a database newer than this build.
Status Migrate(Database& db);

// Opens (and with `create`, creates) the workspace database and migrates it.
Result<std::unique_ptr<Database>> OpenWorkspace(const Workspace& ws, bool create = false);

// One writer for a stage: operations submitted from any thread run on a background
// thread that commits them in batches, one transaction per `max_ops` operations or
// `max_ms` milliseconds, whichever comes first. An operation is wholly inside one
// batch, so a kill leaves each operation either committed or absent. The first
// failure rolls back its batch and is kept: later Submit/Flush calls return it.
class BatchWriter {
 public:
  using Op = std::function<Status(Database&)>;
  struct Options {
    int max_ops = 256;
    int max_ms = 250;
  };
  // `db` must outlive the writer and must not be used by other threads meanwhile.
  BatchWriter(Database& db, Options opts);
  explicit BatchWriter(Database& db) : BatchWriter(db, Options{}) {}
  ~BatchWriter();  // flushes

  Status Submit(Op op);
  // Waits until everything submitted so far is committed.
  Status Flush();
  int64_t committed_ops() const;
  int64_t committed_batches() const;

 private:
  void Loop();
  Database& db_;
  Options opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;       // work arrived / stop
  std::condition_variable done_cv_;  // a batch committed
  std::deque<Op> queue_;
  int64_t submitted_ = 0;
  int64_t committed_ = 0;
  int64_t batches_ = 0;
  bool stop_ = false;
  bool flush_ = false;  // someone waits in Flush(): commit what is queued now
  Status error_;
  std::thread thread_;
};

}  // namespace moeforge::db
