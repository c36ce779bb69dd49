// Issue 19, crawling real sites the way gallery-dl users do, against the demo booru's site
// rules: id cursors past the page cap in all three dialects (and a resume after SIGKILL on
// a cursor page), pacing measured from the server's own request log, filters decided
// before download (the server's per-post hit counts prove no image was asked for), the
// anonymous tag limit, posts that cannot be had, sample renditions, WebP originals, a
// challenge page that stops the crawl, and metadata sidecars.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

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

}  // namespace
}  // namespace moeforge::crawler
