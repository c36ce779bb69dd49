// The crawl stage: drives one source (booru API pages, URL list, HTML pages or a local
// folder) into the frontier and posts tables, fetches the files through the one HTTP
// client and hands them to the Ingestor. See crawler.h for the contract.
#include "crawler/crawler.h"
#include "core/shard.h"
#include "core/strings.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "core/http.h"
#include "core/progress.h"
#include "crawler/booru_api.h"
#include "crawler/ingest.h"
#include "crawler/robots.h"
#include "crawler/work_pool.h"
#include "db/db.h"

namespace moeforge::crawler {

namespace fs = std::filesystem;

namespace {

constexpr const char* kAgentToken = "moeforge";
constexpr double kRobotsMaxAge = 24 * 3600.0;

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string StripSlash(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

bool IsHttpUrl(const std::string& u) {
  std::string l = AsciiLower(u.substr(0, 8));
  return l.rfind("http://", 0) == 0 || l.rfind("https://", 0) == 0;
}

// One image to fetch: a frontier row and its post.
struct ImageJob {
  int64_t frontier_id = 0;
  int64_t post_id = 0;
  std::string url;
  std::string md5;
};

// A post as a source found it, ready for the posts/source_tags/frontier upsert.
struct NewPost {
  std::string remote_id;
  std::string md5, file_url, page_url, rating, file_ext, created_at, meta_json;
  int64_t width = 0, height = 0;
  std::vector<std::pair<std::string, std::string>> tags;
  std::string skip_reason;  // restricted, not_image, robots
  int depth = 0;
};

NewPost FromRecord(const PostRecord& r) {
  NewPost p;
  p.remote_id = r.remote_id;
  p.md5 = r.md5;
  p.file_url = r.file_url;
  p.page_url = r.page_url;
  p.rating = r.rating;
  p.file_ext = r.file_ext;
  p.created_at = r.created_at;
  p.meta_json = r.meta_json;
  p.width = r.width;
  p.height = r.height;
  p.tags = r.tags;
  p.skip_reason = r.skip_reason;
  return p;
}

// Binds an optional text: NULL when empty.
template <typename S>
void BindText(S* st, int i, const std::string& v) {
  if (v.empty()) {
    st->Bind(i, nullptr);
  } else {
    st->Bind(i, v);
  }
}

class CrawlRun {
 public:
  CrawlRun(const Workspace& ws, const CrawlOptions& o, db::Database& wdb, db::Database& rdb, int64_t source_id)
      : ws_(ws), o_(o), rdb_(rdb), source_id_(source_id) {
    writer_ = std::make_unique<db::BatchWriter>(wdb, db::BatchWriter::Options{256, 200});
    Ingestor::Options io;
    io.max_pixels = o.max_pixels;
    io.near_dup_threshold = o.near_dup_threshold;
    pool_ = std::make_unique<WorkPool>(std::max(8, std::min(32, 2 * o.concurrency)));
    ingest_ = std::make_unique<Ingestor>(ws, *writer_, io, counters_, pool_.get());
    progress_ = std::make_unique<Progress>("crawl", o.limit, o.quiet ? 1e9 : 5.0);
  }

  ~CrawlRun() {
    http_.reset();
    pool_.reset();
    writer_.reset();
  }

  Status Run() {
    MF_RETURN_IF_ERROR(ingest_->Load(rdb_));
    if (o_.source != "dir") MakeClient();
    Status s;
    if (o_.source == "dir") {
      s = RunDir();
    } else if (o_.source == "urls") {
      s = RunUrls();
    } else if (o_.source == "html") {
      s = RunHtml();
    } else {
      MF_ASSIGN_OR_RETURN(Dialect d, DialectFromName(o_.source));
      s = RunApi(d);
    }
    WaitImages(0);
    pool_->Wait();
    Status f = writer_->Flush();
    progress_->Finish();
    if (!s.ok()) return s;
    return f;
  }

  void FillSummary(db::StageSummary& sum) {
    counters_.FillSummary(sum);
    if (http_) {
      auto st = http_->stats();
      sum.extra["http_requests"] = st.requests;
      sum.extra["http_retries"] = st.retries;
      sum.extra["http2_responses"] = st.http2;
    }
    sum.extra["blob_flushes"] = ingest_->blob_flushes();
  }

  void DropWriter() {
    http_.reset();
    pool_->Wait();
    writer_.reset();
  }

 private:
  // ---- politeness and the client ----
  bool ObeyRobotsFor(bool api_page) const {
    if (o_.robots == "obey") return true;
    if (o_.robots == "ignore") return false;
    return !api_page && (o_.source == "urls" || o_.source == "html");
  }

  void MakeClient() {
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
    co.retry_after_max_s = 60;
    co.max_redirects = 5;
    co.ca_file = o_.ca_file;
    http_ = std::make_unique<http::Client>(co);
    if (IsHttpUrl(o_.url)) {
      std::string origin = http::OriginOf(o_.url);
      bool loop = http::IsLoopbackHost(http::HostOf(o_.url));
      api_origin_ = origin;
      if (o_.source == "danbooru" || o_.source == "moebooru" || o_.source == "gelbooru" || o_.source == "html") {
        if (o_.rate > 0) {
          http_->SetHostPolicy(origin, 1.0 / o_.rate, loop ? o_.concurrency : 1);
          policy_ = fmt::format("{:.3g} requests/s", o_.rate);
        } else if (loop) {
          http_->SetHostPolicy(origin, 0, o_.concurrency);
          policy_ = "loopback: no rate limit";
        } else {
          // gallery-dl's default for booru APIs: one request at a time, 0.5-1.5 s apart.
          http_->SetHostPolicy(origin, 0.5, 1);
          policy_ = "one request at a time, 0.5-1.5 s apart";
        }
      }
    }
  }

  Result<RobotsRules> RulesFor(const std::string& url) {
    std::string origin = http::OriginOf(url);
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

  Result<bool> RobotsAllow(const std::string& url, bool api_page) {
    if (!ObeyRobotsFor(api_page)) return true;
    MF_ASSIGN_OR_RETURN(RobotsRules rules, RulesFor(url));
    return rules.Allowed(http::PathAndQuery(url));
  }

  // ---- posts, tags and frontier rows, one transaction per batch ----
  // Upserts `posts` and queues their images; returns the image jobs that still need a
  // fetch. `extra` runs inside the same transaction (cursor and page rows).
  Result<std::vector<ImageJob>> UpsertPosts(const std::vector<NewPost>& posts,
                                            std::function<Status(db::Database&)> extra = nullptr) {
    auto jobs = std::make_shared<std::vector<ImageJob>>();
    auto skipped = std::make_shared<std::vector<std::string>>();
    int64_t sid = source_id_;
    // --shard i/N: this machine keeps the posts whose remote id hashes to its part.
    auto shard = Shard::Parse(o_.shard);
    auto shared_posts = std::make_shared<std::vector<NewPost>>();
    for (const auto& p : posts)
      if (!shard.ok() || shard->Owns(p.remote_id)) shared_posts->push_back(p);
    bool local = o_.source == "dir";
    MF_RETURN_IF_ERROR(writer_->Submit([=](db::Database& db) -> Status {
      std::string now = db::NowIso();
      MF_ASSIGN_OR_RETURN(db::Stmt * up, db.Cached(
          "INSERT INTO posts(source_id, remote_id, md5, file_url, page_url, rating, width, height, file_ext, "
          "created_at, state, error, meta_json, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
          "ON CONFLICT(source_id, remote_id) DO UPDATE SET md5=excluded.md5, file_url=excluded.file_url, "
          "rating=excluded.rating, meta_json=excluded.meta_json, updated_at=excluded.updated_at "
          "RETURNING id, state"));
      MF_ASSIGN_OR_RETURN(db::Stmt * tag,
                          db.Cached("INSERT OR IGNORE INTO source_tags(post_id, tag, category) VALUES(?,?,?)"));
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
        MF_ASSIGN_OR_RETURN(bool row, up->Step());
        if (!row) return Status::Internal("post upsert returned nothing");
        int64_t pid = up->Int(0);
        std::string state = up->Text(1);
        up->Reset();
        for (const auto& [t, cat] : p.tags) {
          tag->Bind(1, pid).Bind(2, t);
          BindText(tag, 3, cat);
          MF_RETURN_IF_ERROR(tag->Run());
        }
        if (state == "skipped") {
          skipped->push_back(p.skip_reason.empty() ? "skipped" : p.skip_reason);
          continue;
        }
        if (state != "pending" && state != "failed") continue;  // stored or linked before
        if (local) {
          if (state == "pending") jobs->push_back(ImageJob{0, pid, p.remote_id, p.md5});
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
  void ScheduleImages(const std::vector<ImageJob>& jobs) {
    for (const auto& j : jobs) {
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

  // Blocks until at most `n` images are in flight, redrawing the progress line.
  void WaitImages(int64_t n) {
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

  void DrawProgress() {
    if (o_.quiet) return;
    double mb = counters_.bytes() / 1e6;
    progress_->Update(counters_.finished(),
                      fmt::format("{} pages {:.1f} MB {} stored {} skipped {} failed", counters_.pages(), mb,
                                  counters_.stored(), counters_.skipped(), counters_.failed()));
  }

  // Queued image rows left by an interrupted run.
  Status ResumeQueued() {
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

  // ---- sources ----
  Status RunApi(Dialect d);
  Status RunUrls();
  Status RunHtml();
  Status RunDir();

  const Workspace& ws_;
  const CrawlOptions& o_;
  db::Database& rdb_;
  int64_t source_id_;
  std::unique_ptr<db::BatchWriter> writer_;
  CrawlCounters counters_;
  std::unique_ptr<Ingestor> ingest_;
  std::unique_ptr<WorkPool> pool_;
  std::unique_ptr<http::Client> http_;
  std::unique_ptr<Progress> progress_;
  std::string api_origin_, policy_;
  std::mutex robots_mu_;
  std::unordered_map<std::string, RobotsRules> robots_;
  std::unordered_set<int64_t> scheduled_;
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  int64_t in_flight_ = 0;
  int64_t window_ = 256;

 public:
  const std::string& policy() const { return policy_; }
  void set_window(int64_t w) { window_ = w; }
};

// ---------------------------------------------------------------------------------
// Booru APIs: pages newest first. A pass pages until an empty page, the limit, or a post
// at or below `stop_at` (the newest id of the last finished pass), so a re-run asks only
// for what is new. Each page's posts, tags, image rows and the cursor commit together.

Status CrawlRun::RunApi(Dialect d) {
  std::string base = StripSlash(o_.url);
  int page_limit = o_.page_limit > 0 ? std::min(o_.page_limit, MaxPageLimit(d)) : MaxPageLimit(d);
  if (o_.limit > 0 && o_.limit < page_limit) page_limit = static_cast<int>(std::max<int64_t>(1, o_.limit));
  set_window(std::max<int64_t>(2 * page_limit, 4 * o_.concurrency));
  std::string auth = AuthQueryFromEnv(d);
  std::fprintf(stderr, "crawl: %s API at %s%s; robots.txt %s for API pages; %s\n", DialectName(d), base.c_str(),
               auth.empty() ? "" : " (credentials from the environment)",
               ObeyRobotsFor(true) ? "obeyed" : "not consulted (--robots obey to consult it)", policy_.c_str());
  MF_RETURN_IF_ERROR(ResumeQueued());

  // The cursor of this query.
  std::string state = "done";
  int64_t next_page = 1, taken = 0, stop_at = 0;
  bool have = false;
  {
    MF_ASSIGN_OR_RETURN(db::Stmt st, rdb_.Prepare(
        "SELECT state, next_page, taken, COALESCE(stop_at, 0), COALESCE(pass_newest, 0) FROM crawl_cursors "
        "WHERE source_id=? AND query=?"));
    st.BindAll(source_id_, o_.tags);
    MF_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) {
      have = true;
      state = st.Text(0);
      next_page = st.Int(1);
      taken = st.Int(2);
      stop_at = st.Int(3);
    }
  }
  if (!have || state == "done") {
    next_page = 1;
    taken = 0;
    int64_t sid = source_id_;
    std::string q = o_.tags;
    MF_RETURN_IF_ERROR(writer_->Submit([sid, q](db::Database& db) -> Status {
      MF_ASSIGN_OR_RETURN(db::Stmt * st, db.Cached(
          "INSERT INTO crawl_cursors(source_id, query, state, next_page, taken, updated_at) "
          "VALUES(?,?,'paging',1,0,?) ON CONFLICT(source_id, query) DO UPDATE SET state='paging', next_page=1, "
          "taken=0, pass_newest=NULL, updated_at=excluded.updated_at"));
      return st->BindAll(sid, q, db::NowIso()).Run();
    }));
    MF_RETURN_IF_ERROR(writer_->Flush());
    if (stop_at > 0)
      std::fprintf(stderr, "crawl: asking only for posts newer than %lld\n", static_cast<long long>(stop_at));
  } else {
    std::fprintf(stderr, "crawl: resuming the interrupted pass at page %lld\n", static_cast<long long>(next_page));
  }

  bool finished = false;
  bool first_request = true;
  while (true) {
    if (o_.limit > 0 && taken >= o_.limit) {
      finished = true;
      break;
    }
    std::string url = PostPageUrl(d, base, o_.tags, next_page, page_limit);  // as recorded (no credentials)
    std::string fetch_url = url + auth;
    MF_ASSIGN_OR_RETURN(bool allowed, RobotsAllow(url, true));
    if (!allowed)
      return Status::InvalidArgument("robots.txt of " + api_origin_ + " disallows " + http::PathAndQuery(url) +
                                     " (--robots obey); booru APIs are normally crawled with --robots auto");
    http::Request rq;
    rq.url = fetch_url;
    rq.max_bytes = 64 << 20;
    rq.headers.push_back("Accept: application/json, application/xml;q=0.9");
    rq.urgent = true;
    if (next_page == 1) {
      MF_ASSIGN_OR_RETURN(db::Stmt * st, rdb_.Cached("SELECT etag, last_modified FROM frontier WHERE source_id=? AND url=? AND post_id=0"));
      st->BindAll(source_id_, url);
      MF_ASSIGN_OR_RETURN(bool row, st->Step());
      if (row && stop_at > 0) {
        if (!st->IsNull(0)) rq.if_none_match = st->Text(0);
        if (!st->IsNull(1)) rq.if_modified_since = st->Text(1);
      }
      st->Reset();
    }
    http::Response r = http_->Get(rq);
    counters_.Page();
    DrawProgress();
    if (r.status == 304 && r.error.empty()) {
      finished = true;  // page 1 unchanged: nothing new
      break;
    }
    Result<PostPage> page = r.ok() ? ParsePostPage(d, r.body, base)
                                   : Result<PostPage>(Status::Network(fmt::format("{} {}", r.Reason(), r.error_detail)));
    if (!page.ok()) {
      int64_t sid = source_id_;
      std::string why = page.status().message();
      int code = r.status;
      writer_->Submit([sid, url, why, code](db::Database& db) -> Status {
        MF_ASSIGN_OR_RETURN(db::Stmt * st, db.Cached(
            "INSERT INTO frontier(source_id, url, kind, state, attempts, http_status, error, updated_at) "
            "VALUES(?,?,'page','failed',1,?,?,?) ON CONFLICT(source_id, url, post_id) DO UPDATE SET state='failed', "
            "attempts=attempts+1, http_status=excluded.http_status, error=excluded.error, updated_at=excluded.updated_at"));
        return st->BindAll(sid, url, code, why, db::NowIso()).Run();
      });
      counters_.Failed("page_" + (r.ok() ? std::string("unreadable") : r.Reason()));
      if (first_request) return page.status().WithContext("reading " + url);
      std::fprintf(stderr, "crawl: stopping at page %lld: %s\n", static_cast<long long>(next_page),
                   page.status().ToString().c_str());
      break;
    }
    first_request = false;
    if (page->posts.empty()) {
      finished = true;
      break;
    }
    std::vector<NewPost> take;
    bool reached_stop = false;
    int64_t newest = 0;
    for (const auto& rec : page->posts) {
      int64_t id = std::strtoll(rec.remote_id.c_str(), nullptr, 10);
      if (stop_at > 0 && id > 0 && id <= stop_at) {
        reached_stop = true;
        break;
      }
      if (o_.limit > 0 && taken + static_cast<int64_t>(take.size()) >= o_.limit) break;
      newest = std::max(newest, id);
      take.push_back(FromRecord(rec));
    }
    int64_t sid = source_id_;
    std::string q = o_.tags;
    int64_t np = next_page + 1;
    int64_t nt = taken + static_cast<int64_t>(take.size());
    std::string etag = r.Header("etag"), lm = r.Header("last-modified");
    int code = r.status;
    MF_ASSIGN_OR_RETURN(auto jobs, UpsertPosts(take, [=](db::Database& db) -> Status {
      std::string now = db::NowIso();
      MF_ASSIGN_OR_RETURN(db::Stmt * cur, db.Cached(
          "UPDATE crawl_cursors SET next_page=?, taken=?, pass_newest=MAX(COALESCE(pass_newest, 0), ?), updated_at=? "
          "WHERE source_id=? AND query=?"));
      MF_RETURN_IF_ERROR(cur->BindAll(np, nt, newest, now, sid, q).Run());
      MF_ASSIGN_OR_RETURN(db::Stmt * pg, db.Cached(
          "INSERT INTO frontier(source_id, url, kind, state, attempts, http_status, etag, last_modified, updated_at) "
          "VALUES(?,?,'page','done',1,?,?,?,?) ON CONFLICT(source_id, url, post_id) DO UPDATE SET state='done', "
          "attempts=attempts+1, http_status=excluded.http_status, error=NULL, etag=excluded.etag, "
          "last_modified=excluded.last_modified, updated_at=excluded.updated_at"));
      pg->BindAll(sid, url, code);
      BindText(pg, 4, etag);
      BindText(pg, 5, lm);
      pg->Bind(6, now);
      return pg->Run();
    }));
    taken = nt;
    next_page = np;
    ScheduleImages(jobs);
    if (reached_stop) {
      finished = true;
      break;
    }
    if (static_cast<int>(page->posts.size()) < page_limit && d != Dialect::kGelbooru) {
      // A short page is the last one (Gelbooru may cap pages below our limit).
      finished = true;
      break;
    }
  }
  WaitImages(0);
  if (finished) {
    int64_t sid = source_id_;
    std::string q = o_.tags;
    MF_RETURN_IF_ERROR(writer_->Submit([sid, q](db::Database& db) -> Status {
      MF_ASSIGN_OR_RETURN(db::Stmt * st, db.Cached(
          "UPDATE crawl_cursors SET state='done', stop_at=MAX(COALESCE(stop_at, 0), COALESCE(pass_newest, 0)), "
          "updated_at=? WHERE source_id=? AND query=?"));
      return st->BindAll(db::NowIso(), sid, q).Run();
    }));
  }
  return writer_->Flush();
}

// ---------------------------------------------------------------------------------
// A URL list: one image URL a line; blank lines and # comments ignored.

Status CrawlRun::RunUrls() {
  MF_ASSIGN_OR_RETURN(std::string text, ReadFile(o_.url));
  std::fprintf(stderr, "crawl: URL list %s; robots.txt %s\n", o_.url.c_str(),
               ObeyRobotsFor(false) ? "obeyed" : "ignored (--robots ignore)");
  set_window(std::max<int64_t>(256, 8 * o_.concurrency));
  MF_RETURN_IF_ERROR(ResumeQueued());
  std::istringstream in(text);
  std::string line;
  std::vector<NewPost> batch;
  int64_t n = 0, bad = 0;
  auto flush = [&]() -> Status {
    if (batch.empty()) return Status::Ok();
    MF_ASSIGN_OR_RETURN(auto jobs, UpsertPosts(batch));
    batch.clear();
    ScheduleImages(jobs);
    return Status::Ok();
  };
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (!IsHttpUrl(line)) {
      bad++;
      continue;
    }
    if (o_.limit > 0 && n >= o_.limit) break;
    n++;
    NewPost p;
    p.remote_id = line;
    p.file_url = line;
    batch.push_back(std::move(p));
    if (batch.size() >= 500) MF_RETURN_IF_ERROR(flush());
  }
  MF_RETURN_IF_ERROR(flush());
  if (bad) std::fprintf(stderr, "crawl: ignored %lld line(s) that are not http(s) URLs\n", static_cast<long long>(bad));
  WaitImages(0);
  return writer_->Flush();
}

// ---------------------------------------------------------------------------------
// HTML pages: breadth first from the start page over same-host links to `depth`; every
// <img src> is an image post (remote id: its URL; page_url: where it was found).

namespace {

// The values of attribute `attr` of every <tag ...> in `html` (case-insensitive).
std::vector<std::string> AttrValues(const std::string& html, const std::string& tag, const std::string& attr) {
  std::vector<std::string> out;
  std::string lower = AsciiLower(html);
  std::string open = "<" + tag;
  size_t pos = 0;
  while ((pos = lower.find(open, pos)) != std::string::npos) {
    size_t after = pos + open.size();
    if (after < lower.size() && !std::isspace(static_cast<unsigned char>(lower[after]))) {
      pos = after;
      continue;
    }
    size_t end = lower.find('>', after);
    if (end == std::string::npos) break;
    size_t a = after;
    while (a < end) {
      size_t k = lower.find(attr, a);
      if (k == std::string::npos || k >= end) break;
      bool left = std::isspace(static_cast<unsigned char>(lower[k - 1]));
      size_t e = k + attr.size();
      while (e < end && std::isspace(static_cast<unsigned char>(lower[e]))) ++e;
      if (!left || e >= end || lower[e] != '=') {
        a = k + attr.size();
        continue;
      }
      ++e;
      while (e < end && std::isspace(static_cast<unsigned char>(lower[e]))) ++e;
      std::string v;
      if (e < end && (html[e] == '"' || html[e] == '\'')) {
        char q = html[e];
        size_t close = html.find(q, e + 1);
        if (close == std::string::npos) break;
        v = html.substr(e + 1, close - e - 1);
      } else {
        size_t s = e;
        while (e < end && !std::isspace(static_cast<unsigned char>(html[e]))) ++e;
        v = html.substr(s, e - s);
      }
      out.push_back(Trim(v));
      break;
    }
    pos = end;
  }
  return out;
}

std::string DecodeHtmlAmp(std::string s) {
  size_t p;
  while ((p = s.find("&amp;")) != std::string::npos) s.replace(p, 5, "&");
  return s;
}

}  // namespace

Status CrawlRun::RunHtml() {
  std::fprintf(stderr, "crawl: HTML pages from %s to depth %d; robots.txt %s; %s\n", o_.url.c_str(), o_.depth,
               ObeyRobotsFor(false) ? "obeyed" : "ignored (--robots ignore)", policy_.c_str());
  if (!IsHttpUrl(o_.url)) return Status::InvalidArgument("--url must be an http(s) URL for --source html");
  set_window(std::max<int64_t>(256, 8 * o_.concurrency));
  MF_RETURN_IF_ERROR(ResumeQueued());
  std::string host = http::HostOf(o_.url);
  int64_t sid = source_id_;
  std::string start = o_.url;
  MF_RETURN_IF_ERROR(writer_->Submit([sid, start](db::Database& db) -> Status {
    MF_ASSIGN_OR_RETURN(db::Stmt * st, db.Cached(
        "INSERT INTO frontier(source_id, url, kind, depth, state, updated_at) VALUES(?,?,'page',0,'queued',?) "
        "ON CONFLICT(source_id, url, post_id) DO NOTHING"));
    return st->BindAll(sid, start, db::NowIso()).Run();
  }));
  MF_RETURN_IF_ERROR(writer_->Flush());
  int64_t images = 0;
  while (true) {
    if (o_.limit > 0 && images >= o_.limit) break;
    int64_t fid = 0, depth = 0;
    std::string url;
    {
      MF_ASSIGN_OR_RETURN(db::Stmt * st, rdb_.Cached(
          "SELECT id, url, depth FROM frontier WHERE source_id=? AND kind='page' AND state='queued' ORDER BY depth, id LIMIT 1"));
      st->Bind(1, source_id_);
      MF_ASSIGN_OR_RETURN(bool row, st->Step());
      if (row) {
        fid = st->Int(0);
        url = st->Text(1);
        depth = st->Int(2);
      }
      st->Reset();
    }
    if (!fid) break;
    auto mark = [&](const std::string& state, int code, const std::string& err) -> Status {
      return writer_->Submit([=](db::Database& db) -> Status {
        MF_ASSIGN_OR_RETURN(db::Stmt * st, db.Cached(
            "UPDATE frontier SET state=?, http_status=?, error=?, attempts=attempts+1, updated_at=? WHERE id=?"));
        st->Bind(1, state).Bind(2, code);
        BindText(st, 3, err);
        return st->Bind(4, db::NowIso()).Bind(5, fid).Run();
      });
    };
    MF_ASSIGN_OR_RETURN(bool allowed, RobotsAllow(url, false));
    if (!allowed) {
      MF_RETURN_IF_ERROR(mark("skipped", 0, "robots"));
      MF_RETURN_IF_ERROR(writer_->Flush());
      counters_.Skipped("robots_page");
      continue;
    }
    http::Request rq;
    rq.url = url;
    rq.max_bytes = 16 << 20;
    rq.urgent = true;
    http::Response r = http_->Get(rq);
    counters_.Page();
    if (!r.ok()) {
      MF_RETURN_IF_ERROR(mark("failed", r.status, r.Reason()));
      MF_RETURN_IF_ERROR(writer_->Flush());
      counters_.Failed("page_" + r.Reason());
      continue;
    }
    std::string base = r.effective_url.empty() ? url : r.effective_url;
    std::vector<NewPost> posts;
    for (const auto& src : AttrValues(r.body, "img", "src")) {
      std::string abs = http::ResolveUrl(base, DecodeHtmlAmp(src));
      if (!IsHttpUrl(abs)) continue;
      if (o_.limit > 0 && images + static_cast<int64_t>(posts.size()) >= o_.limit) break;
      NewPost p;
      p.remote_id = abs;
      p.file_url = abs;
      p.page_url = url;
      p.depth = static_cast<int>(depth);
      posts.push_back(std::move(p));
    }
    std::vector<std::string> links;
    if (depth < o_.depth) {
      for (const auto& href : AttrValues(r.body, "a", "href")) {
        std::string abs = http::ResolveUrl(base, DecodeHtmlAmp(href));
        if (IsHttpUrl(abs) && http::HostOf(abs) == host) links.push_back(abs);
      }
    }
    images += static_cast<int64_t>(posts.size());
    int64_t d1 = depth + 1;
    int code = r.status;
    MF_ASSIGN_OR_RETURN(auto jobs, UpsertPosts(posts, [=](db::Database& db) -> Status {
      std::string now = db::NowIso();
      MF_ASSIGN_OR_RETURN(db::Stmt * ins, db.Cached(
          "INSERT INTO frontier(source_id, url, kind, depth, state, updated_at) VALUES(?,?,'page',?,'queued',?) "
          "ON CONFLICT(source_id, url, post_id) DO NOTHING"));
      for (const auto& l : links) MF_RETURN_IF_ERROR(ins->BindAll(sid, l, d1, now).Run());
      MF_ASSIGN_OR_RETURN(db::Stmt * st, db.Cached(
          "UPDATE frontier SET state='done', http_status=?, error=NULL, attempts=attempts+1, updated_at=? WHERE id=?"));
      return st->BindAll(code, now, fid).Run();
    }));
    ScheduleImages(jobs);
  }
  WaitImages(0);
  return writer_->Flush();
}

// ---------------------------------------------------------------------------------
// A local folder: one post per image file (remote id: the path relative to the folder),
// tags from a CSV or .txt sidecars. Files go through the same checks and storage as
// downloads.

namespace {

std::vector<std::string> SplitCsvLine(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool q = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (q) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        q = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      q = true;
    } else if (c == ',') {
      out.push_back(Trim(cur));
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  out.push_back(Trim(cur));
  return out;
}

std::string TagWord(std::string s) {
  s = AsciiLower(Trim(s));
  for (auto& c : s)
    if (c == ' ') c = '_';
  return s;
}

// "blonde hair, blue_eyes" or "blonde_hair blue_eyes" -> tags.
std::vector<std::string> SplitTags(const std::string& text) {
  std::vector<std::string> out;
  if (text.find(',') != std::string::npos) {
    std::stringstream ss(text);
    std::string t;
    while (std::getline(ss, t, ','))
      if (!Trim(t).empty()) out.push_back(TagWord(t));
  } else {
    std::stringstream ss(text);
    std::string t;
    while (ss >> t) out.push_back(TagWord(t));
  }
  return out;
}

bool IsImageFile(const fs::path& p) {
  std::string e = AsciiLower(p.extension().string());
  return e == ".jpg" || e == ".jpeg" || e == ".png" || e == ".gif" || e == ".webp" || e == ".bmp";
}

}  // namespace

// Labels CSV: `file` names the image; `tags` holds tags; an attribute column
// "<x>_color" (hair_color, eye_color) with value v gives "v_hair" / "v_eyes" (the
// Danbooru names); other columns are kept in meta_json only.
Result<std::unordered_map<std::string, std::pair<std::vector<std::string>, std::string>>> ReadLabels(
    const std::string& path) {
  MF_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line)) return Status::InvalidArgument(path + " is empty");
  std::vector<std::string> head = SplitCsvLine(line);
  for (auto& h : head) h = AsciiLower(h);
  int file_col = -1;
  for (size_t i = 0; i < head.size(); ++i)
    if (head[i] == "file" || head[i] == "filename" || head[i] == "image" || head[i] == "path") file_col = static_cast<int>(i);
  if (file_col < 0) return Status::InvalidArgument(path + ": no file/filename column in the header");
  std::unordered_map<std::string, std::pair<std::vector<std::string>, std::string>> out;
  while (std::getline(in, line)) {
    if (Trim(line).empty()) continue;
    auto cells = SplitCsvLine(line);
    if (static_cast<int>(cells.size()) <= file_col) continue;
    std::vector<std::string> tags;
    nlohmann::json meta = nlohmann::json::object();
    for (size_t i = 0; i < cells.size() && i < head.size(); ++i) {
      if (static_cast<int>(i) == file_col || cells[i].empty()) continue;
      const std::string& h = head[i];
      meta[h] = cells[i];
      if (h == "tags") {
        for (auto& t : SplitTags(cells[i])) tags.push_back(t);
      } else if (h == "hair_color" || h == "hair_colour" || h == "hair") {
        tags.push_back(TagWord(cells[i]) + "_hair");
      } else if (h == "eye_color" || h == "eye_colour" || h == "eyes") {
        tags.push_back(TagWord(cells[i]) + "_eyes");
      }
    }
    out[cells[file_col]] = {tags, meta.dump()};
  }
  return out;
}

Status CrawlRun::RunDir() {
  fs::path root(o_.url);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return Status::InvalidArgument("--url " + o_.url + " is not a folder");
  std::string labels_path = o_.labels;
  if (labels_path.empty()) {
    for (const char* name : {"labels.csv", "tags.csv"})
      if (fs::exists(root / name)) labels_path = (root / name).string();
  }
  std::unordered_map<std::string, std::pair<std::vector<std::string>, std::string>> labels;
  if (!labels_path.empty()) {
    MF_ASSIGN_OR_RETURN(labels, ReadLabels(labels_path));
  }
  std::fprintf(stderr, "crawl: folder %s; tags from %s\n", o_.url.c_str(),
               labels_path.empty() ? ".txt sidecars" : labels_path.c_str());
  std::vector<std::string> files;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file() && IsImageFile(it->path())) files.push_back(fs::relative(it->path(), root).string());
  }
  std::sort(files.begin(), files.end());
  if (o_.limit > 0 && static_cast<int64_t>(files.size()) > o_.limit) files.resize(static_cast<size_t>(o_.limit));
  progress_->set_total(static_cast<int64_t>(files.size()));
  set_window(64);
  for (size_t start = 0; start < files.size(); start += 1000) {
    std::vector<NewPost> batch;
    for (size_t i = start; i < std::min(files.size(), start + 1000); ++i) {
      NewPost p;
      p.remote_id = files[i];
      p.file_ext = AsciiLower(fs::path(files[i]).extension().string().substr(1));
      if (p.file_ext == "jpeg") p.file_ext = "jpg";
      std::vector<std::string> tags;
      auto lab = labels.find(files[i]);
      if (lab == labels.end()) lab = labels.find(fs::path(files[i]).filename().string());
      if (lab != labels.end()) {
        tags = lab->second.first;
        p.meta_json = lab->second.second;
      } else {
        for (const auto& side : {(root / files[i]).string() + ".txt",
                                 (root / fs::path(files[i]).replace_extension(".txt")).string()}) {
          auto t = ReadFile(side);
          if (t.ok()) {
            tags = SplitTags(*t);
            break;
          }
        }
      }
      for (auto& t : tags) p.tags.emplace_back(t, "");
      batch.push_back(std::move(p));
    }
    MF_ASSIGN_OR_RETURN(auto jobs, UpsertPosts(batch));
    for (const auto& j : jobs) {
      WaitImages(window_);
      ingest_->Expect(j.post_id);
      {
        std::lock_guard<std::mutex> l(wait_mu_);
        in_flight_++;
      }
      std::string path = (root / j.url).string();
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
  }
  WaitImages(0);
  return writer_->Flush();
}

// Removes blobs that no images row names, and temporary files: what a crawl killed
// between writing a blob and committing its row leaves behind.
Status SweepOrphanBlobs(const Workspace& ws, db::Database& db, int64_t* removed) {
  std::unordered_set<std::string> known;
  MF_ASSIGN_OR_RETURN(db::Stmt st, db.Prepare("SELECT sha256 FROM images WHERE blob_path IS NOT NULL"));
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    known.insert(st.Text(0));
  }
  std::error_code ec;
  if (!fs::exists(ws.blobs_dir(), ec)) return Status::Ok();
  std::vector<fs::path> doomed;
  for (auto it = fs::recursive_directory_iterator(ws.blobs_dir(), ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (ec) break;
    if (!it->is_regular_file()) continue;
    std::string name = it->path().filename().string();
    if (name.find(".tmp.") != std::string::npos || !known.count(name)) doomed.push_back(it->path());
  }
  for (const auto& p : doomed) {
    fs::remove(p, ec);
    if (!ec) (*removed)++;
  }
  return Status::Ok();
}

Status Validate(const CrawlOptions& o) {
  static const char* kSources[] = {"danbooru", "moebooru", "gelbooru", "urls", "html", "dir"};
  if (std::find_if(std::begin(kSources), std::end(kSources), [&](const char* s) { return o.source == s; }) ==
      std::end(kSources))
    return Status::InvalidArgument("--source must be one of danbooru|moebooru|gelbooru|urls|html|dir, not '" +
                                   o.source + "'");
  if (o.url.empty()) return Status::InvalidArgument("--url is required");
  bool api = o.source == "danbooru" || o.source == "moebooru" || o.source == "gelbooru";
  if ((api || o.source == "html") && !IsHttpUrl(o.url))
    return Status::InvalidArgument("--url must be an http(s) URL for --source " + o.source);
  if (o.limit < 0) return Status::InvalidArgument("--limit must be >= 0");
  MF_RETURN_IF_ERROR(Shard::Parse(o.shard).status());
  if (o.concurrency < 1 || o.concurrency > 256) return Status::InvalidArgument("--concurrency must be in 1..256");
  if (o.rate < 0) return Status::InvalidArgument("--rate must be >= 0");
  if (o.robots != "auto" && o.robots != "obey" && o.robots != "ignore")
    return Status::InvalidArgument("--robots must be auto|obey|ignore");
  if (o.max_bytes <= 0) return Status::InvalidArgument("--max-bytes must be > 0");
  if (o.max_pixels <= 0) return Status::InvalidArgument("--max-pixels must be > 0");
  if (o.near_dup_threshold > NearDupIndex::kMaxThreshold)
    return Status::InvalidArgument("--near-dup-threshold must be <= " + std::to_string(NearDupIndex::kMaxThreshold));
  if (o.timeout_s <= 0) return Status::InvalidArgument("--timeout must be > 0");
  if (o.retries < 0) return Status::InvalidArgument("--retries must be >= 0");
  if (o.depth < 0) return Status::InvalidArgument("--depth must be >= 0");
  return Status::Ok();
}

}  // namespace

Result<db::StageSummary> Crawl(const Workspace& ws, const CrawlOptions& opts) {
  auto t0 = std::chrono::steady_clock::now();
  MF_RETURN_IF_ERROR(Validate(opts));
  MF_RETURN_IF_ERROR(ws.CheckExists());
  MF_RETURN_IF_ERROR(ws.CreateDirs());
  CrawlOptions o = opts;
  if (o.source == "dir") {
    std::error_code ec;
    o.url = fs::weakly_canonical(o.url, ec).string();
  } else if (o.source == "urls") {
    std::error_code ec;
    o.url = fs::weakly_canonical(o.url, ec).string();
  } else if (o.source != "html") {
    o.url = StripSlash(o.url);
  }

  // One crawl per workspace at a time: a second would race on blobs and the frontier.
  std::string lock_path = ws.root() + "/crawl.lock";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) return Status::IoError("cannot open " + lock_path);
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd);
    return Status::InvalidArgument("another crawl is running in " + ws.root() + " (" + lock_path + " is locked)");
  }
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{lock_fd};

  MF_ASSIGN_OR_RETURN(auto wdb, db::OpenWorkspace(ws));
  MF_ASSIGN_OR_RETURN(auto rdb, db::Database::Open(ws.db_path()));

  // A crawl that never finished (killed) may have left a blob without its row.
  MF_ASSIGN_OR_RETURN(int64_t unfinished,
                      wdb->QueryInt("SELECT count(*) FROM stage_runs WHERE stage='crawl' AND finished_at IS NULL"));
  if (unfinished > 0) {
    int64_t removed = 0;
    MF_RETURN_IF_ERROR(SweepOrphanBlobs(ws, *wdb, &removed));
    MF_RETURN_IF_ERROR(wdb->Exec("UPDATE stage_runs SET finished_at='" + db::NowIso() +
                                 "', failures_json='{\"interrupted\":1}' WHERE stage='crawl' AND finished_at IS NULL"));
    if (removed)
      std::fprintf(stderr, "crawl: removed %lld unreferenced blob file(s) left by an interrupted crawl\n",
                   static_cast<long long>(removed));
  }

  nlohmann::json params = {{"source", o.source}, {"url", o.url},          {"tags", o.tags},
                           {"limit", o.limit},   {"concurrency", o.concurrency}, {"rate", o.rate},
                           {"robots", o.robots}, {"max_bytes", o.max_bytes}, {"max_pixels", o.max_pixels},
                           {"near_dup_threshold", o.near_dup_threshold}};
  MF_ASSIGN_OR_RETURN(int64_t run_id, db::BeginStageRun(*wdb, "crawl", params));
  {
    MF_ASSIGN_OR_RETURN(db::Stmt st, wdb->Prepare("INSERT OR IGNORE INTO sources(kind, url) VALUES(?,?)"));
    MF_RETURN_IF_ERROR(st.BindAll(o.source, o.url).Run());
  }
  int64_t source_id = 0;
  {
    MF_ASSIGN_OR_RETURN(db::Stmt st, wdb->Prepare("SELECT id FROM sources WHERE kind=? AND url=?"));
    st.BindAll(o.source, o.url);
    MF_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return Status::Internal("source row missing");
    source_id = st.Int(0);
  }

  // Transient failures of earlier runs (timeouts, cut transfers, 5xx, 429) get another
  // chance; permanent ones (404, corrupt, too large, noai...) stay as they are.
  if (o.source != "dir") {
    MF_RETURN_IF_ERROR(wdb->Transaction([&]() -> Status {
      const std::string transient =
          "f.source_id=? AND f.kind='image' AND f.state='failed' AND f.attempts < 20 AND "
          "(f.error LIKE 'timeout%' OR f.error LIKE 'truncated%' OR f.error LIKE 'connect%' OR "
          "f.error LIKE 'transport%' OR f.error LIKE 'http_5%' OR f.error LIKE 'http_429%')";
      MF_ASSIGN_OR_RETURN(db::Stmt a, wdb->Prepare("UPDATE posts SET state='pending', error=NULL WHERE id IN "
                                                   "(SELECT f.post_id FROM frontier f WHERE " + transient + ")"));
      MF_RETURN_IF_ERROR(a.Bind(1, source_id).Run());
      MF_ASSIGN_OR_RETURN(db::Stmt b, wdb->Prepare("UPDATE frontier AS f SET state='queued' WHERE " + transient));
      return b.Bind(1, source_id).Run();
    }));
  }

  db::StageSummary sum;
  sum.stage = "crawl";
  sum.params = params;
  Status s;
  {
    CrawlRun run(ws, o, *wdb, *rdb, source_id);
    s = run.Run();
    run.DropWriter();
    run.FillSummary(sum);
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MF_RETURN_IF_ERROR(db::FinishStageRun(*wdb, run_id, sum));
  if (!s.ok()) return s;
  return sum;
}

}  // namespace moeforge::crawler
