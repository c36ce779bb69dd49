// The database layer's promises: migrations are idempotent, two processes share a
// workspace without SQLITE_BUSY failures, and a writer killed mid-batch leaves a sound
// database holding each batch wholly or not at all.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "db/dataset.h"
#include "db/db.h"
#include "db/stage_run.h"
#include "db/status.h"

namespace moeforge::db {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  std::string d = (fs::temp_directory_path() / ("moeforge_db_test_" + name + "_" + std::to_string(getpid()))).string();
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::unique_ptr<Database> MustOpen(const std::string& ws_dir, bool create = false) {
  auto db = OpenWorkspace(Workspace(ws_dir), create);
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  return std::move(db).value();
}

TEST(Migrate, FromEmptyThenReopenIsANoOp) {
  std::string ws = TempDir("migrate");
  {
    auto db = MustOpen(ws, true);
    EXPECT_EQ(*db->QueryInt("PRAGMA user_version"), CurrentSchemaVersion());
    EXPECT_EQ(*db->QueryInt("SELECT count(*) FROM sqlite_master WHERE type='view' AND name IN "
                            "('v_faces','v_face_tags','v_source_tags')"), 3);
  }
  auto schema_text = [&](Database& db) {
    auto st = db.Prepare("SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_master ORDER BY name)");
    EXPECT_TRUE(st.ok());
    EXPECT_TRUE(*st->Step());
    return st->Text(0);
  };
  std::string before;
  {
    auto db = MustOpen(ws);
    before = schema_text(*db);
    ASSERT_TRUE(db->Exec("INSERT INTO sources(kind, url) VALUES('dir', '/x')").ok());
  }
  auto db = MustOpen(ws);
  EXPECT_EQ(*db->QueryInt("PRAGMA user_version"), CurrentSchemaVersion());
  EXPECT_EQ(schema_text(*db), before);
  EXPECT_EQ(*db->QueryInt("SELECT count(*) FROM sources"), 1) << "re-open must keep data";
  auto mode = db->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(mode.ok());
  ASSERT_TRUE(*mode->Step());
  EXPECT_EQ(mode->Text(0), "wal");
  EXPECT_EQ(*db->QueryInt("PRAGMA foreign_keys"), 1);
}

TEST(Migrate, RefusesANewerDatabase) {
  std::string ws = TempDir("newer");
  { auto db = MustOpen(ws, true); ASSERT_TRUE(db->Exec("PRAGMA user_version = 99").ok()); }
  auto db = OpenWorkspace(Workspace(ws));
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("newer than this moeforge"), std::string::npos) << db.status().ToString();
}

TEST(Workspace, MissingWorkspaceIsAnActionableError) {
  auto db = OpenWorkspace(Workspace("/nonexistent/moeforge-ws"));
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().ExitCode(), 2);
  EXPECT_NE(db.status().message().find("moeforge init"), std::string::npos);
}

TEST(BatchWriter, CommitsEverythingInFewTransactions) {
  std::string ws = TempDir("batch");
  auto db = MustOpen(ws, true);
  ASSERT_TRUE(db->Exec("CREATE TABLE t(i INTEGER)").ok());
  {
    BatchWriter w(*db, {100, 1000});
    for (int i = 0; i < 1000; ++i)
      ASSERT_TRUE(w.Submit([i](Database& d) -> Status {
                     MF_ASSIGN_OR_RETURN(Stmt * st, d.Cached("INSERT INTO t(i) VALUES(?)"));
                     return st->Bind(1, i).Run();
                   }).ok());
    ASSERT_TRUE(w.Flush().ok());
    EXPECT_EQ(w.committed_ops(), 1000);
    EXPECT_LE(w.committed_batches(), 20);
  }
  EXPECT_EQ(*db->QueryInt("SELECT count(*) FROM t"), 1000);
}

TEST(BatchWriter, AFailingOpRollsBackItsBatchAndIsReported) {
  std::string ws = TempDir("batchfail");
  auto db = MustOpen(ws, true);
  ASSERT_TRUE(db->Exec("CREATE TABLE t(i INTEGER UNIQUE)").ok());
  BatchWriter w(*db, {1000, 10000});
  for (int i : {1, 2, 2, 3})
    w.Submit([i](Database& d) -> Status {
      MF_ASSIGN_OR_RETURN(Stmt * st, d.Cached("INSERT INTO t(i) VALUES(?)"));
      return st->Bind(1, i).Run();
    });
  Status s = w.Flush();
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(*db->QueryInt("SELECT count(*) FROM t"), 0) << "the batch must be all or nothing";
  EXPECT_FALSE(w.Submit([](Database&) { return Status::Ok(); }).ok()) << "the error is sticky";
}

// Child process body: write `items` items of `rows_per_item` rows, reading counts in
// between; exit 0 only if no call failed.
[[noreturn]] void WriterChild(const std::string& ws, int writer, int items, int rows_per_item) {
  auto db = OpenWorkspace(Workspace(ws));
  if (!db.ok()) _exit(10);
  {
    BatchWriter w(**db, {64, 20});
    for (int i = 0; i < items; ++i) {
      Status s = w.Submit([=](Database& d) -> Status {
        MF_ASSIGN_OR_RETURN(Stmt * st, d.Cached("INSERT INTO t(writer, item, k) VALUES(?,?,?)"));
        for (int k = 0; k < rows_per_item; ++k) MF_RETURN_IF_ERROR(st->BindAll(writer, i, k).Run());
        return Status::Ok();
      });
      if (!s.ok()) _exit(11);
    }
    if (!w.Flush().ok()) _exit(12);
  }
  // A second connection reading while the other process writes.
  auto reader = OpenWorkspace(Workspace(ws));
  if (!reader.ok() || !(*reader)->QueryInt("SELECT count(*) FROM t").ok()) _exit(13);
  _exit(0);
}

