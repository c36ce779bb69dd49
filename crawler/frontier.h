// The frontier of one crawl: what sources (crawler/source.h) yield into. Every post
// becomes posts, source_tags and frontier rows (one transaction per batch, together with
// the source's own cursor rows), and its image is fetched through the one HTTP client (or
// read from disk, for local files) and handed to the Ingestor (crawler/ingest.h). It also
// holds what every source shares: the politeness policy, robots.txt rules, the counters
// and the progress line.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/http.h"
#include "core/progress.h"
#include "core/status.h"
#include "core/workspace.h"
#include "crawler/booru_api.h"
#include "crawler/crawler.h"
#include "crawler/ingest.h"
#include "crawler/robots.h"
#include "crawler/work_pool.h"
#include "db/db.h"
#include "db/stage_run.h"

namespace moeforge::crawler {

class PostSource;

// A post as a source found it.
struct NewPost {
  std::string remote_id;
  std::string md5, file_url, page_url, rating, file_ext, created_at, meta_json;
  int64_t width = 0, height = 0;
  std::vector<std::pair<std::string, std::string>> tags;  // (tag, category or "")
  std::string skip_reason;  // non-empty: not fetched (restricted, not_image, robots, filtered:<why>)
  std::string variant;      // the rendition file_url names (original, sample, ...); "" for non-booru
  int depth = 0;            // html: link depth of the page it was found on
  std::string local_path;   // set: read this file instead of fetching file_url (no frontier row)
};
NewPost FromRecord(PostRecord r);  // pass an rvalue where the record is not needed after

bool IsHttpUrl(const std::string& url);
std::string StripSlash(std::string url);

// Binds an optional text: NULL when empty.
template <typename S>
void BindText(S* st, int i, const std::string& v) {
  if (v.empty()) {
    st->Bind(i, nullptr);
  } else {
    st->Bind(i, v);
  }
}

class Frontier {
 public:
  Frontier(const Workspace& ws, const CrawlOptions& o, db::Database& wdb, db::Database& rdb, int64_t source_id);
  ~Frontier();

  // Runs `source` to its end, then waits for every image and commits.
  Status Run(PostSource& source);
  void FillSummary(db::StageSummary& sum);
  // Stops the client and commits what is queued (before the summary row is written).
  void DropWriter();

  // ---- for sources ----
  const CrawlOptions& options() const { return o_; }
  int64_t source_id() const { return source_id_; }
  db::Database& reader() { return rdb_; }
  // The source's own rows (cursors, page rows), committed in order with the posts.
  db::BatchWriter& writer() { return *writer_; }
  http::Client& http() { return *http_; }
  CrawlCounters& counters() { return counters_; }
  Progress& progress() { return *progress_; }
  // The politeness choice in words ("loopback: no rate limit"), and the API's origin.
  const std::string& policy() const { return policy_; }
  const std::string& api_origin() const { return api_origin_; }
  // Whether robots.txt is consulted for API pages (`api_page`) or other URLs.
  bool ObeyRobotsFor(bool api_page) const;
  Result<bool> RobotsAllow(const std::string& url, bool api_page);
  // Images in flight at most (a source sizes it to its page size).
  void set_window(int64_t images) { window_ = images; }
  // Fetches the queued images an interrupted run left.
  Status ResumeQueued();
  // Upserts `posts` with their tags and image rows, runs `extra` (the source's rows) in the
  // same transaction, commits, and starts fetching the images not yet fetched. Blocks while
  // the window is full.
  Status Yield(std::vector<NewPost> posts, std::function<Status(db::Database&)> extra = nullptr);
  // Yield() on the frontier's own thread: returns once the posts are handed over (at most
  // one page waits there besides the one being yielded), so that the source fetches and
  // reads its next page while this one commits and its images start; pages are yielded in
  // the order given. For sources that do not read back what they yielded before Drain().
  // A failed hand-off comes back from the next call (and from Drain()'s writer Flush()).
  Status YieldAhead(std::vector<NewPost> posts, std::function<Status(db::Database&)> extra = nullptr);
  // Waits until every page handed to YieldAhead() is yielded and every image yielded so far
  // is decided, its rows submitted.
  void Drain();
  void DrawProgress();
  // Says, once per new longest wait, that a site's Retry-After was cut to --retry-after-max
  // (API pages and images alike); the source calls it after each page, Run() at the end.
  void ReportRetryAfterCut();
  // True once a file request met a challenge page: the source stops paging.
  bool challenged() const { return challenged_.load(); }
  // The budget image requests share ("" their own host's): a booru's API origin.
  void set_image_budget(const std::string& origin) { image_budget_ = origin; }

 private:
  // One image to fetch (or read): a frontier row and its post.
  struct ImageJob {
    int64_t frontier_id = 0;  // 0: a local file
    int64_t post_id = 0;
    std::string url;          // or the local path
    std::string md5;
  };
  void MakeClient();
  Result<RobotsRules> RulesFor(const std::string& url);
  Result<std::vector<ImageJob>> UpsertPosts(std::vector<NewPost> posts, std::function<Status(db::Database&)> extra);
  void ScheduleImages(const std::vector<ImageJob>& jobs);
  void ScheduleLocal(const ImageJob& job);
  void WaitImages(int64_t n);
  // YieldAhead()'s thread: yields the handed-over pages in order.
  void YieldLoop();
  void WaitYields();
  void StopYieldThread();

  const Workspace& ws_;
  const CrawlOptions& o_;
  db::Database& rdb_;
  int64_t source_id_;
  std::unique_ptr<db::BatchWriter> writer_;
  CrawlCounters counters_;
  std::unique_ptr<Ingestor> ingest_;
  std::unique_ptr<WorkPool> pool_;
  std::unique_ptr<http::Client> http_;
  http::ClientStats http_stats_;  // the client's, kept when DropWriter() ends it
  std::unique_ptr<Progress> progress_;
  std::string api_origin_, policy_;
  std::mutex robots_mu_, robots_miss_mu_;
  std::unordered_map<std::string, RobotsRules> robots_;
  std::unordered_set<int64_t> scheduled_;
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  int64_t in_flight_ = 0;
  int64_t window_ = 256;
  std::atomic<bool> challenged_{false};
  std::string image_budget_;
  // YieldAhead(): the page handed over and not yet taken, whether one is being yielded,
  // and the first failure.
  struct AheadPage {
    std::vector<NewPost> posts;
    std::function<Status(db::Database&)> extra;
  };
  std::mutex ahead_mu_;
  std::condition_variable ahead_cv_;
  std::optional<AheadPage> ahead_;
  bool ahead_busy_ = false, ahead_stop_ = false;
  Status ahead_status_;
  std::thread yield_thread_;
  double cut_reported_s_ = 0;  // the longest Retry-After cut already reported
  // --write-metadata: <sha256>.json beside each blob this source stored.
  Status WriteSidecars();
};

}  // namespace moeforge::crawler
