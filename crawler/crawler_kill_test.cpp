// The real `moeforge crawl` binary (env MOEFORGE_BIN), killed with SIGKILL at random
// moments several times and resumed, must end with the same posts, outcomes and blobs as
// an uninterrupted crawl of the same site. Each kill waits until the database shows that
// the run made progress of its own (not a kill inside start-up), and the test asserts
// that each killed run left partial progress behind.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
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
using testing_util::Binary;
using testing_util::Spawn;
using testing_util::WaitExit;


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
  const int kPosts = 240;
  std::string bin = Binary();
  ASSERT_TRUE(fs::exists(bin)) << bin << " is not built (the moeforge target)";
  demo::DemoBooru::Options bo;
  bo.posts = kPosts;
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
  ASSERT_EQ(WaitExit(Spawn(args(ref))), 0);
  auto want = Outcomes(ref);
  ASSERT_EQ(want.size(), static_cast<size_t>(kPosts));

  Env env("kill_victim");
  unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  // The crawl commits in batches (every 250 ms or 256 rows), so a run is killed as soon as
  // the database shows one batch of its own, plus a random 0-40 ms: the kill lands inside
  // the crawl proper, never in start-up, at a different point of a batch each time.
  std::uniform_int_distribution<int> extra_ms(0, 40);
  auto db = env.Db();
  auto finished = [&]() -> int64_t {
    auto n = db->QueryInt("SELECT count(*) FROM posts WHERE state <> 'pending'");
    return n.ok() ? *n : -1;
  };
  std::vector<int64_t> at_kill;
  int partial_kills = 0;
  for (int k = 0; k < 6 && (at_kill.empty() || at_kill.back() < kPosts); ++k) {
    int64_t before = finished();
    pid_t pid = Spawn(args(env));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (finished() <= before && std::chrono::steady_clock::now() < deadline) {
      int st = 0;
      if (waitpid(pid, &st, WNOHANG) == pid) {  // exited without a commit we saw
        pid = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_GT(pid, 0) << "run " << k << " exited before committing anything we saw (" << before << " -> "
                      << finished() << " posts finished; rng seed " << seed << ")";
    std::this_thread::sleep_for(std::chrono::milliseconds(extra_ms(rng)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    ASSERT_EQ(WaitExit(pid), 128 + SIGKILL) << "run " << k;
    int64_t after = finished();
    at_kill.push_back(after);
    // Each killed run committed progress of its own, and what it committed survived.
    EXPECT_GT(after, before) << "run " << k << " (rng seed " << seed << ")";
    if (after < kPosts) ++partial_kills;
  }
  // Resume after SIGKILL from a partial workspace, several times: the point of the test.
  EXPECT_GE(partial_kills, 3) << "the crawl finished too fast for the kills: make kPosts bigger (rng seed " << seed
                              << ")";
  std::string progress;
  for (auto n : at_kill) progress += " " + std::to_string(n);
  std::printf("posts finished at each kill:%s of %d (rng seed %u)\n", progress.c_str(), kPosts, seed);
  ASSERT_EQ(WaitExit(Spawn(args(env))), 0) << "rng seed " << seed;
  EXPECT_EQ(Outcomes(env), want) << "rng seed " << seed;
  EXPECT_EQ(Blobs(env), Blobs(ref)) << "rng seed " << seed;
  CheckInvariants(env);
}

}  // namespace
}  // namespace moeforge::crawler
