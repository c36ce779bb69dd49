// The booru API sources (the dialects of crawler/booru_api.h): pages newest first. A pass
// pages until an empty page, the limit, or a post at or below `stop_at` (the newest id of
// the last finished pass), so a re-run asks only for what is new. Each page's posts, tags,
// image rows and the cursor commit together.
#include "crawler/source.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "crawler/frontier.h"

namespace moeforge::crawler {

namespace {

class BooruSource : public PostSource {
 public:
  explicit BooruSource(Dialect d) : d_(d) {}
  Status Run(Frontier& f) override;

 private:
  Dialect d_;
};

Status BooruSource::Run(Frontier& f) {
  const CrawlOptions& o = f.options();
  const Dialect d = d_;
  std::string base = StripSlash(o.url);
  int page_limit = o.page_limit > 0 ? std::min(o.page_limit, MaxPageLimit(d)) : MaxPageLimit(d);
  if (o.limit > 0 && o.limit < page_limit) page_limit = static_cast<int>(std::max<int64_t>(1, o.limit));
  f.set_window(std::max<int64_t>(2 * page_limit, 4 * o.concurrency));
  std::string auth = AuthQueryFromEnv(d);
  std::fprintf(stderr, "crawl: %s API at %s%s; robots.txt %s for API pages; %s\n", DialectName(d), base.c_str(),
               auth.empty() ? "" : " (credentials from the environment)",
               f.ObeyRobotsFor(true) ? "obeyed" : "not consulted (--robots obey to consult it)", f.policy().c_str());
  MF_RETURN_IF_ERROR(f.ResumeQueued());

  // The cursor of this query.
  std::string state = "done";
  int64_t next_page = 1, taken = 0, stop_at = 0;
  bool have = false;
  {
    MF_ASSIGN_OR_RETURN(db::Stmt st, f.reader().Prepare(
        "SELECT state, next_page, taken, COALESCE(stop_at, 0), COALESCE(pass_newest, 0) FROM crawl_cursors "
        "WHERE source_id=? AND query=?"));
    st.BindAll(f.source_id(), o.tags);
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
    int64_t sid = f.source_id();
    std::string q = o.tags;
    MF_RETURN_IF_ERROR(f.writer().Submit([sid, q](db::Database& db) -> Status {
      MF_ASSIGN_OR_RETURN(db::Stmt * st, db.Cached(
          "INSERT INTO crawl_cursors(source_id, query, state, next_page, taken, updated_at) "
          "VALUES(?,?,'paging',1,0,?) ON CONFLICT(source_id, query) DO UPDATE SET state='paging', next_page=1, "
          "taken=0, pass_newest=NULL, updated_at=excluded.updated_at"));
      return st->BindAll(sid, q, db::NowIso()).Run();
    }));
    MF_RETURN_IF_ERROR(f.writer().Flush());
    if (stop_at > 0)
      std::fprintf(stderr, "crawl: asking only for posts newer than %lld\n", static_cast<long long>(stop_at));
  } else {
    std::fprintf(stderr, "crawl: resuming the interrupted pass at page %lld\n", static_cast<long long>(next_page));
  }

  bool finished = false;
  bool first_request = true;
  while (true) {
    if (o.limit > 0 && taken >= o.limit) {
      finished = true;
      break;
    }
    std::string url = PostPageUrl(d, base, o.tags, next_page, page_limit);  // as recorded (no credentials)
    std::string fetch_url = url + auth;
    MF_ASSIGN_OR_RETURN(bool allowed, f.RobotsAllow(url, true));
    if (!allowed)
      return Status::InvalidArgument("robots.txt of " + f.api_origin() + " disallows " + http::PathAndQuery(url) +
                                     " (--robots obey); booru APIs are normally crawled with --robots auto");
    http::Request rq;
    rq.url = fetch_url;
    rq.max_bytes = 64 << 20;
    rq.headers.push_back("Accept: application/json, application/xml;q=0.9");
    rq.urgent = true;
    if (next_page == 1) {
      MF_ASSIGN_OR_RETURN(db::Stmt * st, f.reader().Cached("SELECT etag, last_modified FROM frontier WHERE source_id=? AND url=? AND post_id=0"));
      st->BindAll(f.source_id(), url);
      MF_ASSIGN_OR_RETURN(bool row, st->Step());
      if (row && stop_at > 0) {
        if (!st->IsNull(0)) rq.if_none_match = st->Text(0);
        if (!st->IsNull(1)) rq.if_modified_since = st->Text(1);
      }
      st->Reset();
    }
    http::Response r = f.http().Get(rq);
    f.counters().Page();
    f.DrawProgress();
    if (r.status == 304 && r.error.empty()) {
      finished = true;  // page 1 unchanged: nothing new
      break;
    }
    Result<PostPage> page = r.ok() ? ParsePostPage(d, r.body, base)
                                   : Result<PostPage>(Status::Network(fmt::format("{} {}", r.Reason(), r.error_detail)));
    if (!page.ok()) {
      int64_t sid = f.source_id();
      std::string why = page.status().message();
      int code = r.status;
      f.writer().Submit([sid, url, why, code](db::Database& db) -> Status {
        MF_ASSIGN_OR_RETURN(db::Stmt * st, db.Cached(
            "INSERT INTO frontier(source_id, url, kind, state, attempts, http_status, error, updated_at) "
            "VALUES(?,?,'page','failed',1,?,?,?) ON CONFLICT(source_id, url, post_id) DO UPDATE SET state='failed', "
            "attempts=attempts+1, http_status=excluded.http_status, error=excluded.error, updated_at=excluded.updated_at"));
        return st->BindAll(sid, url, code, why, db::NowIso()).Run();
      });
      f.counters().Failed("page_" + (r.ok() ? std::string("unreadable") : r.Reason()));
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
      if (o.limit > 0 && taken + static_cast<int64_t>(take.size()) >= o.limit) break;
      newest = std::max(newest, id);
      take.push_back(FromRecord(rec));
    }
    int64_t sid = f.source_id();
    std::string q = o.tags;
    int64_t np = next_page + 1;
    int64_t nt = taken + static_cast<int64_t>(take.size());
    std::string etag = r.Header("etag"), lm = r.Header("last-modified");
    int code = r.status;
    MF_RETURN_IF_ERROR(f.Yield(take, [=](db::Database& db) -> Status {
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
  f.Drain();
  if (finished) {
    int64_t sid = f.source_id();
    std::string q = o.tags;
    MF_RETURN_IF_ERROR(f.writer().Submit([sid, q](db::Database& db) -> Status {
      MF_ASSIGN_OR_RETURN(db::Stmt * st, db.Cached(
          "UPDATE crawl_cursors SET state='done', stop_at=MAX(COALESCE(stop_at, 0), COALESCE(pass_newest, 0)), "
          "updated_at=? WHERE source_id=? AND query=?"));
      return st->BindAll(db::NowIso(), sid, q).Run();
    }));
  }
  return f.writer().Flush();
}

}  // namespace

std::unique_ptr<PostSource> MakeBooruSource(Dialect dialect) { return std::make_unique<BooruSource>(dialect); }

}  // namespace moeforge::crawler
