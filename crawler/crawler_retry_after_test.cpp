// A 429 with Retry-After is waited for: the crawl asks for the image again no sooner than
// the server said, where its own backoff (0.25 s, 0.5 s) would have asked much sooner.
#include <gtest/gtest.h>

#include <chrono>

#include "crawler/crawler.h"
#include "crawler/test_util.h"
#include "demo_booru/server.h"

namespace moeforge::crawler {
namespace {

using testing_util::CheckInvariants;
using testing_util::Env;

// Crawls `posts` posts whose image requests all answer 429 with Retry-After
// `retry_after_s` twice (the demo's fail_first) before 200; returns the crawl's seconds.
double CrawlThrough429(int posts, int retry_after_s, Env& env) {
  demo::DemoBooru::Options bo;
  bo.posts = posts;
  bo.seed = 5;
  bo.faults = "rate429=1,fail_first=2,retry_after=" + std::to_string(retry_after_s);
  demo::DemoBooru booru(bo);
  EXPECT_TRUE(booru.Start().ok());
  CrawlOptions o;
  o.source = "danbooru";
  o.url = booru.base_url();
  o.quiet = true;
  o.retries = 3;
  o.concurrency = 4;
  auto t0 = std::chrono::steady_clock::now();
  auto s = Crawl(env.ws, o);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(booru.stats().faults_injected, 2 * posts);
  return secs;
}

TEST(CrawlRetryAfter, A429IsRetriedNoSoonerThanItsRetryAfter) {
  Env env("retry_after");
  double secs = CrawlThrough429(3, 2, env);
  // Two 429s per image, each with Retry-After: 2 -> at least 4 s before the 200.
  EXPECT_GE(secs, 3.9) << "the crawl retried before Retry-After";
  EXPECT_LT(secs, 30.0) << "the crawl waited far longer than Retry-After";
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state IN ('stored','duplicate')"), 3);
  CheckInvariants(env);

  // The control: Retry-After: 0 leaves only the crawl's own short backoff.
  Env quick("retry_after_0");
  double quick_secs = CrawlThrough429(3, 0, quick);
  EXPECT_LT(quick_secs, 3.0) << "without Retry-After the same crawl should be quick";
  EXPECT_EQ(quick.Q("SELECT count(*) FROM posts WHERE state IN ('stored','duplicate')"), 3);
}

}  // namespace
}  // namespace moeforge::crawler
