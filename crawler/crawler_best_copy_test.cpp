// Near duplicates keep the best copy: against the demo booru, whose truth names each
// duplicate's original (re-encoded or resized re-uploads carry larger ids, so newest-first
// listings show them before their original), every post of a group must end pointing at
// the group's copy with the most pixels (lossless over lossy at equal size), whether the
// API lists the group newest first or oldest first, also when the crawl is killed with
// SIGKILL and resumed; and detect must work on each kept copy once.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "crawler/crawler.h"
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

constexpr int kPosts = 90;
constexpr uint64_t kSeed = 11;

std::unique_ptr<demo::DemoBooru> StartBooru() {
  demo::DemoBooru::Options o;
  o.posts = kPosts;
  o.seed = kSeed;
  auto b = std::make_unique<demo::DemoBooru>(o);
  Status s = b->Start();
  EXPECT_TRUE(s.ok()) << s.ToString();
  return b;
}

CrawlOptions Opts(const demo::DemoBooru& booru, const std::string& tags) {
  CrawlOptions o;
  o.source = "danbooru";
  o.url = booru.base_url();
  o.tags = tags;
  o.page_limit = 20;
  o.concurrency = 8;
  o.quiet = true;
  return o;
}

// The truth: each group's post ids (keyed by its original's id), with each post's pixels
// and whether its file is lossless.
struct Truth {
  std::map<int64_t, std::vector<int64_t>> groups;
  std::map<int64_t, int64_t> pixels;
  std::map<int64_t, bool> lossless;
  int near_groups = 0;        // groups with a copy that is not byte-identical
  int best_listed_last = 0;   // ... whose best copy is not the newest post of the group
};

Truth ReadTruth(demo::DemoBooru& booru) {
  Truth t;
  for (int64_t id = 1; id <= kPosts; ++id) {
    auto m = booru.Post(id);
    EXPECT_TRUE(m.ok());
    int64_t root = m->kind == demo::PostKind::kDuplicate ? m->duplicate_of : id;
    t.groups[root].push_back(id);
    t.pixels[id] = static_cast<int64_t>(m->width) * m->height;
    t.lossless[id] = m->file_ext == "png";
  }
  for (const auto& [root, ids] : t.groups) {
    std::set<std::string> md5s;
    int64_t best = 0;
    for (int64_t id : ids) {
      md5s.insert(booru.Post(id)->md5);
      best = std::max(best, t.pixels[id]);
    }
    if (md5s.size() < 2) continue;
    t.near_groups++;
    if (t.pixels[ids.back()] < best || (t.pixels[ids.back()] == best && !t.lossless[ids.back()])) t.best_listed_last++;
  }
  return t;
}

// remote_id -> image_sha256 of every post.
std::map<std::string, std::string> Pointers(Env& env) {
  auto db = env.Db();
  auto st = db->Prepare("SELECT remote_id, COALESCE(image_sha256, '') FROM posts").value();
  std::map<std::string, std::string> out;
  while (st.Step().value()) out[st.Text(0)] = st.Text(1);
  return out;
}

