// Issue 19, crawling real sites the way gallery-dl users do, against the demo booru's site
// rules: id cursors past the page cap in all three dialects (and a resume after SIGKILL on
// a cursor page), pacing measured from the server's own request log, filters decided
// before download (the server's per-post hit counts prove no image was asked for), the
// anonymous tag limit, posts that cannot be had, sample renditions (fewer bytes, crops still
// made), WebP originals, a challenge page that stops the crawl, Gelbooru's credentials, a
// Retry-After cut by --retry-after-max, and metadata sidecars.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/models.h"
#include "crawler/crawler.h"
#include "crawler/test_util.h"
#include "demo_booru/server.h"

namespace moeforge::crawler {
namespace {

namespace fs = std::filesystem;
using testing_util::CheckInvariants;
using testing_util::Env;
constexpr uint64_t kSeed = 19;

std::unique_ptr<demo::DemoBooru> StartBooru(demo::DemoBooru::Options o) {
  o.seed = kSeed;
  o.threads = 16;
  o.log_requests = true;
  auto b = std::make_unique<demo::DemoBooru>(o);
  Status s = b->Start();
  EXPECT_TRUE(s.ok()) << s.ToString();
  return b;
}

demo::DemoBooru::Options Posts(int n) {
  demo::DemoBooru::Options o;
  o.posts = n;
  return o;
}

CrawlOptions Opts(const std::string& source, const std::string& url) {
  CrawlOptions o;
  o.source = source;
  o.url = url;
  o.concurrency = 4;
  o.quiet = true;
  o.timeout_s = 5;
  o.near_dup_threshold = -1;  // every post's own file: counts stay simple
  return o;
}

int64_t Extra(const db::StageSummary& s, const std::string& reason) {
  auto it = s.extra.find("skipped_by_reason");
  if (it == s.extra.end() || !it->contains(reason)) return 0;
  return (*it)[reason].get<int64_t>();
}

int CountTargets(const demo::DemoBooru& b, const std::string& needle) {
  int n = 0;
  for (const auto& e : b.request_log())
    if (e.target.find(needle) != std::string::npos) ++n;
  return n;
}

// More posts than the page cap lets numbered pages reach: every dialect gets them all
// through its id cursor, and never asks for a numbered page beyond the first.
TEST(CrawlSites, IdCursorsCarryPastThePageCapInEveryDialect) {
  struct Case {
    const char* source;
    const char* cursor;    // what a cursor request's target holds
    const char* numbered;  // a numbered page beyond the first
  } cases[] = {{"danbooru", "page=b", "page=2&"}, {"moebooru", "id%3A%3C", "page=2&"}, {"gelbooru", "id%3A%3C", "pid=1&"}};
  for (const auto& c : cases) {
    auto o = Posts(70);
    o.page_cap = 2;  // 2 pages of 10: numbered paging would end at 20 posts
    auto booru = StartBooru(o);
    Env env(std::string("cursor_") + c.source);
    auto co = Opts(c.source, booru->base_url());
    co.page_limit = 10;
    auto s = Crawl(env.ws, co);
    ASSERT_TRUE(s.ok()) << c.source << ": " << s.status().ToString();
    EXPECT_EQ(env.Q("SELECT count(*) FROM posts"), 70) << c.source;
    EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state IN ('stored','duplicate')"), 70) << c.source << " " << s->ToLine();
    EXPECT_GE(CountTargets(*booru, c.cursor), 6) << c.source;
    EXPECT_EQ(CountTargets(*booru, c.numbered), 0) << c.source;
    EXPECT_EQ(env.Q("SELECT count(*) FROM crawl_cursors WHERE state='done' AND next_before > 0"), 1) << c.source;
    CheckInvariants(env);
  }
}


// A crawl killed with SIGKILL while it pages by cursor resumes from the recorded cursor
// and ends with every post, asking for no numbered page beyond the first. The crawl that is
// killed is the real binary: a fork of this process (its server's threads running) may
// not start threads of its own, and a lock another thread held at the fork stays held.
TEST(CrawlSites, ResumesAfterSigkillOnACursorPage) {
  std::string bin = testing_util::Binary();
  ASSERT_TRUE(fs::exists(bin)) << bin << " is not built";
  auto o = Posts(60);
  o.page_cap = 1;
  auto booru = StartBooru(o);
  Env env("cursor_kill");
  auto co = Opts("danbooru", booru->base_url());
  co.page_limit = 5;
  // --rate 8: slow enough to be caught between pages; the rest as Opts() sets it.
  pid_t pid = testing_util::Spawn({bin, "crawl", "-w", env.dir, "--source", "danbooru", "--url", booru->base_url(),
                                   "--page-limit", "5", "--rate", "8", "--jitter", "0", "--concurrency", "4",
                                   "--timeout", "5", "--near-dup-threshold", "-1", "--quiet"});
  ASSERT_GT(pid, 0);
  bool on_cursor = false;
  for (int i = 0; i < 400 && !on_cursor; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    auto db = db::OpenWorkspace(env.ws);
    if (!db.ok()) continue;
    auto n = (*db)->QueryInt("SELECT count(*) FROM crawl_cursors WHERE state='paging' AND next_before > 0 AND next_page >= 3");
    on_cursor = n.ok() && *n > 0;
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(on_cursor) << "the crawl never reached a cursor page";
  ASSERT_TRUE(WIFSIGNALED(status)) << "the crawl ended before it was killed";
  int64_t before = env.Q("SELECT next_before FROM crawl_cursors");
  EXPECT_GT(before, 0);
  EXPECT_LT(env.Q("SELECT count(*) FROM posts"), 60);
  auto s = Crawl(env.ws, co);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts"), 60);
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state IN ('stored','duplicate')"), 60);
  EXPECT_EQ(CountTargets(*booru, "page=2&"), 0);
  EXPECT_GE(CountTargets(*booru, "page=b" + std::to_string(before) + "&"), 1) << "the resume starts at the cursor";
  CheckInvariants(env);
}

// Request start times, as the server logged them, across the API host and the file host
// (127.0.0.1 and localhost: one site, one budget) are never closer than the interval.
TEST(CrawlSites, PacingCoversApiAndFileHostsWithinIntervalAndJitter) {
  auto o = Posts(12);
  o.file_host = "localhost";
  auto booru = StartBooru(o);
  Env env("pacing");
  auto co = Opts("danbooru", booru->base_url());
  co.page_limit = 6;
  co.rate = 10;       // 0.1 s
  co.jitter_s = 0.05; // 0.10-0.15 s apart
  auto t0 = std::chrono::steady_clock::now();
  auto s = Crawl(env.ws, co);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto log = booru->request_log();
  std::set<std::string> hosts;
  for (const auto& e : log) hosts.insert(e.host.substr(0, e.host.find(':')));
  EXPECT_EQ(hosts, (std::set<std::string>{"127.0.0.1", "localhost"}));
  ASSERT_GE(log.size(), 14u);  // 3 pages + 12 images
  std::vector<double> t;
  for (const auto& e : log) t.push_back(e.t);
  std::sort(t.begin(), t.end());
  double min_gap = 1e9;
  for (size_t i = 1; i < t.size(); ++i) min_gap = std::min(min_gap, t[i] - t[i - 1]);
  EXPECT_GE(min_gap, 0.1 - 0.01) << "two requests to the site closer than the interval";
  // Bounded: the whole crawl is paced, not stalled (generous for a loaded machine).
  double span = t.back() - t.front();
  EXPECT_GE(span, (t.size() - 1) * 0.1 - 0.01);
  EXPECT_LT(took, (t.size() - 1) * 0.15 + 10.0);
}

// Filtered posts cost no image request and are counted by reason; other filters decide
// them anew on the next pass.
TEST(CrawlSites, FiltersDownloadNothingAndCountByReason) {
  auto booru = StartBooru(Posts(40));
  Env env("filters");
  auto co = Opts("danbooru", booru->base_url());
  co.rating = "g";
  co.exclude_tags = "hat";
  auto s = Crawl(env.ws, co);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  int rating = 0, hat = 0;
  for (int id = 1; id <= 40; ++id) {
    auto m = booru->Post(id).value();
    bool has_hat = std::count(m.tags.begin(), m.tags.end(), "hat") > 0;
    std::string want;
    if (m.rating != demo::Rating::kGeneral) want = "filtered:rating";
    else if (has_hat) want = "filtered:exclude_tags";
    auto st = env.Posts()[std::to_string(id)];
    if (!want.empty()) {
      EXPECT_EQ(st.first, "skipped") << id;
      EXPECT_EQ(st.second, want) << id;
      EXPECT_EQ(booru->OriginalHits(id), 0) << "filtered post " << id << " was downloaded";
      (want == "filtered:rating" ? rating : hat)++;
    } else {
      EXPECT_NE(st.first, "skipped") << id;
    }
  }
  ASSERT_GT(rating, 0);
  ASSERT_GT(hat, 0);
  EXPECT_EQ(Extra(*s, "filtered:rating"), rating) << s->ToLine();
  EXPECT_EQ(Extra(*s, "filtered:exclude_tags"), hat) << s->ToLine();
  // Without the blacklist, the next pass lists the query again and fetches those posts.
  co.exclude_tags = "";
  auto again = Crawl(env.ws, co);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE error='filtered:exclude_tags'"), 0);
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE error='filtered:rating'"), rating);
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state IN ('stored','duplicate')"), 40 - rating);
  CheckInvariants(env);
}

// Crawls `co` over the booru's posts 1..n, where `stops(post)` says whether the filter `what`
// should stop the post: a stopped post is recorded as skipped with "filtered:<what>", its
// image never asked for (the server's hit count), and the summary counts it under that
// reason; every other post is stored. Returns how many were stopped; both kinds must occur.
int ExpectFilteredBy(demo::DemoBooru& booru, const CrawlOptions& co, int n, const std::string& what,
                     const std::function<bool(const demo::PostMeta&)>& stops) {
  Env env("filter_" + what);
  auto s = Crawl(env.ws, co);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return 0;
  auto posts = env.Posts();
  int stopped = 0;
  for (int id = 1; id <= n; ++id) {
    auto m = booru.Post(id).value();
    auto st = posts[std::to_string(id)];
    if (stops(m)) {
      EXPECT_EQ(st, std::make_pair(std::string("skipped"), "filtered:" + what)) << what << " " << id;
      EXPECT_EQ(booru.OriginalHits(id), 0) << what << ": filtered post " << id << " was downloaded";
      ++stopped;
    } else {
      EXPECT_TRUE(st.first == "stored" || st.first == "duplicate") << what << " " << id << " " << st.first;
    }
  }
  EXPECT_GT(stopped, 0) << what << ": the filter stopped nothing, the test proves little";
  EXPECT_LT(stopped, n) << what << ": the filter stopped everything";
  EXPECT_EQ(Extra(*s, "filtered:" + what), stopped) << s->ToLine();
  CheckInvariants(env);
  return stopped;
}

// The median of `v` (sorted copy).
template <typename T>
T Median(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

TEST(CrawlSites, MinSizeFilterDownloadsNothingItStops) {
  auto booru = StartBooru(Posts(40));
  std::vector<int> w, h;
  for (int id = 1; id <= 40; ++id) {
    w.push_back(booru->Post(id).value().width);
    h.push_back(booru->Post(id).value().height);
  }
  const int mw = Median(w), mh = Median(h);
  auto co = Opts("danbooru", booru->base_url());
  co.min_size = std::to_string(mw) + "x" + std::to_string(mh);
  ExpectFilteredBy(*booru, co, 40, "min_size",
                   [&](const demo::PostMeta& m) { return m.width < mw || m.height < mh; });
}

TEST(CrawlSites, AspectFilterDownloadsNothingItStops) {
  auto booru = StartBooru(Posts(40));
  std::vector<double> a;
  for (int id = 1; id <= 40; ++id) {
    auto m = booru->Post(id).value();
    a.push_back(static_cast<double>(m.width) / m.height);
  }
  std::sort(a.begin(), a.end());
  // The middle half of the posts' shapes, as the user would write the bounds.
  char bounds[64];
  std::snprintf(bounds, sizeof bounds, "%.4f:%.4f", a[10], a[30]);
  const double lo = std::strtod(bounds, nullptr), hi = std::strtod(std::strchr(bounds, ':') + 1, nullptr);
  auto co = Opts("danbooru", booru->base_url());
  co.aspect = bounds;
  ExpectFilteredBy(*booru, co, 40, "aspect", [&](const demo::PostMeta& m) {
    double r = static_cast<double>(m.width) / m.height;
    return r < lo || r > hi;
  });
}

TEST(CrawlSites, ExtFilterDownloadsNothingItStops) {
  auto o = Posts(40);
  o.webp_rate = 0.3;  // png, jpg and webp originals
  auto booru = StartBooru(o);
  auto co = Opts("danbooru", booru->base_url());
  co.ext = "png,.WEBP";  // a dot and any case are accepted
  ExpectFilteredBy(*booru, co, 40, "ext", [](const demo::PostMeta& m) { return m.file_ext == "jpg"; });
}

// --max-posts-per-query: the query stops once that many posts passed; the rest of the last
// page is counted (not recorded) and no later page is asked for.
TEST(CrawlSites, MaxPostsPerQueryStopsTheQueryAndCountsTheRest) {
  auto booru = StartBooru(Posts(40));
  Env env("filter_max_posts");
  auto co = Opts("danbooru", booru->base_url());
  co.page_limit = 10;
  co.max_posts_per_query = 13;  // pages of 10, newest first: ids 40..28 taken, 27..21 listed
  auto s = Crawl(env.ws, co);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts"), 13);
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state IN ('stored','duplicate') AND CAST(remote_id AS INTEGER) "
                  ">= 28"),
            13);
  EXPECT_EQ(Extra(*s, "max_posts_per_query"), 7) << s->ToLine();
  EXPECT_EQ(booru->stats().api_requests, 2) << "no page after the one where the cap was reached";
  std::set<std::string> taken_md5;
  for (int id = 28; id <= 40; ++id) taken_md5.insert(booru->Post(id).value().md5);
  for (int id = 1; id <= 27; ++id) {
    auto m = booru->Post(id).value();
    if (taken_md5.count(m.md5)) continue;  // an exact duplicate of a taken post: one URL
    EXPECT_EQ(booru->OriginalHits(id), 0) << "post " << id << " beyond the cap was downloaded";
  }
  CheckInvariants(env);
}

// An anonymous Danbooru search of three terms is refused by the site; the crawl sends two
// and checks the third itself.
TEST(CrawlSites, AnonymousTagLimitMovesExtraTermsToOurSide) {
  auto o = Posts(40);
  o.anon_tag_limit = true;
  auto booru = StartBooru(o);
  Env env("taglimit");
  auto co = Opts("danbooru", booru->base_url());
  co.tags = "original -hat smile";
  auto s = Crawl(env.ws, co);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  for (const auto& e : booru->request_log())
    if (e.target.find("/posts.json") == 0) EXPECT_EQ(e.target.find("smile"), std::string::npos) << e.target;
  int want = 0;
  for (int id = 1; id <= 40; ++id) {
    auto m = booru->Post(id).value();
    bool ok = std::count(m.tags.begin(), m.tags.end(), "smile") && !std::count(m.tags.begin(), m.tags.end(), "hat");
    if (ok) ++want;
    if (!ok) EXPECT_EQ(booru->OriginalHits(id), 0) << id;
  }
  EXPECT_GT(want, 0);
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state IN ('stored','duplicate')"), want);
}

// Deleted, banned, restricted, video and ugoira posts are recorded with their reason, never
// asked for, and not asked for again on the next run.
TEST(CrawlSites, UnavailablePostsRecordedByReason) {
  auto o = Posts(50);
  o.unavailable_rate = 0.4;
  auto booru = StartBooru(o);
  for (const char* source : {"danbooru", "moebooru", "gelbooru"}) {
    Env e2(std::string("unavail_") + source);
    auto co = Opts(source, booru->base_url());
    auto s = Crawl(e2.ws, co);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    std::set<std::string> reasons;
    auto posts = e2.Posts();
    for (int id = 1; id <= 50; ++id) {
      auto m = booru->Post(id).value();
      if (m.unavailable.empty()) continue;
      std::string want = m.unavailable;
      if (std::string(source) == "gelbooru" && want == "banned") want = "restricted";  // no such flag there
      if (std::string(source) == "moebooru" && want == "banned") want = "restricted";
      EXPECT_EQ(posts[std::to_string(id)], std::make_pair(std::string("skipped"), want)) << source << " " << id;
      EXPECT_EQ(booru->OriginalHits(id), 0) << id;
      reasons.insert(want);
    }
    // Five kinds on Danbooru; the others have no banned flag (it reads as restricted).
    EXPECT_GE(reasons.size(), std::string(source) == "danbooru" ? 4u : 3u) << source;
    int64_t requests = booru->stats().image_requests;
    auto again = Crawl(e2.ws, co);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(booru->stats().image_requests, requests) << "nothing is asked for again";
  }
}

// A challenge page stops the crawl with a message saying what happened, without a retry
// storm: the server sees a bounded number of requests.
TEST(CrawlSites, ChallengePageStopsTheCrawlWithBoundedRequests) {
  auto o = Posts(80);
  o.challenge_after = 6;
  auto booru = StartBooru(o);
  Env env("challenge");
  auto co = Opts("danbooru", booru->base_url());
  co.page_limit = 10;
  co.retries = 5;
  auto s = Crawl(env.ws, co);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("challenge"), std::string::npos) << s.status().ToString();
  EXPECT_NE(s.status().message().find("--rate"), std::string::npos) << s.status().ToString();
  // 6 served, then at most what was already in flight when the first challenge came back.
  EXPECT_LE(booru->stats().requests, 6 + co.concurrency + 2);
  EXPECT_GE(booru->stats().challenges, 1);
  CheckInvariants(env);
}

// Gelbooru has asked for an API key since 2025: a 401 or 403 (not a challenge page) stops
// the crawl at once with a message naming the variables to set; with them set, it runs.
TEST(CrawlSites, GelbooruRefusalNamesTheCredentialVariables) {
  ::unsetenv("MOEFORGE_GELBOORU_USER_ID");
  ::unsetenv("MOEFORGE_GELBOORU_API_KEY");
  for (int status : {401, 403}) {
    auto o = Posts(12);
    o.gelbooru_key_status = status;
    auto booru = StartBooru(o);
    Env env("gelbooru_key_" + std::to_string(status));
    auto co = Opts("gelbooru", booru->base_url());
    co.retries = 5;
    auto s = Crawl(env.ws, co);
    ASSERT_FALSE(s.ok()) << status;
    const std::string msg = s.status().message();
    EXPECT_NE(msg.find("HTTP " + std::to_string(status)), std::string::npos) << msg;
    EXPECT_NE(msg.find("without credentials"), std::string::npos) << msg;
    EXPECT_NE(msg.find("MOEFORGE_GELBOORU_USER_ID"), std::string::npos) << msg;
    EXPECT_NE(msg.find("MOEFORGE_GELBOORU_API_KEY"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("challenge"), std::string::npos) << "not a challenge page: " << msg;
    EXPECT_EQ(booru->stats().api_requests, 1) << "a refusal is not retried";
    EXPECT_EQ(booru->stats().image_requests, 0);
    // The same crawl with the credentials the message names.
    ::setenv("MOEFORGE_GELBOORU_USER_ID", "1234", 1);
    ::setenv("MOEFORGE_GELBOORU_API_KEY", "demo-key", 1);
    auto ok = Crawl(env.ws, co);
    ::unsetenv("MOEFORGE_GELBOORU_USER_ID");
    ::unsetenv("MOEFORGE_GELBOORU_API_KEY");
    ASSERT_TRUE(ok.ok()) << ok.status().ToString();
    EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state IN ('stored','duplicate')"), 12);
  }
}

// A Retry-After far beyond --retry-after-max is cut to it, with a message, for API pages
// and images alike: the real binary, every API page and image answered 429 + Retry-After:
// 3600 once, ends in seconds.
TEST(CrawlSites, RetryAfterMaxCapsALongWaitWithAMessage) {
  std::string bin = testing_util::Binary();
  ASSERT_TRUE(fs::exists(bin)) << "the moeforge target is not built";
  auto o = Posts(6);
  o.faults = "api429=1,rate429=1,fail_first=1,retry_after=3600";
  auto booru = StartBooru(o);
  Env env("retry_after_max");
  auto t0 = std::chrono::steady_clock::now();
  auto [rc, out] = testing_util::RunCapture({bin, "crawl", "-w", env.dir, "--source", "danbooru", "--url",
                                             booru->base_url(), "--retry-after-max", "1", "--retries", "3",
                                             "--near-dup-threshold=-1", "--quiet", "--json"});
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("the site asked to wait 3600 s (Retry-After); waiting 1 s instead (--retry-after-max)"),
            std::string::npos)
      << out;
  EXPECT_LT(took, 60.0) << "the 3600 s Retry-After was not cut";
  EXPECT_GE(booru->stats().faults_injected, 6 + 1) << "every image and the API page met a 429";
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state IN ('stored','duplicate')"), 6);
  EXPECT_NE(out.find("\"retry_after_cut_s\":3600"), std::string::npos) << out;
}

// --variant sample fetches the site's sample (fewer bytes); auto keeps the original when no
// rendition reaches --min-variant-px. Samples are stored with the variant recorded, and
// WebP originals are stored as WebP.
TEST(CrawlSites, SampleVariantFetchesFewerBytesAndWebpIsStored) {
  auto o = Posts(30);
  o.sample_px = 320;
  o.webp_rate = 0.3;
  auto booru = StartBooru(o);
  Env orig("variant_orig"), sample("variant_sample"), autov("variant_auto");
  auto co = Opts("danbooru", booru->base_url());
  ASSERT_TRUE(Crawl(orig.ws, co).ok());
  auto s0 = booru->stats();
  co.variant = "sample";
  auto s = Crawl(sample.ws, co);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto s1 = booru->stats();
  int with_sample = 0;
  for (int id = 1; id <= 30; ++id)
    if (booru->Post(id).value().sample_width > 0) ++with_sample;
  ASSERT_GT(with_sample, 10);
  EXPECT_EQ(s1.sample_requests - s0.sample_requests, with_sample);
  int64_t orig_bytes = s0.original_bytes;
  int64_t sample_run_bytes = (s1.original_bytes - s0.original_bytes) + (s1.sample_bytes - s0.sample_bytes);
  EXPECT_LT(sample_run_bytes, orig_bytes * 3 / 4) << "samples should cost well under the originals' bytes";
  EXPECT_EQ(sample.Q("SELECT count(*) FROM posts WHERE variant='sample'"), with_sample);
  EXPECT_EQ(sample.Q("SELECT count(*) FROM posts WHERE state IN ('stored','duplicate')"), 30);
  EXPECT_GT(orig.Q("SELECT count(*) FROM images WHERE format='webp' AND blob_path IS NOT NULL"), 0);
  // auto with a shorter side of 2000 px: nothing reaches it, so originals.
  co.variant = "auto";
  co.min_variant_px = 2000;
  ASSERT_TRUE(Crawl(autov.ws, co).ok());
  EXPECT_EQ(autov.Q("SELECT count(*) FROM posts WHERE variant='original'"), 30);
  CheckInvariants(sample);
}

// Runs detect (lbpcascade_animeface, the real binary) on the workspace; returns the crops
// made per rendition the posts were fetched as.
std::map<std::string, int64_t> CropsByVariant(Env& env) {
  std::string bin = testing_util::Binary();
  EXPECT_EQ(testing_util::WaitExit(testing_util::Spawn({bin, "detect", "-w", env.dir, "--detector", "cascade",
                                                        "--threads", "2"})),
            0);
  std::map<std::string, int64_t> out;
  for (const char* v : {"original", "sample"})
    out[v] = env.Q(std::string("SELECT count(*) FROM faces WHERE crop_path IS NOT NULL AND image_sha256 IN (SELECT "
                               "image_sha256 FROM posts WHERE variant='") + v + "')");
  return out;
}

// The sample rendition costs fewer bytes and still gives face crops: detect on a sample
// crawl makes crops from the samples, and most as many as from the originals.
TEST(CrawlSites, SampleVariantStillGivesFaceCrops) {
  if (!ResolveModel("lbpcascade_animeface").ok()) GTEST_SKIP() << "lbpcascade_animeface not on MOEFORGE_MODEL_PATH";
  ASSERT_TRUE(fs::exists(testing_util::Binary())) << "the moeforge target is not built";
  auto o = Posts(30);
  o.sample_px = 480;
  auto booru = StartBooru(o);
  Env orig("crops_orig"), sample("crops_sample");
  auto co = Opts("danbooru", booru->base_url());
  ASSERT_TRUE(Crawl(orig.ws, co).ok());
  co.variant = "sample";
  ASSERT_TRUE(Crawl(sample.ws, co).ok());
  ASSERT_GT(sample.Q("SELECT count(*) FROM posts WHERE variant='sample' AND state='stored'"), 10);
  int64_t from_originals = CropsByVariant(orig)["original"];
  auto s = CropsByVariant(sample);
  ASSERT_GT(from_originals, 10) << "the cascade found few faces in the originals: the comparison proves little";
  EXPECT_GT(s["sample"], 0) << "no crop from any sample";
  EXPECT_GE((s["sample"] + s["original"]) * 4, from_originals * 3)
      << "sample crawl: " << s["sample"] << " crops from samples + " << s["original"]
      << " from originals; original crawl: " << from_originals;
  std::fprintf(stderr, "crops: original crawl %lld; sample crawl %lld from samples + %lld from originals\n",
               static_cast<long long>(from_originals), static_cast<long long>(s["sample"]),
               static_cast<long long>(s["original"]));
}

// --write-metadata puts the post's API record beside each blob; the orphan sweep keeps it.
TEST(CrawlSites, WriteMetadataSidecars) {
  auto booru = StartBooru(Posts(10));
  Env env("sidecars");
  auto co = Opts("danbooru", booru->base_url());
  co.write_metadata = true;
  ASSERT_TRUE(Crawl(env.ws, co).ok());
  auto db = env.Db();
  auto st = db->Prepare("SELECT p.remote_id, i.blob_path FROM posts p JOIN images i ON i.sha256=p.image_sha256 "
                        "WHERE p.state='stored'").value();
  int n = 0;
  while (st.Step().value()) {
    std::ifstream in(env.ws.Abs(st.Text(1)) + ".json");
    ASSERT_TRUE(in.good()) << st.Text(1);
    auto j = nlohmann::json::parse(in);
    EXPECT_EQ(std::to_string(j["id"].get<int64_t>()), st.Text(0));
    ++n;
  }
  EXPECT_GT(n, 0);
}

}  // namespace
}  // namespace moeforge::crawler
