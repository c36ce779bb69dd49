// The bounded soak: the real `moeforge crawl` against a loopback demo booru with every
// fault mode on at once, SIGKILLed at random moments and started again until a run ends
// by itself. Every post must end once, every failure with its reason, no blob without its
// row (nor a row without its blob), and peak memory must not grow from run to run.
// MOEFORGE_SOAK_POSTS sets the size (default 600; the soak is 5000).
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
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

// Waits for `pid`: its exit code (128 + signal when killed) and its peak RSS in MiB.
std::pair<int, double> Reap(pid_t pid) {
  int st = 0;
  struct rusage ru {};
  wait4(pid, &st, 0, &ru);
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return {code, ru.ru_maxrss / 1024.0};
}

TEST(CrawlSoak, EveryFaultAtOnceKilledAtRandomUntilDone) {
  std::string bin = Binary();
  ASSERT_TRUE(fs::exists(bin)) << bin << " is not built";
  const char* n_env = std::getenv("MOEFORGE_SOAK_POSTS");
  const int posts = n_env ? std::atoi(n_env) : 600;
  demo::DemoBooru::Options bo;
  bo.posts = posts;
  bo.seed = 31;
  bo.faults =
      "rate429=0.04,5xx=0.04,5xx_perm=0.03,stall=0.02,truncate=0.03,corrupt=0.03,ctype=0.03,"
      "redirect_loop=0.03,redirect_scheme=0.03,oversize=0.03,huge_dims=0.03,noai=0.03,"
      "stall_ms=3000,oversize_mb=3,retry_after=1";
  bo.prerender = true;
  demo::DemoBooru booru(bo);
  ASSERT_TRUE(booru.Start().ok());

  Env env("soak");
  std::vector<std::string> args = {bin,       "crawl",          "-w",        env.dir,   "--source",
                                   "danbooru", "--url",          booru.base_url(), "--page-limit", "100",
                                   "--concurrency", "8", "--timeout", "1", "--max-bytes", "2097152", "--quiet"};
  unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  // Six runs killed at random moments of the crawl's progress, then one left to finish: each
  // killed run is let end a random 1/40 to 1/8 of the posts more (as the database shows it;
  // a fixed 1-6 s mostly struck a 5,000-post crawl before it had ended a post) and is killed
  // up to 0.5 s later, or after 120 s whatever it did. A run that finishes first ends the loop.
  std::uniform_int_distribution<int64_t> progress(std::max(1, posts / 40), std::max(2, posts / 8));
  std::uniform_int_distribution<int> extra_ms(0, 500);
  const int kKills = 6;
  const auto kKillCap = std::chrono::seconds(120);
  std::vector<double> rss;
  std::vector<int64_t> ended_before;  // posts ended (not pending) when each run started
  std::vector<int64_t> ended_at_kill;  // ... and when each killed run was killed
  int kills = 0;
  // Each run's stdout and stderr, kept for the figures below (the summary line of the run
  // that finishes) and for reading after a failure.
  const std::string log = (fs::temp_directory_path() / ("mf_soak_" + std::to_string(::getpid()) + ".log")).string();
  fs::remove(log);
  auto t0 = std::chrono::steady_clock::now();
  for (int run = 0;; ++run) {
    ended_before.push_back(env.Q("SELECT count(*) FROM posts WHERE state <> 'pending'"));
    { std::ofstream(log, std::ios::app) << "== run " << run << "\n"; }
    pid_t pid = Spawn(args, log);
    bool sent = false;
    if (run < kKills) {
      const int64_t target = ended_before.back() + progress(rng);
      const auto cap = std::chrono::steady_clock::now() + kKillCap;
      auto running = [pid] {  // without reaping it: Reap() below collects its usage
        siginfo_t info{};
        return waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0;
      };
      auto ended = [&env] { return env.Q("SELECT count(*) FROM posts WHERE state <> 'pending'"); };
      while (running() && std::chrono::steady_clock::now() < cap && ended() < target)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::this_thread::sleep_for(std::chrono::milliseconds(extra_ms(rng)));
      const int64_t at_kill = ended();
      sent = ::kill(pid, SIGKILL) == 0;
      if (sent) ended_at_kill.push_back(at_kill);
    }
    auto [code, peak] = Reap(pid);
    rss.push_back(peak);
    if (code == 128 + SIGKILL && sent) {
      ++kills;
      continue;
    }
    ASSERT_EQ(code, 0) << "run " << run << " (rng seed " << seed << "; output in " << log << ")";
    break;
  }
  std::stringstream out;
  out << std::ifstream(log).rdbuf();
  std::smatch m;
  const std::string text = out.str();
  const long long last_run_retries =
      std::regex_search(text, m, std::regex("http_retries (\\d+)")) ? std::stoll(m[1]) : -1;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto stats = booru.stats();

  EXPECT_EQ(env.Q("SELECT count(*) FROM posts"), posts);
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state = 'pending'"), 0);
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state = 'failed' AND coalesce(error, '') = ''"), 0)
      << "a failure without its reason";
  // Posts the server serves healthily (after its transient faults) end stored or as
  // duplicates; what it never serves ends failed.
  int good = 0, good_kept = 0;
  auto outcome = env.Posts();
  for (int id = 1; id <= posts; ++id) {
    auto meta = booru.Post(id);
    ASSERT_TRUE(meta.ok());
    if (!meta->fault.stored) continue;
    ++good;
    const auto& state = outcome[std::to_string(id)].first;
    good_kept += state == "stored" || state == "duplicate";
  }
  EXPECT_GE(good_kept, good * 99 / 100) << good_kept << " of " << good << " good posts kept";
  // Requests for a post's original beyond its first: retries plus fetches a kill cut short.
  long long refetches = 0;
  for (int id = 1; id <= posts; ++id) refetches += std::max<int64_t>(0, booru.OriginalHits(id) - 1);
  std::string reasons;
  {
    auto db = env.Db();
    auto st = db->Prepare(
                    "SELECT state || ' ' || substr(error, 1, instr(error || ':', ':') - 1) AS reason, count(*) "
                    "FROM posts WHERE state IN ('failed', 'skipped') GROUP BY reason ORDER BY count(*) DESC")
                  .value();
    while (st.Step().value()) reasons += " " + st.Text(0) + " " + std::to_string(st.Int(1)) + ";";
  }
  std::printf("soak: posts by state:");
  for (const char* state : {"stored", "duplicate", "skipped", "failed", "pending"})
    std::printf(" %s %lld", state,
                static_cast<long long>(env.Q(std::string("SELECT count(*) FROM posts WHERE state = '") + state + "'")));
  std::printf("; failed and skipped by reason:%s\n", reasons.c_str());
  std::printf("soak: posts ended when each run started:");
  for (int64_t n : ended_before) std::printf(" %lld", static_cast<long long>(n));
  std::printf("; when each kill struck:");
  for (int64_t n : ended_at_kill) std::printf(" %lld", static_cast<long long>(n));
  std::printf("\n");
  std::printf("soak: retries in the run that finished %lld (its summary's http_retries); originals requested again "
              "(retries and fetches cut by kills, all runs) %lld\n",
              last_run_retries, refetches);
  CheckInvariants(env);
  double first = rss.front(), last = rss.back();
  double killed_max = rss.size() > 1 ? *std::max_element(rss.begin(), rss.end() - 1) : first;
  std::printf(
      "soak: %d posts, %d runs (%d killed), %.0f s, server: %lld faults injected, %lld image requests; "
      "good posts kept %d/%d; peak RSS first run %.0f MiB, killed runs max %.0f MiB, last run %.0f MiB (rng seed %u)\n",
      posts, static_cast<int>(rss.size()), kills, secs, static_cast<long long>(stats.faults_injected),
      static_cast<long long>(stats.image_requests), good_kept, good, first, killed_max, last, seed);
  EXPECT_GE(kills, 3) << "the crawl finished before three kills: make it bigger";
  // Each kill struck a run that had ended posts of its own (a transient failure is reset to
  // pending when the next run starts, so the count may step back a little between runs).
  for (size_t k = 0; k < ended_at_kill.size(); ++k)
    EXPECT_GT(ended_at_kill[k], ended_before[k]) << "kill " << k << " struck before its run ended a post";
  // Memory flat: the run that finished needs no more than the killed ones did, give or take.
  EXPECT_LE(last, 1.5 * killed_max + 64) << "peak RSS grew from run to run";
  if (!HasFailure()) fs::remove(log);
}

}  // namespace
}  // namespace moeforge::crawler
