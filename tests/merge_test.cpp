// --shard i/N and `moeforge merge` (issue 21): two sharded crawl + detect + tag
// workspaces merged equal one unsharded workspace, and a merge killed with SIGKILL then
// run again ends the same.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/models.h"
#include "core/shard.h"
#include "db/db.h"
#include "tests/e2e_util.h"

namespace moeforge::testing {
namespace {

namespace fs = std::filesystem;

bool HaveCascade() { return ResolveModel("lbpcascade_animeface").ok(); }

// One text row per result row, sorted: what a comparison of two workspaces looks at.
std::vector<std::string> Rows(const std::string& ws, const std::string& sql) {
  std::vector<std::string> rows;
  auto db = db::Database::Open(ws + "/moeforge.db");
  EXPECT_TRUE(db.ok()) << ws;
  if (!db.ok()) return rows;
  auto q = (*db)->Prepare(sql);
  EXPECT_TRUE(q.ok()) << sql << ": " << q.status().ToString();
  if (!q.ok()) return rows;
  while (true) {
    auto row = q->Step();
    EXPECT_TRUE(row.ok()) << sql;
    if (!row.ok() || !*row) break;
    rows.push_back(q->Text(0));
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

std::vector<std::string> Files(const std::string& dir) {
  std::vector<std::string> files;
  if (!fs::exists(dir)) return files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), dir).string() + " " + std::to_string(e.file_size()));
  std::sort(files.begin(), files.end());
  return files;
}

// What "the same workspace" means: posts (by source and remote id; a post that stored an
// image and one that found it again are both 'kept': which of two exact duplicates a crawl
// stores depends on fetch order), source tags, images, blob and crop files, detections,
// faces and tag rows (floats to 4 decimals: the tagger's batches differ between runs).
struct Snapshot {
  std::vector<std::string> posts, tags, images, blobs, crops, detections, faces, face_tags;
  explicit Snapshot(const std::string& ws) {
    posts = Rows(ws,
                 "SELECT s.kind || ' ' || p.remote_id || ' ' || coalesce(p.md5, '-') || ' ' || "
                 "coalesce(p.image_sha256, '-') || ' ' || coalesce(p.content_sha256, '-') || ' ' || "
                 "CASE WHEN p.state IN ('stored', 'duplicate') THEN 'kept' ELSE p.state END "
                 "FROM posts p JOIN sources s ON s.id = p.source_id");
    tags = Rows(ws,
                "SELECT p.remote_id || ' ' || t.tag || ' ' || coalesce(t.category, '-') FROM source_tags t "
                "JOIN posts p ON p.id = t.post_id");
    images = Rows(ws,
                  "SELECT sha256 || ' ' || bytes || ' ' || coalesce(width, '-') || ' ' || coalesce(format, '-') || "
                  "' ' || coalesce(phash, '-') || ' ' || coalesce(near_dup_of, '-') || ' ' || coalesce(blob_path, '-') "
                  "FROM images");
    blobs = Files(ws + "/blobs");
    crops = Files(ws + "/crops");
    detections = Rows(ws,
                      "SELECT d.name || ' ' || dd.image_sha256 || ' ' || dd.n_faces || ' ' || dd.state "
                      "FROM detections_done dd JOIN detectors d ON d.id = dd.detector_id");
    faces = Rows(ws,
                 "SELECT d.name || ' ' || f.image_sha256 || ' ' || f.idx || ' ' || printf('%.4f %.4f %.4f %.4f', "
                 "f.x, f.y, f.w, f.h) || ' ' || coalesce(f.crop_path, '-') FROM faces f "
                 "JOIN detectors d ON d.id = f.detector_id");
    face_tags = Rows(ws,
                     "SELECT t.name || ' ' || t.model_sha256 || ' ' || f.image_sha256 || ' ' || f.idx || ' ' || "
                     "ft.tag || ' ' || printf('%.4f', ft.score) || ' ' || coalesce(ft.present, '-') "
                     "FROM face_tags ft JOIN taggers t ON t.id = ft.tagger_id JOIN faces f ON f.id = ft.face_id");
  }
};

void ExpectSame(const Snapshot& a, const Snapshot& b, const std::string& what) {
  EXPECT_EQ(a.posts, b.posts) << what << ": posts";
  EXPECT_EQ(a.tags, b.tags) << what << ": source tags";
  EXPECT_EQ(a.images, b.images) << what << ": images";
  EXPECT_EQ(a.blobs, b.blobs) << what << ": blob files";
  EXPECT_EQ(a.crops, b.crops) << what << ": crop files";
  EXPECT_EQ(a.detections, b.detections) << what << ": detections";
  EXPECT_EQ(a.faces, b.faces) << what << ": faces";
  EXPECT_EQ(a.face_tags, b.face_tags) << what << ": tag rows";
}

// crawl (with `crawl_shard`), then detect and tag (with `shard`) into a new workspace.
void CrawlDetectTag(const std::string& ws, const std::string& url, const std::string& crawl_shard,
                    const std::string& shard, const std::string& model) {
  auto part = [](const std::string& s) { return s.empty() ? std::string() : " --shard " + s; };
  if (!url.empty()) {
    ASSERT_EQ(Moeforge("init " + ws).status, 0);
    // Near duplicates off: which copy of a near pair is kept is each crawl's own decision.
    Outcome c = Moeforge("crawl -w " + ws + " --source danbooru --url " + url +
                         " --limit 40 --rate 100 --near-dup-threshold -1 --quiet" + part(crawl_shard));
    ASSERT_EQ(c.status, 0) << c.out;
  }
  Outcome d = Moeforge("detect -w " + ws + " --crop-size 64 --threads 1" + part(shard));
  ASSERT_EQ(d.status, 0) << d.out;
  if (!model.empty()) {
    Outcome t = Moeforge("tag -w " + ws + " --tagger builtin:" + model + part(shard));
    ASSERT_EQ(t.status, 0) << t.out;
  }
}

TEST(Shard, ParsesAndSplitsEveryKeyIntoExactlyOnePart) {
  struct Case {
    const char* spec;
    bool ok;
  } cases[] = {{"", true}, {"0/1", true}, {"1/2", true}, {"3/4", true}, {"2/2", false},
               {"-1/2", false}, {"1/0", false}, {"a/2", false}, {"1", false}, {"1/2/3", false}};
  for (const auto& c : cases) EXPECT_EQ(Shard::Parse(c.spec).ok(), c.ok) << c.spec;
  int per_part[3] = {0, 0, 0};
  for (int k = 0; k < 3000; ++k) {
    const std::string key = std::to_string(1000 + k);
    int owners = 0;
    for (int i = 0; i < 3; ++i)
      if (Shard{i, 3}.Owns(key)) ++owners, ++per_part[i];
    EXPECT_EQ(owners, 1) << key;
  }
  for (int n : per_part) EXPECT_GT(n, 800) << "a part of 3000 consecutive ids holds " << n;
  EXPECT_EQ(Shard::StableHash("12345"), Shard::StableHash("12345"));
}

TEST(Merge, TwoShardsMergedEqualOneUnshardedWorkspaceAndAKilledMergeEndsTheSame) {
  if (!HaveCascade()) GTEST_SKIP() << "lbpcascade_animeface not on MOEFORGE_MODEL_PATH";
  DemoBooruProcess booru("--posts 40 --seed 9");
  ASSERT_FALSE(booru.url().empty());
  const std::string dir = TempDir("merge");
  const std::string whole = dir + "/whole", s0 = dir + "/s0", s1 = dir + "/s1";
  // The tagger: trained once on the unsharded crawl, then used by all three.
  CrawlDetectTag(whole, booru.url(), "", "", "");
  ASSERT_EQ(Moeforge("tag train -w " + whole + " --epochs 1 --seed 99").status, 0);
  const std::string model = whole + "/models/builtin-tagger.pt";
  ASSERT_EQ(Moeforge("tag -w " + whole + " --tagger builtin:" + model).status, 0);
  Snapshot w(whole);
  ASSERT_GT(w.faces.size(), 0u);
  ASSERT_GT(w.face_tags.size(), 0u);

  // N machines, each crawling its part into its own workspace, then detect and tag there.
  CrawlDetectTag(s0, booru.url(), "0/2", "", model);
  CrawlDetectTag(s1, booru.url(), "1/2", "", model);
  {
    Snapshot a(s0), b(s1);
    ASSERT_GT(a.posts.size(), 0u);
    ASSERT_GT(b.posts.size(), 0u);
    EXPECT_EQ(a.posts.size() + b.posts.size(), w.posts.size()) << "the shards split the posts";
  }
  Outcome m = Moeforge("merge " + dir + "/merged " + s0 + " " + s1);
  ASSERT_EQ(m.status, 0) << m.out;
  ExpectSame(w, Snapshot(dir + "/merged"), "merged crawl shards vs one crawl");
  // Merging again adds nothing.
  Outcome again = Moeforge("merge " + dir + "/merged " + s0 + " " + s1 + " --json", true);
  ASSERT_EQ(again.status, 0) << again.out;
  EXPECT_NE(again.out.find("\"posts_added\":0"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("\"face_tags_added\":0"), std::string::npos) << again.out;
  ExpectSame(w, Snapshot(dir + "/merged"), "merged twice");

  // One crawl copied to N machines, each detecting and tagging its part of the images.
  const std::string c = dir + "/crawled";
  ASSERT_EQ(Moeforge("init " + c).status, 0);
  ASSERT_EQ(Moeforge("crawl -w " + c + " --source danbooru --url " + booru.url() +
                     " --limit 40 --rate 100 --near-dup-threshold -1 --quiet").status, 0);
  fs::copy(c, dir + "/c0", fs::copy_options::recursive);
  fs::copy(c, dir + "/c1", fs::copy_options::recursive);
  CrawlDetectTag(dir + "/c0", "", "", "0/2", model);
  CrawlDetectTag(dir + "/c1", "", "", "1/2", model);
  {
    Snapshot a(dir + "/c0"), b(dir + "/c1");
    EXPECT_GT(a.faces.size(), 0u);
    EXPECT_GT(b.faces.size(), 0u);
    EXPECT_EQ(a.detections.size() + b.detections.size(), w.detections.size()) << "the shards split the images";
  }
  ASSERT_EQ(Moeforge("merge " + dir + "/merged2 " + dir + "/c0 " + dir + "/c1").status, 0);
  ExpectSame(w, Snapshot(dir + "/merged2"), "merged detect/tag shards vs one run");

  // SIGKILL as soon as the first file is placed (copies: the slow path), then again.
  const std::string killed = dir + "/killed";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string cmd = "exec " + Bin() + " merge " + killed + " " + s0 + " " + s1 + " --copy >/dev/null 2>&1";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (Files(killed + "/blobs").empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFSIGNALED(st)) << "the merge ended before it could be killed";
  Outcome resumed = Moeforge("merge " + killed + " " + s0 + " " + s1 + " --copy");
  ASSERT_EQ(resumed.status, 0) << resumed.out;
  ExpectSame(w, Snapshot(killed), "killed and re-run merge vs one crawl");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moeforge::testing