TEST(Concurrency, TwoProcessesWriteAndReadWithoutBusyErrors) {
  std::string ws = TempDir("two");
  { auto db = MustOpen(ws, true); ASSERT_TRUE(db->Exec("CREATE TABLE t(writer INT, item INT, k INT)").ok()); }
  // Enough items that the two writers' ~300 transactions each interleave.
  const int kItems = 20000;
  std::vector<pid_t> kids;
  for (int w = 0; w < 2; ++w) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) WriterChild(ws, w, kItems, 2);
    kids.push_back(pid);
  }
  // The parent reads all the while, as `moeforge status` would.
  auto db = MustOpen(ws);
  int reads = 0;
  std::vector<int> exit_status(kids.size(), -1);
  size_t running = kids.size();
  while (running > 0) {
    auto n = db->QueryInt("SELECT count(*) FROM t");
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    ++reads;
    for (size_t i = 0; i < kids.size(); ++i) {
      int status = 0;
      if (exit_status[i] == -1 && waitpid(kids[i], &status, WNOHANG) == kids[i]) {
        exit_status[i] = WIFEXITED(status) ? WEXITSTATUS(status) : 100;
        --running;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (int s : exit_status) EXPECT_EQ(s, 0) << "10 open, 11 submit, 12 flush (SQLITE_BUSY), 13 read, 100 crashed";
  EXPECT_EQ(*db->QueryInt("SELECT count(*) FROM t"), 2 * kItems * 2);
  EXPECT_GT(reads, 1);
}

TEST(Crash, SigkillMidBatchLeavesEachBatchWholeOrAbsent) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 4; ++round) {
    std::string ws = TempDir("kill" + std::to_string(round));
    { auto db = MustOpen(ws, true); ASSERT_TRUE(db->Exec("CREATE TABLE t(item INT, k INT)").ok()); }
    const int kRowsPerItem = 50;
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto db = OpenWorkspace(Workspace(ws));
      if (!db.ok()) _exit(10);
      BatchWriter w(**db, {32, 50});
      for (int i = 0;; ++i) {
        w.Submit([=](Database& d) -> Status {
          MF_ASSIGN_OR_RETURN(Stmt * st, d.Cached("INSERT INTO t(item, k) VALUES(?,?)"));
          for (int k = 0; k < kRowsPerItem; ++k) MF_RETURN_IF_ERROR(st->BindAll(i, k).Run());
          return Status::Ok();
        });
        if (i % 64 == 0) usleep(1000);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 400));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));

    auto db = MustOpen(ws);
    auto ic = db->Prepare("PRAGMA integrity_check");
    ASSERT_TRUE(ic.ok());
    ASSERT_TRUE(*ic->Step());
    EXPECT_EQ(ic->Text(0), "ok");
    int64_t items = *db->QueryInt("SELECT count(DISTINCT item) FROM t");
    EXPECT_GT(items, 0) << "the writer committed nothing before the kill";
    EXPECT_EQ(*db->QueryInt("SELECT count(*) FROM (SELECT item FROM t GROUP BY item HAVING count(*) <> " +
                            std::to_string(kRowsPerItem) + ")"), 0)
        << "an item was half written";
    // Items are committed in order, so what is there is a prefix.
    EXPECT_EQ(*db->QueryInt("SELECT max(item) + 1 FROM t"), items);
  }
}

TEST(StageRun, RowAndSummary) {
  std::string ws = TempDir("stage");
  auto db = MustOpen(ws, true);
  auto id = BeginStageRun(*db, "crawl", {{"source", "danbooru"}});
  ASSERT_TRUE(id.ok());
  StageSummary s;
  s.stage = "crawl";
  s.done = 10;
  s.Fail("http_404", 2);
  s.Fail("corrupt");
  s.seconds = 2.0;
  ASSERT_TRUE(FinishStageRun(*db, *id, s).ok());
  EXPECT_EQ(*db->QueryInt("SELECT failed FROM stage_runs WHERE id=" + std::to_string(*id)), 3);
  EXPECT_EQ(s.ToLine(), "crawl: 10 done, 0 skipped, 3 failed (corrupt 1, http_404 2) in 2.0 s, 5.0/s");
  EXPECT_EQ(s.ToJson()["failures"]["http_404"], 2);
  auto st = WorkspaceStatus(*db);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)["schema_version"], CurrentSchemaVersion());
}

TEST(Views, BadExpressionIsRejectedWithItsReason) {
  std::string ws = TempDir("views");
  auto db = MustOpen(ws, true);
  Status s = CreateView(*db, {"v1", "no_such_column > 1", "", ""});
  EXPECT_EQ(s.ExitCode(), 2);
  EXPECT_NE(s.message().find("column 1: unknown name 'no_such_column'"), std::string::npos) << s.ToString();
  EXPECT_FALSE(GetView(*db, "v1").ok()) << "a rejected view is not stored";
  // Before any detector or tagger has run: a view without tag conditions is fine.
  Status big = CreateView(*db, {"big", "crop_size >= 64 AND faces_in_image = 1", "", ""});
  EXPECT_TRUE(big.ok()) << big.ToString();
  auto v = GetView(*db, "big");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->filter, "crop_size >= 64 AND faces_in_image = 1");
  EXPECT_EQ(v->detector_id, 0);
  EXPECT_EQ(v->tagger_id, 0);
}

}  // namespace
}  // namespace moeforge::db