// Every post of a group points at one kept copy, and it has the group's most pixels
// (and is lossless when a lossless copy has that many).
void ExpectBestCopies(Env& env, const Truth& truth, const std::string& label) {
  auto db = env.Db();
  auto img = db->Prepare(
                   "SELECT i.width * i.height, i.format, i.near_dup_of IS NULL AND i.blob_path IS NOT NULL "
                   "FROM posts p JOIN images i ON i.sha256 = p.image_sha256 WHERE p.remote_id = ?")
                 .value();
  auto ptr = Pointers(env);
  for (const auto& [root, ids] : truth.groups) {
    int64_t best = 0;
    bool best_lossless = false;
    for (int64_t id : ids) best = std::max(best, truth.pixels.at(id));
    for (int64_t id : ids) {
      if (truth.pixels.at(id) == best && truth.lossless.at(id)) best_lossless = true;
    }
    std::set<std::string> targets;
    for (int64_t id : ids) targets.insert(ptr[std::to_string(id)]);
    ASSERT_EQ(targets.size(), 1u) << label << ": group of " << root << " points at several images";
    img.Bind(1, std::to_string(ids.front()));
    ASSERT_TRUE(img.Step().value()) << label << ": post " << ids.front() << " has no image";
    EXPECT_EQ(img.Int(0), best) << label << ": group of " << root << " kept a copy with fewer pixels";
    if (best_lossless) {
      EXPECT_EQ(img.Text(1), "png") << label << ": group of " << root << " kept a lossy copy";
    }
    EXPECT_EQ(img.Int(2), 1) << label << ": group of " << root << " points at a copy that is not kept";
    img.Reset();
  }
  // Every near duplicate names a kept copy (not one that was replaced since).
  EXPECT_EQ(env.Q("SELECT count(*) FROM images i JOIN images k ON k.sha256 = i.near_dup_of "
                  "WHERE k.near_dup_of IS NOT NULL OR k.blob_path IS NULL"),
            0)
      << label;
  EXPECT_EQ(env.Q("SELECT count(*) FROM images WHERE near_dup_of IS NOT NULL AND blob_path IS NOT NULL"), 0) << label;
}

TEST(CrawlBestCopy, EveryPostOfAGroupPointsAtTheCopyWithTheMostPixelsWhicheverOrder) {
  auto booru = StartBooru();
  Truth truth = ReadTruth(*booru);
  ASSERT_GE(truth.best_listed_last, 2) << "newest first never lists a worse copy first: the test proves little";

  Env newest("best_newest");
  auto a = Crawl(newest.ws, Opts(*booru, ""));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->failed, 0) << a->ToLine();
  EXPECT_GE(a->extra.value("superseded", 0), truth.best_listed_last) << a->ToLine();
  // A replaced copy stored earlier in the same run counts as a near duplicate.
  EXPECT_EQ(a->done, static_cast<int64_t>(truth.groups.size())) << a->ToLine();
  EXPECT_EQ(newest.Q("SELECT count(*) FROM posts WHERE state='stored'"), a->done);
  ExpectBestCopies(newest, truth, "newest first");
  CheckInvariants(newest);

  Env oldest("best_oldest");
  auto b = Crawl(oldest.ws, Opts(*booru, "order:id"));
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->done, static_cast<int64_t>(truth.groups.size())) << b->ToLine();
  ExpectBestCopies(oldest, truth, "oldest first");
  CheckInvariants(oldest);
  EXPECT_EQ(Pointers(newest), Pointers(oldest));
}


std::vector<std::string> CrawlArgs(const std::string& bin, Env& env, const demo::DemoBooru& booru,
                                   const std::string& tags, int limit = 0) {
  std::vector<std::string> a{bin, "crawl", "-w", env.dir, "--source", "danbooru", "--url", booru.base_url(),
                             "--tags", tags, "--page-limit", "10", "--concurrency", "4", "--quiet"};
  if (limit > 0) {
    a.push_back("--limit");
    a.push_back(std::to_string(limit));
  }
  return a;
}

TEST(CrawlBestCopy, KilledAndResumedCrawlKeepsTheSameCopies) {
  std::string bin = Binary();
  ASSERT_TRUE(fs::exists(bin)) << bin << " is not built (the moeforge target)";
  auto booru = StartBooru();
  Truth truth = ReadTruth(*booru);

  Env ref("best_kill_ref");
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(WaitExit(Spawn(CrawlArgs(bin, ref, *booru, ""))), 0);
  double ref_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ExpectBestCopies(ref, truth, "uninterrupted");

  Env env("best_kill_victim");
  unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> fraction(0.05, 0.18);
  int killed = 0;
  for (int k = 0; k < 5; ++k) {
    pid_t pid = Spawn(CrawlArgs(bin, env, *booru, ""));
    std::this_thread::sleep_for(std::chrono::milliseconds(std::max(20, static_cast<int>(fraction(rng) * ref_ms))));
    int r = ::kill(pid, SIGKILL);
    if (WaitExit(pid) == 128 + SIGKILL && r == 0) killed++;
  }
  ASSERT_EQ(WaitExit(Spawn(CrawlArgs(bin, env, *booru, ""))), 0) << "rng seed " << seed;
  EXPECT_GE(killed, 3) << "the crawl finished before most kills: the test proves little";
  ExpectBestCopies(env, truth, "killed and resumed, rng seed " + std::to_string(seed));
  EXPECT_EQ(Pointers(env), Pointers(ref)) << "rng seed " << seed;
  CheckInvariants(env);
}

