// End to end against the demo booru, in-process on loopback: each dialect, every fault
// mode (the outcome of each post predicted by demo_booru/faults.h), the workspace invariants
// (no blob without a row, no row without a blob), re-runs asking only for what is new,
// robots.txt, limits, and the local-folder source.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <algorithm>

#include "core/hash.h"
#include "core/workspace.h"
#include "crawler/crawler.h"
#include "db/db.h"
#include "demo_booru/faults.h"
#include "demo_booru/server.h"
#include "crawler/test_util.h"

namespace moeforge::crawler {
namespace {

namespace fs = std::filesystem;
using testing_util::Env;
using testing_util::CheckInvariants;
constexpr uint64_t kSeed = 11;

std::unique_ptr<demo::DemoBooru> StartBooru(int posts, const std::string& faults = "") {
  demo::DemoBooru::Options o;
  o.posts = posts;
  o.seed = kSeed;
  o.faults = faults;
  o.threads = 16;
  auto b = std::make_unique<demo::DemoBooru>(o);
  Status s = b->Start();
  EXPECT_TRUE(s.ok()) << s.ToString();
  return b;
}

CrawlOptions Opts(const std::string& source, const std::string& url) {
  CrawlOptions o;
  o.source = source;
  o.url = url;
  o.concurrency = 8;
  o.quiet = true;
  o.timeout_s = 2;
  return o;
}

TEST(CrawlE2E, DanbooruStoresEveryPostOnceAndRecrawlAsksOnlyForNew) {
  auto booru = StartBooru(45);
  Env env("danbooru");
  auto o = Opts("danbooru", booru->base_url());
  o.page_limit = 20;  // three pages
  auto s = Crawl(env.ws, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->failed, 0) << s->ToLine();
  EXPECT_EQ(s->done + s->skipped, 45) << s->ToLine();
  auto posts = env.Posts();
  ASSERT_EQ(posts.size(), 45u);
  // Group the posts by the original their truth says they copy (re-encoded, resized or
  // byte-identical): each group must end as ONE stored blob, the others linked to it.
  std::map<int64_t, std::vector<int64_t>> groups;
  for (int id = 1; id <= 45; ++id) {
    auto meta = booru->Post(id);
    ASSERT_TRUE(meta.ok());
    int64_t root = id;
    while (true) {
      auto m = booru->Post(root);
      if (m->kind != demo::PostKind::kDuplicate) break;
      root = m->duplicate_of;
    }
    groups[root].push_back(id);
    auto& [state, err] = posts[std::to_string(id)];
    EXPECT_TRUE(state == "stored" || state == "duplicate") << id << " " << state << " " << err;
  }
  int multi = 0;
  for (const auto& [root, ids] : groups) {
    std::string in;
    for (auto id : ids) in += std::to_string(id) + ",";
    in.pop_back();
    EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state='stored' AND remote_id IN (" + in + ")"), 1) << in;
    EXPECT_EQ(env.Q("SELECT count(DISTINCT image_sha256) FROM posts WHERE remote_id IN (" + in + ")"), 1) << in;
    multi += ids.size() > 1;
  }
  EXPECT_GT(multi, 0) << "the demo booru served no duplicates: the test proves nothing about them";
  EXPECT_EQ(s->done, static_cast<int64_t>(groups.size()));
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state='stored'"), s->done);
  // The source tags arrived, with Danbooru's categories.
  EXPECT_GT(env.Q("SELECT count(*) FROM v_source_tags"), 45 * 3);
  EXPECT_GT(env.Q("SELECT count(*) FROM source_tags WHERE category='artist'"), 0);
  CheckInvariants(env);

  // Re-running asks for page 1 only, stops at the newest known post, fetches no image.
  auto before = booru->stats();
  auto again = Crawl(env.ws, o);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  auto after = booru->stats();
  EXPECT_EQ(again->done, 0);
  EXPECT_EQ(after.image_requests - before.image_requests, 0);
  EXPECT_EQ(after.api_requests - before.api_requests, 1);
  EXPECT_EQ(env.Posts(), posts);
  CheckInvariants(env);
}

TEST(CrawlE2E, NewPostsOnlyOnRecrawl) {
  Env env("newposts");
  {
    auto booru = StartBooru(25);
    auto o = Opts("danbooru", booru->base_url());
    o.page_limit = 10;
    ASSERT_TRUE(Crawl(env.ws, o).ok());
  }
  // The site grows (the same seed renders the same first 25 posts).
  auto booru = StartBooru(32);
  auto o = Opts("danbooru", booru->base_url());
  o.page_limit = 10;
  // The source is keyed by URL: the port changed, so point at the same source row.
  auto db = env.Db();
  ASSERT_TRUE(db->Exec("UPDATE sources SET url='" + booru->base_url() + "'").ok());
  auto s = Crawl(env.ws, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->done + s->skipped, 7) << s->ToLine();
  EXPECT_EQ(booru->stats().image_requests, 7);
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts"), 32);
  CheckInvariants(env);
}

TEST(CrawlE2E, MoebooruAndGelbooruDialects) {
  for (const char* dialect : {"moebooru", "gelbooru"}) {
    auto booru = StartBooru(30);
    Env env(dialect);
    auto o = Opts(dialect, booru->base_url());
    o.page_limit = 12;
    auto s = Crawl(env.ws, o);
    ASSERT_TRUE(s.ok()) << dialect << ": " << s.status().ToString();
    EXPECT_EQ(s->failed, 0) << dialect << ": " << s->ToLine();
    EXPECT_EQ(s->done + s->skipped, 30) << dialect << ": " << s->ToLine();
    EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state IN ('stored','duplicate')"), 30) << dialect;
    EXPECT_GT(env.Q("SELECT count(*) FROM source_tags"), 30) << dialect;
    CheckInvariants(env);
  }
}

TEST(CrawlE2E, EveryFaultModeEndsAsPredicted) {
  // Rates high enough that every fault shows up among 120 posts; stalls short.
  const std::string spec =
      "rate429=0.06,5xx=0.06,5xx_perm=0.05,stall=0.04,truncate=0.05,corrupt=0.05,ctype=0.05,"
      "redirect_loop=0.05,redirect_scheme=0.05,oversize=0.05,huge_dims=0.05,noai=0.05,"
      "stall_ms=4000,oversize_mb=3,retry_after=1";
  const int kPosts = 120;
  auto booru = StartBooru(kPosts, spec);
  Env env("faults");
  auto o = Opts("danbooru", booru->base_url());
  o.max_bytes = 2 << 20;
  o.timeout_s = 1;
  o.retries = 3;  // the demo's transient faults clear after fail_first = 2 failed attempts
  o.concurrency = 16;
  auto s = Crawl(env.ws, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto posts = env.Posts();
  ASSERT_EQ(posts.size(), static_cast<size_t>(kPosts));
  // Byte-identical posts share one URL, and the server answers it with the fault of
  // whichever of them it rendered first: such a post may end as any of their verdicts.
  std::map<std::string, std::vector<demo::FaultVerdict>> by_md5;
  for (int id = 1; id <= kPosts; ++id) {
    auto meta = booru->Post(id);
    ASSERT_TRUE(meta.ok());
    by_md5[meta->md5].push_back(meta->fault);
  }
  std::set<std::string> seen_faults;
  int checked_exactly = 0;
  for (int id = 1; id <= kPosts; ++id) {
    auto meta = booru->Post(id);
    seen_faults.insert(demo::FaultName(meta->fault.fault));
    auto& [state, err] = posts[std::to_string(id)];
    bool ok_state = state == "stored" || state == "duplicate";
    auto matches = [&](const demo::FaultVerdict& v) {
      return v.stored ? ok_state : (state == "failed" && err == v.reason);
    };
    const auto& group = by_md5[meta->md5];
    if (group.size() == 1) {
      checked_exactly++;
      EXPECT_TRUE(matches(meta->fault)) << "post " << id << " fault " << demo::FaultName(meta->fault.fault)
                                        << " expected " << (meta->fault.stored ? "stored" : meta->fault.reason)
                                        << ", got " << state << " " << err;
    } else {
      EXPECT_TRUE(std::any_of(group.begin(), group.end(), matches))
          << "post " << id << " (one of " << group.size() << " identical files): " << state << " " << err;
    }
  }
  EXPECT_GT(checked_exactly, kPosts * 3 / 4);
  EXPECT_EQ(seen_faults.size(), static_cast<size_t>(demo::kFaultCount)) << "not every fault mode was exercised";
  // Nothing above the size limit was kept, nothing huge decoded (it would have been stored).
  EXPECT_EQ(env.Q("SELECT count(*) FROM images WHERE bytes > " + std::to_string(o.max_bytes)), 0);
  EXPECT_EQ(env.Q("SELECT count(*) FROM images WHERE width * height > " + std::to_string(o.max_pixels)), 0);
  CheckInvariants(env);

  // A re-run asks again only for what may be transient (stalls, 5xx) and ends the same.
  const std::string kTransient =
      "(error IN ('timeout','truncated','connect','transport') OR error LIKE 'http_5%' OR error = 'http_429')";
  int64_t transient = env.Q("SELECT count(*) FROM posts WHERE state='failed' AND " + kTransient);
  int64_t permanent = env.Q("SELECT count(*) FROM posts WHERE state='failed' AND NOT " + kTransient);
  ASSERT_GT(transient, 0);
  ASSERT_GT(permanent, 0);
  auto attempts = [&](const std::string& cls) {
    return env.Q("SELECT COALESCE(sum(f.attempts), 0) FROM frontier f JOIN posts p ON p.id = f.post_id "
                 "WHERE p.state='failed' AND " + cls);
  };
  const std::string kTrans =
      "(p.error IN ('timeout','truncated','connect','transport') OR p.error LIKE 'http_5%' OR p.error = 'http_429')";
  const std::string kPerm = "NOT " + kTrans;
  int64_t perm_before = attempts(kPerm), trans_before = attempts(kTrans);
  auto again = Crawl(env.ws, o);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(attempts(kPerm), perm_before);  // permanent failures were not asked for again
  EXPECT_GE(attempts(kTrans), trans_before + transient);
  EXPECT_EQ(env.Posts(), posts);
  CheckInvariants(env);
}

TEST(CrawlE2E, RobotsObeyRefusesDisallowedApiPages) {
  auto booru = StartBooru(5);
  Env env("robots");
  auto o = Opts("danbooru", booru->base_url());
  o.robots = "obey";
  auto s = Crawl(env.ws, o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("robots.txt"), std::string::npos) << s.status().ToString();
  EXPECT_EQ(booru->stats().api_requests, 0);  // /*.json is disallowed: never asked
  EXPECT_EQ(env.Q("SELECT count(*) FROM robots_cache"), 1);
}

TEST(CrawlE2E, UrlListObeysRobotsAndLimits) {
  auto booru = StartBooru(12);
  Env env("urls");
  std::string list = env.dir + "/list.txt";
  std::set<std::string> distinct;
  {
    std::ofstream f(list);
    f << "# images\n";
    for (int id = 1; id <= 12; ++id) {
      auto meta = booru->Post(id);
      ASSERT_TRUE(meta.ok());
      std::string url = booru->base_url() + "/data/original/" + meta->md5.substr(0, 2) + "/" +
                        meta->md5.substr(2, 2) + "/" + meta->md5 + "." + meta->file_ext;
      distinct.insert(url);  // byte-identical duplicates share a URL: one post
      f << url << "\n";
    }
    f << "ftp://example.com/x.png\n";
    // Danbooru's robots.txt disallows /posts/random... and this path pattern: a page, not an image.
    f << booru->base_url() << "/posts/random.png\n";
  }
  auto o = Opts("urls", list);
  o.limit = 13;
  auto s = Crawl(env.ws, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts"), static_cast<int64_t>(distinct.size()) + 1);
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state IN ('stored','duplicate')"),
            static_cast<int64_t>(distinct.size()))
      << s->ToLine();
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state='skipped' AND error='robots'"), 1) << s->ToLine();
  CheckInvariants(env);
}

TEST(CrawlE2E, LocalFolderWithLabelsCsv) {
  Env env("dir");
  std::string src = std::string(MOEFORGE_SOURCE_DIR) + "/../shared/assets/faces/mlds_extra_96";
  auto o = Opts("dir", src);
  o.limit = 60;
  auto s = Crawl(env.ws, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->failed, 0) << s->ToLine();
  EXPECT_EQ(s->done + s->skipped, 60) << s->ToLine();
  // 33431.jpg,aqua,aqua -> aqua_hair, aqua_eyes
  EXPECT_EQ(env.Q("SELECT count(*) FROM v_source_tags WHERE source='dir' AND remote_id='33431.jpg' "
                  "AND tag IN ('aqua_hair','aqua_eyes')"),
            2);
  EXPECT_EQ(env.Q("SELECT count(DISTINCT post_id) FROM v_source_tags"), 60);
  CheckInvariants(env);
  // Idempotent.
  auto again = Crawl(env.ws, o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->done + again->skipped + again->failed, 0) << again->ToLine();
}

TEST(CrawlE2E, LocalFolderWithSidecars) {
  Env env("sidecars");
  std::string src = env.dir + "/in";
  fs::create_directories(src + "/sub");
  std::string faces = std::string(MOEFORGE_SOURCE_DIR) + "/../shared/assets/faces/mlds_extra_96/";
  fs::copy_file(faces + "33431.jpg", src + "/a.jpg");
  fs::copy_file(faces + "33433.jpg", src + "/sub/b.jpg");
  fs::copy_file(faces + "33431.jpg", src + "/sub/a_copy.jpg");  // exact duplicate
  std::ofstream(src + "/a.txt") << "blonde hair, blue eyes, smile";
  std::ofstream(src + "/sub/b.jpg.txt") << "pink_hair red_eyes";
  std::ofstream(src + "/notes.md") << "not an image";
  auto s = Crawl(env.ws, Opts("dir", src));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->done, 2) << s->ToLine();
  EXPECT_EQ(s->skipped, 1) << s->ToLine();
  EXPECT_EQ(env.Q("SELECT count(*) FROM v_source_tags WHERE remote_id='a.jpg' AND tag IN ('blonde_hair','blue_eyes','smile')"), 3);
  EXPECT_EQ(env.Q("SELECT count(*) FROM v_source_tags WHERE remote_id='sub/b.jpg' AND tag IN ('pink_hair','red_eyes')"), 2);
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE remote_id='sub/a_copy.jpg' AND state='duplicate' AND dup_distance=0"), 1);
  CheckInvariants(env);
}

TEST(CrawlE2E, BadOptionsAreInvalidArgument) {
  Env env("bad");
  struct Case {
    const char* source;
    const char* url;
    const char* robots;
  };
  const Case kCases[] = {{"flickr", "http://x", "auto"}, {"danbooru", "", "auto"},
                         {"danbooru", "ftp://x", "auto"}, {"danbooru", "http://x", "sometimes"}};
  for (const auto& c : kCases) {
    auto o = Opts(c.source, c.url);
    o.robots = c.robots;
    auto s = Crawl(env.ws, o);
    ASSERT_FALSE(s.ok()) << c.source << " " << c.url;
    EXPECT_EQ(s.status().ExitCode(), 2) << s.status().ToString();
  }
}

}  // namespace
}  // namespace moeforge::crawler
