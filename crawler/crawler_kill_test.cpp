// The real `moeforge crawl` binary (env MOEFORGE_BIN), killed with SIGKILL at random
// moments several times and resumed, must end with the same posts, outcomes and blobs as
// an uninterrupted crawl of the same site.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "crawler/test_util.h"
#include "demo_booru/server.h"

namespace moeforge::crawler {
namespace {

namespace fs = std::filesystem;
using testing_util::CheckInvariants;
using testing_util::Env;

std::string Binary() {
  const char* env = std::getenv("MOEFORGE_BIN");
  return env ? env : std::string(MOEFORGE_BINARY_DIR) + "/cli/moeforge";
}

pid_t Spawn(const std::vector<std::string>& args) {
  pid_t pid = fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int WaitExit(pid_t pid) {
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// remote_id, state, error, image_sha256 of every post.
std::vector<std::string> Outcomes(Env& env) {
  auto db = env.Db();
  auto st = db->Prepare(
                  "SELECT remote_id || ' ' || state || ' ' || COALESCE(error,'') || ' ' || COALESCE(image_sha256,'') "
                  "FROM posts ORDER BY CAST(remote_id AS INTEGER)")
                .value();
  std::vector<std::string> out;
  while (st.Step().value()) out.push_back(st.Text(0));
  return out;
}

std::set<std::string> Blobs(Env& env) {
  std::set<std::string> files;
  for (auto& e : fs::recursive_directory_iterator(env.ws.blobs_dir()))
    if (e.is_regular_file()) files.insert(e.path().filename().string());
  return files;
}

TEST(CrawlKill, SigkillAtRandomMomentsThenResumeEqualsUninterrupted) {
  std::string bin = Binary();
  ASSERT_TRUE(fs::exists(bin)) << bin << " is not built (the moeforge target)";
  demo::DemoBooru::Options bo;
  bo.posts = 160;
  bo.seed = 23;
  // Transient 5xx (retried) and corrupt files (failed): outcomes of both kinds.
  bo.faults = "5xx=0.1,corrupt=0.05";
  bo.prerender = true;
  demo::DemoBooru booru(bo);
  ASSERT_TRUE(booru.Start().ok());

  auto args = [&](Env& env) {
    return std::vector<std::string>{bin,        "crawl",         "-w",           env.dir,     "--source", "danbooru",
                                    "--url",    booru.base_url(), "--page-limit", "20",        "--concurrency", "4",
                                    "--quiet"};
  };

  Env ref("kill_ref");
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(WaitExit(Spawn(args(ref))), 0);
  double ref_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  auto want = Outcomes(ref);
  ASSERT_EQ(want.size(), 160u);

  Env env("kill_victim");
  unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  // Kill moments as fractions of the uninterrupted crawl's time, so that on a quiet or a
  // busy machine alike the five runs together cover less than one whole crawl.
  std::uniform_real_distribution<double> fraction(0.05, 0.18);
  int killed_mid_crawl = 0;
  for (int k = 0; k < 5; ++k) {
    pid_t pid = Spawn(args(env));
    int ms = std::max(20, static_cast<int>(fraction(rng) * ref_ms));
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    int r = ::kill(pid, SIGKILL);
    int code = WaitExit(pid);
    if (r == 0 && code == 128 + SIGKILL) killed_mid_crawl++;
  }
  ASSERT_EQ(WaitExit(Spawn(args(env))), 0) << "rng seed " << seed;
  EXPECT_GE(killed_mid_crawl, 3) << "the crawl finished before most kills: the test proves little";
  EXPECT_EQ(Outcomes(env), want) << "rng seed " << seed;
  EXPECT_EQ(Blobs(env), Blobs(ref)) << "rng seed " << seed;
  CheckInvariants(env);
}

}  // namespace
}  // namespace moeforge::crawler
