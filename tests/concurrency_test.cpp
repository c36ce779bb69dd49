// Two stages on one workspace at once, as real processes: a crawl while detect runs works
// (SQLite WAL and batched transactions), and a second crawl of the same workspace is
// refused with a message naming the lock while the first goes on undisturbed.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "db/db.h"
#include "tests/e2e_util.h"

namespace moeforge::testing {
namespace {

namespace fs = std::filesystem;

// `moeforge ARGS...` in the background, stdout and stderr into `log`.
pid_t Start(const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<std::string> full = {Bin()};
    full.insert(full.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int Wait(pid_t pid) {
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int64_t Count(const std::string& ws, const std::string& sql) {
  auto db = db::Database::Open(ws + "/moeforge.db");
  if (!db.ok()) return -1;
  auto n = (*db)->QueryInt(sql);
  return n.ok() ? *n : -1;
}

bool Running(pid_t pid) {
  int st = 0;
  return waitpid(pid, &st, WNOHANG) == 0;
}

std::vector<std::string> CrawlArgs(const std::string& ws, const std::string& url) {
  return {"crawl", "-w", ws, "--source", "danbooru", "--url", url, "--quiet", "--page-limit", "20"};
}

TEST(Concurrency, ASecondCrawlOfTheWorkspaceIsRefusedAndTheFirstGoesOn) {
  // Stalls keep the first crawl busy for seconds.
  DemoBooruProcess booru("--posts 40 --seed 12 --faults stall=0.25,stall_ms=2500");
  ASSERT_FALSE(booru.url().empty());
  std::string root = TempDir("two_crawls");
  std::string ws = root + "/ws";
  ASSERT_EQ(Moeforge("init " + ws).status, 0);
  pid_t first = Start(CrawlArgs(ws, booru.url()), root + "/first.log");
  // The first holds the lock once it has listed posts.
  for (int i = 0; i < 1000 && Count(ws, "SELECT count(*) FROM posts") <= 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(Running(first)) << "the first crawl ended before the second could start: " << Slurp(root + "/first.log");
  std::string args;
  for (const auto& a : CrawlArgs(ws, booru.url())) args += " " + a;
  Outcome second = Moeforge(args);
  EXPECT_NE(second.status, 0) << second.out;
  EXPECT_NE(second.out.find("another crawl is running in " + ws), std::string::npos) << second.out;
  EXPECT_NE(second.out.find(ws + "/crawl.lock"), std::string::npos) << second.out;
  std::printf("the second crawl: %s\n", second.LastLine().c_str());
  EXPECT_TRUE(Running(first)) << "the refused crawl disturbed the first";
  ASSERT_EQ(Wait(first), 0) << Slurp(root + "/first.log");
  EXPECT_EQ(Count(ws, "SELECT count(*) FROM posts WHERE state IN ('stored', 'duplicate')"), 40);
  EXPECT_EQ(Count(ws, "SELECT count(*) FROM posts WHERE state = 'pending'"), 0);
  fs::remove_all(root);
}

// Detect works through the images a first crawl stored while a second crawl (another
// site) adds more to the same workspace; both finish, and a last detect does the rest.
TEST(Concurrency, CrawlAndDetectRunOnOneWorkspaceAtOnce) {
  if (std::system((Bin() + " models path lbpcascade_animeface >/dev/null 2>&1").c_str()) != 0)
    GTEST_SKIP() << "lbpcascade_animeface not on MOEFORGE_MODEL_PATH";
  DemoBooruProcess site_a("--posts 40 --seed 13");
  DemoBooruProcess site_b("--posts 60 --seed 14");
  std::string root = TempDir("crawl_and_detect");
  std::string ws = root + "/ws";
  ASSERT_EQ(Moeforge("init " + ws).status, 0);
  std::string args;
  for (const auto& a : CrawlArgs(ws, site_a.url())) args += " " + a;
  ASSERT_EQ(Moeforge(args).status, 0);

  pid_t crawl = Start(CrawlArgs(ws, site_b.url()), root + "/crawl.log");
  pid_t detect = Start({"detect", "-w", ws, "--threads", "1"}, root + "/detect.log");
  EXPECT_EQ(Wait(detect), 0) << Slurp(root + "/detect.log");
  EXPECT_EQ(Wait(crawl), 0) << Slurp(root + "/crawl.log");
  Outcome last = Moeforge("detect -w " + ws + " --threads 2");
  ASSERT_EQ(last.status, 0) << last.out;

  EXPECT_EQ(Count(ws, "SELECT count(*) FROM posts WHERE state = 'pending'"), 0);
  EXPECT_EQ(Count(ws, "SELECT count(DISTINCT source_id) FROM posts"), 2);
  int64_t images = Count(ws, "SELECT count(*) FROM images WHERE blob_path IS NOT NULL AND near_dup_of IS NULL");
  EXPECT_GT(images, 80);
  EXPECT_EQ(Count(ws, "SELECT count(*) FROM detections_done WHERE state = 'done'"), images);
  EXPECT_EQ(Count(ws, "SELECT count(*) FROM (SELECT image_sha256, idx FROM faces GROUP BY 1, 2 HAVING count(*) > 1)"),
            0);
  auto db = db::Database::Open(ws + "/moeforge.db");
  ASSERT_TRUE(db.ok());
  auto st = (*db)->Prepare("PRAGMA integrity_check");
  ASSERT_TRUE(st.ok() && st->Step().value());
  EXPECT_EQ(st->Text(0), "ok");
  fs::remove_all(root);
}

}  // namespace
}  // namespace moeforge::testing
