// The frontier of one crawl (see frontier.h): posts, source tags and frontier rows in
// batched transactions, image fetches through the one HTTP client, robots.txt, progress.
#include "crawler/frontier.h"
#include "core/process.h"
#include "core/shard.h"
#include "core/strings.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cstdio>

#include <fmt/format.h>

#include "crawler/source.h"

namespace moeforge::crawler {

namespace {

constexpr const char* kAgentToken = "moeforge";
constexpr double kRobotsMaxAge = 24 * 3600.0;

// INSERT OR IGNORE of `rows` source_tags rows (1..kTagRows) in one statement.
constexpr size_t kTagRows = 16;
const std::string& TagInsertSql(size_t rows) {
  static const std::vector<std::string> sql = [] {
    std::vector<std::string> v(kTagRows + 1);
    for (size_t n = 1; n <= kTagRows; ++n) {
      v[n] = "INSERT OR IGNORE INTO source_tags(post_id, tag, category) VALUES(?,?,?)";
      for (size_t i = 1; i < n; ++i) v[n] += ",(?,?,?)";
    }
    return v;
  }();
  return sql[rows];
}

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string StripSlash(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

bool IsHttpUrl(const std::string& u) {
  std::string l = AsciiLower(u.substr(0, 8));
  return l.rfind("http://", 0) == 0 || l.rfind("https://", 0) == 0;
}

NewPost FromRecord(PostRecord r) {
  NewPost p;
  p.remote_id = std::move(r.remote_id);
  p.md5 = std::move(r.md5);
  p.file_url = std::move(r.file_url);
  p.page_url = std::move(r.page_url);
  p.rating = std::move(r.rating);
  p.file_ext = std::move(r.file_ext);
  p.created_at = std::move(r.created_at);
  p.meta_json = std::move(r.meta_json);
  p.width = r.width;
  p.height = r.height;
  p.tags = std::move(r.tags);
  p.skip_reason = std::move(r.skip_reason);
  p.variant = "original";
  return p;
}

Frontier::Frontier(const Workspace& ws, const CrawlOptions& o, db::Database& wdb, db::Database& rdb, int64_t source_id)
    : ws_(ws), o_(o), rdb_(rdb), source_id_(source_id) {
  writer_ = std::make_unique<db::BatchWriter>(wdb, db::BatchWriter::Options{256, 200});
  Ingestor::Options io;
  io.max_pixels = o.max_pixels;
  io.near_dup_threshold = o.near_dup_threshold;
  pool_ = std::make_unique<WorkPool>(std::max(8, std::min(32, 2 * o.concurrency)));
  ingest_ = std::make_unique<Ingestor>(ws, *writer_, io, counters_, pool_.get());
  progress_ = std::make_unique<Progress>("crawl", o.limit, o.quiet ? 1e9 : 5.0);
}

Frontier::~Frontier() {
  StopYieldThread();
  http_.reset();
  pool_.reset();
  ingest_->WaitStored();
  writer_.reset();
}

Status Frontier::Run(PostSource& source) {
  MF_RETURN_IF_ERROR(ingest_->Load(rdb_));
  if (source.fetches()) MakeClient();
  Status s = source.Run(*this);
  WaitYields();
  StopYieldThread();
  if (s.ok()) s = ahead_status_;
  WaitImages(0);
  pool_->Wait();
  ingest_->WaitStored();
  ReportRetryAfterCut();
  Status f = writer_->Flush();
  if (f.ok()) ingest_->RemoveSupersededBlobs();
  if (f.ok() && o_.write_metadata) f = WriteSidecars();
  progress_->Finish();
  if (!s.ok()) return s;
  return f;
}

Status Frontier::Yield(std::vector<NewPost> posts, std::function<Status(db::Database&)> extra) {
  MF_ASSIGN_OR_RETURN(auto jobs, UpsertPosts(std::move(posts), std::move(extra)));
  ScheduleImages(jobs);
  return Status::Ok();
}

// ---- yielding ahead of the source ----
// Yield() waits for its commit (behind the blob rows queued before it, and their syncfs)
// and then for the window: done on the source's thread, the next page was not even asked
// for meanwhile, and the images in flight ran out before each page's were scheduled.
Status Frontier::YieldAhead(std::vector<NewPost> posts, std::function<Status(db::Database&)> extra) {
  std::unique_lock<std::mutex> l(ahead_mu_);
  if (!yield_thread_.joinable()) yield_thread_ = std::thread([this] { YieldLoop(); });
  ahead_cv_.wait(l, [this] { return !ahead_ || !ahead_status_.ok(); });
  if (!ahead_status_.ok()) return ahead_status_;
  ahead_ = AheadPage{std::move(posts), std::move(extra)};
  ahead_cv_.notify_all();
  return Status::Ok();
}

void Frontier::YieldLoop() {
  SetThreadName("mf-crawl-yield");
  std::unique_lock<std::mutex> l(ahead_mu_);
  while (true) {
    ahead_cv_.wait(l, [this] { return ahead_ || ahead_stop_; });
    if (!ahead_) return;
    AheadPage page = std::move(*ahead_);
    ahead_.reset();
    if (!ahead_status_.ok()) {  // after a failure, later pages are dropped
      ahead_cv_.notify_all();
      continue;
    }
    ahead_busy_ = true;
    ahead_cv_.notify_all();
    l.unlock();
    Status s = Yield(std::move(page.posts), std::move(page.extra));
    l.lock();
    ahead_busy_ = false;
    if (!s.ok() && ahead_status_.ok()) ahead_status_ = s;
    ahead_cv_.notify_all();
  }
}

void Frontier::Drain() {
  WaitYields();
  WaitImages(0);
  // The stored copies' rows too (they wait for their blobs' syncfs), so that what the
  // source commits after Drain() follows them.
  pool_->Wait();
  ingest_->WaitStored();
}

void Frontier::WaitYields() {
  std::unique_lock<std::mutex> l(ahead_mu_);
  ahead_cv_.wait(l, [this] { return !ahead_ && !ahead_busy_; });
}

void Frontier::StopYieldThread() {
  {
    std::lock_guard<std::mutex> l(ahead_mu_);
    ahead_stop_ = true;
  }
  ahead_cv_.notify_all();
  if (yield_thread_.joinable()) yield_thread_.join();
}

void Frontier::FillSummary(db::StageSummary& sum) {
  counters_.FillSummary(sum);
  if (http_ || http_stats_.requests > 0) {
    // DropWriter() keeps the client's figures when it ends the client.
    http::ClientStats st = http_ ? http_->stats() : http_stats_;
    sum.extra["http_requests"] = st.requests;
    sum.extra["http_retries"] = st.retries;
    sum.extra["http2_responses"] = st.http2;
    if (st.retry_after_cut_s > 0) sum.extra["retry_after_cut_s"] = st.retry_after_cut_s;
  }
  sum.extra["blob_flushes"] = ingest_->blob_flushes();
  sum.extra["superseded"] = ingest_->superseded();
}

void Frontier::ReportRetryAfterCut() {
  if (!http_) return;
  double cut = http_->stats().retry_after_cut_s;
  if (cut <= cut_reported_s_) return;
  std::fprintf(stderr, "crawl: the site asked to wait %.0f s (Retry-After); waiting %.0f s instead (--retry-after-max)\n",
               cut, o_.retry_after_max_s);
  cut_reported_s_ = cut;
}

void Frontier::DropWriter() {
  if (http_) http_stats_ = http_->stats();
  http_.reset();
  pool_->Wait();
  ingest_->WaitStored();
  writer_.reset();
}

// ---- politeness and the client ----
bool Frontier::ObeyRobotsFor(bool api_page) const {
  if (o_.robots == "obey") return true;
  if (o_.robots == "ignore") return false;
  return !api_page && (o_.source == "urls" || o_.source == "html");
}

void Frontier::MakeClient() {
  http::ClientOptions co;
  co.contact = o_.user_agent_contact;
  co.max_total = o_.concurrency + 1;
  co.max_per_host = o_.concurrency;
  co.stall_timeout_s = o_.timeout_s;
  co.total_timeout_s = std::max(60L, static_cast<long>(o_.timeout_s * 10));
  co.connect_timeout_s = std::max(2L, static_cast<long>(o_.timeout_s / 2));
  co.max_retries = o_.retries;
  co.backoff_base_s = 0.25;
  co.backoff_max_s = 10;
  co.retry_after_max_s = o_.retry_after_max_s;
  co.max_redirects = 5;
  co.ca_file = o_.ca_file;
  http_ = std::make_unique<http::Client>(co);
  if (IsHttpUrl(o_.url)) {
    std::string origin = http::OriginOf(o_.url);
    bool loop = http::IsLoopbackHost(http::HostOf(o_.url));
    api_origin_ = origin;
    if (o_.source == "danbooru" || o_.source == "moebooru" || o_.source == "gelbooru" || o_.source == "html") {
      // One budget for the site: image requests of booru sources share the API origin's
      // (set_image_budget), so the pacing printed here is what the site sees in all.
      bool booru = o_.source != "html";
      const char* what = booru ? "requests to the site (API and file hosts together)" : "requests per host";
      if (o_.rate > 0) {
        double iv = 1.0 / o_.rate, jit = o_.jitter_s >= 0 ? o_.jitter_s : 0;
        http_->SetHostPolicy(origin, iv, loop ? o_.concurrency : 1, jit);
        policy_ = fmt::format("{} {:.3g}-{:.3g} s apart ({:.3g}/s)", what, iv, iv + jit, o_.rate);
      } else if (loop) {
        http_->SetHostPolicy(origin, 0, o_.concurrency, 0);
        policy_ = "loopback: no rate limit";
      } else {
        // gallery-dl's default for booru APIs: one request at a time, 0.5-1.5 s apart.
        double jit = o_.jitter_s >= 0 ? o_.jitter_s : 1.0;
        http_->SetHostPolicy(origin, 0.5, 1, jit);
        policy_ = fmt::format("one at a time, {} 0.5-{:.3g} s apart", what, 0.5 + jit);
      }
      if (booru) image_budget_ = origin;
    }
  }
}

Result<RobotsRules> Frontier::RulesFor(const std::string& url) {
  std::string origin = http::OriginOf(url);
  {
    std::lock_guard<std::mutex> l(robots_mu_);
    auto it = robots_.find(origin);
    if (it != robots_.end()) return it->second;
  }
  // One miss at a time: the source's thread and YieldAhead()'s may both ask, and the reader
  // connection's statements are not for two threads at once.
  std::lock_guard<std::mutex> miss(robots_miss_mu_);
  {
    std::lock_guard<std::mutex> l(robots_mu_);
    auto it = robots_.find(origin);
    if (it != robots_.end()) return it->second;
  }
  int status = -1;
  std::string body;
  double now = UnixNow();
  {
    MF_ASSIGN_OR_RETURN(db::Stmt * st, rdb_.Cached("SELECT fetched_at, http_status, body FROM robots_cache WHERE origin=?"));
    st->Bind(1, origin);
    MF_ASSIGN_OR_RETURN(bool row, st->Step());
    if (row && now - st->Double(0) < kRobotsMaxAge) {
      status = static_cast<int>(st->Int(1));
      body = st->Text(2);
    }
    st->Reset();
  }
  if (status < 0) {
    http::Request rq;
    rq.url = StripSlash(origin) + "/robots.txt";
    rq.max_bytes = 512 * 1024;  // RFC 9309: at least 500 KiB must be parsed
    rq.urgent = true;
    http::Response r = http_->Get(rq);
    status = r.error.empty() ? r.status : 0;
    body = r.body;
    writer_->Submit([origin, now, status, body](db::Database& db) -> Status {
      MF_ASSIGN_OR_RETURN(db::Stmt * st, db.Cached(
          "INSERT INTO robots_cache(origin, fetched_at, http_status, body) VALUES(?,?,?,?) "
          "ON CONFLICT(origin) DO UPDATE SET fetched_at=excluded.fetched_at, http_status=excluded.http_status, "
          "body=excluded.body"));
      return st->BindAll(origin, now, status, body).Run();
    });
  }
  RobotsRules rules = RobotsRules::FromFetch(status, body, kAgentToken);
  std::lock_guard<std::mutex> l(robots_mu_);
  robots_[origin] = rules;
  return rules;
}

Result<bool> Frontier::RobotsAllow(const std::string& url, bool api_page) {
  if (!ObeyRobotsFor(api_page)) return true;
  MF_ASSIGN_OR_RETURN(RobotsRules rules, RulesFor(url));
  return rules.Allowed(http::PathAndQuery(url));
}

// ---- posts, tags and frontier rows, one transaction per batch ----
// Returns the image jobs that still need a fetch.
Result<std::vector<Frontier::ImageJob>> Frontier::UpsertPosts(std::vector<NewPost> posts,
                                                              std::function<Status(db::Database&)> extra) {
  auto jobs = std::make_shared<std::vector<ImageJob>>();
  auto skipped = std::make_shared<std::vector<std::string>>();
  int64_t sid = source_id_;
  // --shard i/N: this machine keeps the posts whose remote id hashes to its part.
  auto shard = Shard::Parse(o_.shard);
  auto shared_posts = std::make_shared<std::vector<NewPost>>();
  shared_posts->reserve(posts.size());
  for (auto& p : posts)
    if (!shard.ok() || shard->Owns(p.remote_id)) shared_posts->push_back(std::move(p));
  MF_RETURN_IF_ERROR(writer_->Submit([=](db::Database& db) -> Status {
    std::string now = db::NowIso();
    MF_ASSIGN_OR_RETURN(db::Stmt * up, db.Cached(
        "INSERT INTO posts(source_id, remote_id, md5, file_url, page_url, rating, width, height, file_ext, "
        "created_at, state, error, meta_json, updated_at, variant) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT(source_id, remote_id) DO UPDATE SET rating=excluded.rating, meta_json=excluded.meta_json, "
        "updated_at=excluded.updated_at, "
        // A post not yet had takes what this pass decided (its filters, its rendition); one
        // stored or linked keeps the file it was stored from.
        "md5=CASE WHEN posts.state IN ('stored','duplicate') THEN posts.md5 ELSE excluded.md5 END, "
        "file_url=CASE WHEN posts.state IN ('stored','duplicate') THEN posts.file_url ELSE excluded.file_url END, "
        "variant=CASE WHEN posts.state IN ('stored','duplicate') THEN posts.variant ELSE excluded.variant END, "
        "state=CASE WHEN posts.state IN ('pending','failed') AND excluded.error LIKE 'filtered:%' THEN 'skipped' "
        "  WHEN posts.state='skipped' AND posts.error LIKE 'filtered:%' THEN excluded.state ELSE posts.state END, "
        "error=CASE WHEN posts.state IN ('pending','failed') AND excluded.error LIKE 'filtered:%' THEN excluded.error "
        "  WHEN posts.state='skipped' AND posts.error LIKE 'filtered:%' THEN excluded.error ELSE posts.error END "
        "RETURNING id, state"));
    MF_ASSIGN_OR_RETURN(db::Stmt * unqueue, db.Cached(
        "UPDATE frontier SET state='skipped', error=?, updated_at=? WHERE post_id=? AND kind='image' AND state='queued'"));
    MF_ASSIGN_OR_RETURN(db::Stmt * fr, db.Cached(
        "INSERT INTO frontier(source_id, url, kind, post_id, depth, state, updated_at) "
        "VALUES(?,?,'image',?,?,'queued',?) ON CONFLICT(source_id, url, post_id) DO NOTHING"));
    MF_ASSIGN_OR_RETURN(db::Stmt * frq, db.Cached("SELECT id, state FROM frontier WHERE source_id=? AND url=? AND post_id=?"));
    for (const auto& p : *shared_posts) {
      up->Bind(1, sid).Bind(2, p.remote_id);
      BindText(up, 3, p.md5);
      BindText(up, 4, p.file_url);
      BindText(up, 5, p.page_url);
      BindText(up, 6, p.rating);
      if (p.width > 0) up->Bind(7, p.width); else up->Bind(7, nullptr);
      if (p.height > 0) up->Bind(8, p.height); else up->Bind(8, nullptr);
      BindText(up, 9, p.file_ext);
      BindText(up, 10, p.created_at);
      up->Bind(11, p.skip_reason.empty() ? "pending" : "skipped");
      BindText(up, 12, p.skip_reason);
      BindText(up, 13, p.meta_json);
      up->Bind(14, now);
      BindText(up, 15, p.variant);
      MF_ASSIGN_OR_RETURN(bool row, up->Step());
      if (!row) return Status::Internal("post upsert returned nothing");
      int64_t pid = up->Int(0);
      std::string state = up->Text(1);
      up->Reset();
      // A post's tags in one statement of up to kTagRows rows rather than one each: the
      // statement's own cost was about half of each tag's.
      for (size_t i = 0; i < p.tags.size(); i += kTagRows) {
        size_t rows = std::min(kTagRows, p.tags.size() - i);
        MF_ASSIGN_OR_RETURN(db::Stmt * tag, db.Cached(TagInsertSql(rows)));
        for (size_t r = 0; r < rows; ++r) {
          const auto& [t, cat] = p.tags[i + r];
          int at = static_cast<int>(3 * r);
          tag->Bind(at + 1, pid).Bind(at + 2, t);
          BindText(tag, at + 3, cat);
        }
        MF_RETURN_IF_ERROR(tag->Run());
      }
      if (state == "skipped") {
        skipped->push_back(p.skip_reason.empty() ? "skipped" : p.skip_reason);
        if (p.skip_reason.rfind("filtered:", 0) == 0) MF_RETURN_IF_ERROR(unqueue->BindAll(p.skip_reason, now, pid).Run());
        continue;
      }
      if (state != "pending" && state != "failed") continue;  // stored or linked before
      if (!p.local_path.empty()) {
        // A local file has no frontier row; one that failed to read is not read again.
        if (state == "pending") jobs->push_back(ImageJob{0, pid, p.local_path, p.md5});
        continue;
      }
      MF_RETURN_IF_ERROR(fr->BindAll(sid, p.file_url, pid, p.depth, now).Run());
      frq->BindAll(sid, p.file_url, pid);
      MF_ASSIGN_OR_RETURN(bool frow, frq->Step());
      if (frow && frq->Text(1) == "queued") jobs->push_back(ImageJob{frq->Int(0), pid, p.file_url, p.md5});
      frq->Reset();
    }
    if (extra) MF_RETURN_IF_ERROR(extra(db));
    return Status::Ok();
  }));
  MF_RETURN_IF_ERROR(writer_->Flush());
  for (const auto& why : *skipped) counters_.Skipped(why);
  return std::move(*jobs);
}

// ---- image fetching ----
void Frontier::ScheduleImages(const std::vector<ImageJob>& jobs) {
  for (const auto& j : jobs) {
    if (j.frontier_id == 0) {
      ScheduleLocal(j);
      continue;
    }
    if (!scheduled_.insert(j.frontier_id).second) continue;  // already in flight
    auto allowed = RobotsAllow(j.url, false);
    if (allowed.ok() && !*allowed) {
      int64_t fid = j.frontier_id, pid = j.post_id;
      writer_->Submit([fid, pid](db::Database& db) -> Status {
        std::string now = db::NowIso();
        MF_ASSIGN_OR_RETURN(db::Stmt * a, db.Cached("UPDATE frontier SET state='skipped', error='robots', updated_at=? WHERE id=?"));
        MF_RETURN_IF_ERROR(a->BindAll(now, fid).Run());
        MF_ASSIGN_OR_RETURN(db::Stmt * b, db.Cached("UPDATE posts SET state='skipped', error='robots', updated_at=? WHERE id=?"));
        return b->BindAll(now, pid).Run();
      });
      counters_.Skipped("robots");
      continue;
    }
    WaitImages(window_);
    ingest_->Expect(j.frontier_id);
    {
      // Under the lock: pool threads decrement it as transfers finish, and a lost
      // update here left WaitImages() waiting forever for a finished crawl.
      std::lock_guard<std::mutex> l(wait_mu_);
      in_flight_++;
    }
    http::Request rq;
    rq.url = j.url;
    rq.max_bytes = o_.max_bytes;
    rq.budget = image_budget_;
    ImageJob job = j;
    http_->Fetch(rq, [this, job](http::Response r) {
      auto resp = std::make_shared<http::Response>(std::move(r));
      pool_->Submit([this, job, resp] {
        FetchedItem it;
        it.seq = job.frontier_id;
        it.post_id = job.post_id;
        it.frontier_id = job.frontier_id;
        it.expect_md5 = job.md5;
        it.http_status = resp->status;
        it.attempts = resp->attempts;
        it.content_type = resp->Header("content-type");
        it.x_robots_tag = resp->Header("x-robots-tag");
        if (resp->error == "challenge") challenged_ = true;
        if (!resp->ok()) {
          it.fail_reason = resp->Reason();
          it.fail_detail = resp->error_detail;
        } else {
          it.body = std::move(resp->body);
        }
        ingest_->Process(std::move(it));
        {
          std::lock_guard<std::mutex> l(wait_mu_);
          in_flight_--;
        }
        wait_cv_.notify_all();
      });
    });
  }
}

// A local file: read on the pool and ingested like a download, in post order.
void Frontier::ScheduleLocal(const ImageJob& j) {
  WaitImages(window_);
  ingest_->Expect(j.post_id);
  {
    std::lock_guard<std::mutex> l(wait_mu_);
    in_flight_++;
  }
  std::string path = j.url;
  int64_t pid = j.post_id;
  pool_->Submit([this, path, pid] {
    FetchedItem it;
    it.seq = pid;
    it.post_id = pid;
    auto bytes = ReadFile(path);
    if (bytes.ok()) {
      it.body = std::move(*bytes);
    } else {
      it.fail_reason = "unreadable";
      it.fail_detail = bytes.status().message();
    }
    ingest_->Process(std::move(it));
    {
      std::lock_guard<std::mutex> l(wait_mu_);
      in_flight_--;
    }
    wait_cv_.notify_all();
  });
}

// Blocks until at most `n` images are in flight, redrawing the progress line.
void Frontier::WaitImages(int64_t n) {
  std::unique_lock<std::mutex> l(wait_mu_);
  while (in_flight_ > n) {
    wait_cv_.wait_for(l, std::chrono::milliseconds(100));
    l.unlock();
    DrawProgress();
    l.lock();
  }
  l.unlock();
  DrawProgress();
}

void Frontier::DrawProgress() {
  if (o_.quiet) return;
  double mb = counters_.bytes() / 1e6;
  progress_->Update(counters_.finished(),
                    fmt::format("{} pages {:.1f} MB {} stored {} skipped {} failed", counters_.pages(), mb,
                                counters_.stored(), counters_.skipped(), counters_.failed()));
}

Status Frontier::WriteSidecars() {
  MF_ASSIGN_OR_RETURN(db::Stmt st, rdb_.Prepare(
      "SELECT i.blob_path, p.meta_json FROM posts p JOIN images i ON i.sha256 = p.image_sha256 "
      "WHERE p.source_id=? AND p.state='stored' AND i.blob_path IS NOT NULL AND p.meta_json IS NOT NULL"));
  st.Bind(1, source_id_);
  int64_t written = 0;
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    std::string path = ws_.root() + "/" + st.Text(0) + ".json";
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) continue;
    std::string text = st.Text(1) + "\n";
    MF_RETURN_IF_ERROR(WriteFileAtomic(path, text.data(), text.size()).WithContext("writing metadata sidecar"));
    ++written;
  }
  if (written > 0 && !o_.quiet)
    std::fprintf(stderr, "crawl: wrote %lld metadata sidecar(s) (<sha256>.json beside the blobs)\n",
                 static_cast<long long>(written));
  return Status::Ok();
}

// Queued image rows left by an interrupted run.
Status Frontier::ResumeQueued() {
  MF_ASSIGN_OR_RETURN(db::Stmt st, rdb_.Prepare(
      "SELECT f.id, f.post_id, f.url, p.md5 FROM frontier f JOIN posts p ON p.id = f.post_id "
      "WHERE f.source_id=? AND f.kind='image' AND f.state='queued' ORDER BY f.id"));
  st.Bind(1, source_id_);
  std::vector<ImageJob> jobs;
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    jobs.push_back(ImageJob{st.Int(0), st.Int(1), st.Text(2), st.IsNull(3) ? "" : st.Text(3)});
  }
  if (!jobs.empty())
    std::fprintf(stderr, "crawl: resuming %zu queued image(s) from an earlier run\n", jobs.size());
  ScheduleImages(jobs);
  return Status::Ok();
}

}  // namespace moeforge::crawler