// The sha256 of every image detect has recorded.
std::set<std::string> Detected(Env& env) {
  auto db = env.Db();
  auto st = db->Prepare("SELECT image_sha256 FROM detections_done").value();
  std::set<std::string> out;
  while (st.Step().value()) out.insert(st.Text(0));
  return out;
}

std::set<std::string> Kept(Env& env) {
  auto db = env.Db();
  auto st = db->Prepare("SELECT sha256 FROM images WHERE blob_path IS NOT NULL AND near_dup_of IS NULL").value();
  std::set<std::string> out;
  while (st.Step().value()) out.insert(st.Text(0));
  return out;
}

// The images whose faces the dataset (v_faces) lists.
std::set<std::string> FacesListed(Env& env) {
  auto db = env.Db();
  auto st = db->Prepare("SELECT DISTINCT image_sha256 FROM v_faces").value();
  std::set<std::string> out;
  while (st.Step().value()) out.insert(st.Text(0));
  return out;
}

TEST(CrawlBestCopy, DetectRunsOncePerKeptCopy) {
  std::string bin = Binary();
  ASSERT_TRUE(fs::exists(bin)) << bin << " is not built (the moeforge target)";
  auto booru = StartBooru();
  Truth truth = ReadTruth(*booru);
  Env env("best_detect");
  std::vector<std::string> detect{bin, "detect", "-w", env.dir, "--detector", "whole", "--threads", "2"};

  // The newer half first: re-uploads whose original is older are the only copy seen yet.
  ASSERT_EQ(WaitExit(Spawn(CrawlArgs(bin, env, *booru, "", kPosts / 2))), 0);
  ASSERT_EQ(WaitExit(Spawn(detect)), 0);
  std::set<std::string> kept1 = Kept(env);
  EXPECT_EQ(Detected(env), kept1);

  // Then every post, oldest first: the older originals replace those re-uploads.
  ASSERT_EQ(WaitExit(Spawn(CrawlArgs(bin, env, *booru, "order:id"))), 0);
  ExpectBestCopies(env, truth, "two crawls");
  std::set<std::string> kept2 = Kept(env);
  int replaced = 0;
  for (const auto& sha : kept1) replaced += kept2.count(sha) == 0;
  EXPECT_GT(replaced, 0) << "no copy was replaced between the crawls: the test proves little";
  auto before = Detected(env);
  ASSERT_EQ(WaitExit(Spawn(detect)), 0);
  auto after = Detected(env);
  // Detect worked on each new kept copy and on nothing else; every kept copy once.
  std::set<std::string> added;
  for (const auto& sha : after)
    if (!before.count(sha)) added.insert(sha);
  std::set<std::string> new_kept;
  for (const auto& sha : kept2)
    if (!kept1.count(sha)) new_kept.insert(sha);
  EXPECT_EQ(added, new_kept);
  for (const auto& sha : kept2) EXPECT_TRUE(after.count(sha)) << sha << " kept but never detected";
  // The faces found on a replaced copy stay in `faces` but leave the dataset.
  auto listed = FacesListed(env);
  int replaced_listed = 0;
  for (const auto& sha : listed) {
    EXPECT_TRUE(kept2.count(sha)) << sha << ": faces of an image that is not a kept copy are in v_faces";
    replaced_listed += kept1.count(sha) && !kept2.count(sha);
  }
  EXPECT_EQ(replaced_listed, 0);
  CheckInvariants(env);
}

}  // namespace
}  // namespace moeforge::crawler
