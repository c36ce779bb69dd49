// The booru API sources (the dialects of crawler/booru_api.h): pages newest first. A pass
// pages until an empty page, the limit, or a post at or below `stop_at` (the newest id of
// the last finished pass), so a re-run asks only for what is new. After the first page it
// follows the id cursor (Danbooru page=b<ID>, Moebooru/Gelbooru id:<ID), which no page cap
// stops; a query ordered otherwise pages by number. Each page's posts, tags, image rows and
// the cursor commit together. Posts are decided before download (crawler/post_filter.h);
// search terms beyond an anonymous account's limit are checked on our side.
#include "crawler/source.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include <fmt/format.h>

#include "crawler/frontier.h"
#include "crawler/post_filter.h"

namespace moeforge::crawler {

namespace {

class BooruSource : public PostSource {
 public:
  explicit BooruSource(Dialect d) : d_(d) {}
  Status Run(Frontier& f) override;

 private:
  Dialect d_;
};

// What a stop for a challenge page says: what happened, and what the user can do.
std::string ChallengeMessage(Dialect d, const std::string& origin, int64_t requests) {
  return fmt::format(
      "{} answered with a bot challenge page (Cloudflare's \"Just a moment...\"): the site, or its CDN, wants a "
      "browser check, which moeforge does not attempt. The crawl stopped after {} request(s) instead of retrying "
      "into a ban; what it stored is kept and a later run resumes. What you can do: wait some hours before trying "
      "again, crawl slower (--rate), name yourself in the User-Agent (--contact), or crawl with the site's API "
      "credentials ({})",
      origin, requests, CredentialVariables(d));
}

Status BooruSource::Run(Frontier& f) {
  const CrawlOptions& o = f.options();
  const Dialect d = d_;
  std::string base = StripSlash(o.url);
  int page_limit = o.page_limit > 0 ? std::min(o.page_limit, MaxPageLimit(d)) : MaxPageLimit(d);
  if (o.limit > 0 && o.limit < page_limit) page_limit = static_cast<int>(std::max<int64_t>(1, o.limit));
  f.set_window(std::max<int64_t>(2 * page_limit, 4 * o.concurrency));
  std::string auth = AuthQueryFromEnv(d);
  MF_ASSIGN_OR_RETURN(PostFilter filter, PostFilter::FromOptions(o));
  const bool by_cursor = !OrdersOtherThanNewest(o.tags);
  int max_terms = auth.empty() ? AnonymousTagLimit(d) : 0;
  if (max_terms > 0 && by_cursor && d != Dialect::kDanbooru) max_terms -= 1;  // id:<N takes one
  MF_ASSIGN_OR_RETURN(std::string site_tags, filter.TakeOverTerms(o.tags, max_terms));
  std::fprintf(stderr, "crawl: %s API at %s%s; robots.txt %s for API pages; %s\n", DialectName(d), base.c_str(),
               auth.empty() ? "" : " (credentials from the environment)",
               f.ObeyRobotsFor(true) ? "obeyed" : "not consulted (--robots obey to consult it)", f.policy().c_str());
  if (!filter.moved().empty()) {
    std::string moved;
    for (const auto& t : filter.moved()) moved += (moved.empty() ? "" : " ") + t;
    std::fprintf(stderr,
                 "crawl: anonymous %s searches allow %d term(s)%s; sending \"%s\" and checking \"%s\" on our side "
                 "(set %s for more)\n",
                 DialectName(d), AnonymousTagLimit(d), by_cursor && d != Dialect::kDanbooru ? ", the id cursor one" : "",
                 site_tags.c_str(), moved.c_str(), CredentialVariables(d).c_str());
  }
  if (o.variant != "original")
    std::fprintf(stderr, "crawl: fetching the %s rendition%s\n", o.variant.c_str(),
                 o.variant == "auto" ? fmt::format(" (the smallest with a shorter side of at least {} px)",
                                                   o.min_variant_px).c_str()
                                     : " (the site's sample where it has one)");
  MF_RETURN_IF_ERROR(f.ResumeQueued());
  const std::string sig = filter.Signature();

  // The cursor of this query.
  std::string state = "done", old_sig;
  int64_t next_page = 1, taken = 0, stop_at = 0, next_before = 0, passed = 0;
  bool have = false;
  {
    MF_ASSIGN_OR_RETURN(db::Stmt st, f.reader().Prepare(
        "SELECT state, next_page, taken, COALESCE(stop_at, 0), COALESCE(next_before, 0), COALESCE(filter_sig, ''), "
        "passed FROM crawl_cursors WHERE source_id=? AND query=?"));
    st.BindAll(f.source_id(), o.tags);
    MF_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) {
      have = true;
      state = st.Text(0);
      next_page = st.Int(1);
      taken = st.Int(2);
      stop_at = st.Int(3);
      next_before = st.Int(4);
      old_sig = st.Text(5);
      passed = st.Int(6);
    }
  }
  if (!have || state == "done") {
    bool refilter = have && stop_at > 0 && old_sig != sig;
    if (refilter) {
      std::fprintf(stderr,
                   "crawl: the filters changed since the last pass: listing the query again to decide its posts "
                   "anew (stored images are not fetched again)\n");
      stop_at = 0;
    }
    next_page = 1;
    taken = 0;
    passed = 0;
    next_before = 0;
    int64_t sid = f.source_id();
    std::string q = o.tags;
    MF_RETURN_IF_ERROR(f.writer().Submit([sid, q, sig, refilter](db::Database& db) -> Status {
      MF_ASSIGN_OR_RETURN(db::Stmt * st, db.Cached(
          "INSERT INTO crawl_cursors(source_id, query, state, next_page, taken, updated_at, filter_sig, passed) "
          "VALUES(?,?,'paging',1,0,?,?,0) ON CONFLICT(source_id, query) DO UPDATE SET state='paging', next_page=1, "
          "taken=0, passed=0, next_before=NULL, pass_newest=NULL, filter_sig=excluded.filter_sig, "
          "stop_at=CASE WHEN ? THEN NULL ELSE stop_at END, updated_at=excluded.updated_at"));
      return st->BindAll(sid, q, db::NowIso(), sig, refilter ? 1 : 0).Run();
    }));
    MF_RETURN_IF_ERROR(f.writer().Flush());
    if (stop_at > 0)
      std::fprintf(stderr, "crawl: asking only for posts newer than %lld\n", static_cast<long long>(stop_at));
  } else if (next_before > 0 && by_cursor) {
    std::fprintf(stderr, "crawl: resuming the interrupted pass at the id cursor (ids below %lld)\n",
                 static_cast<long long>(next_before));
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
    if (o.max_posts_per_query > 0 && passed >= o.max_posts_per_query) {
      std::fprintf(stderr, "crawl: %lld post(s) passed the filters: --max-posts-per-query reached\n",
                   static_cast<long long>(passed));
      finished = true;
      break;
    }
    if (f.challenged()) {
      f.counters().Failed("challenge");
      return Status::Network(ChallengeMessage(d, f.api_origin(), f.http().stats().requests));
    }
    const bool cursor_page = by_cursor && next_before > 0;
    std::string url = cursor_page ? CursorPageUrl(d, base, site_tags, next_before, page_limit)
                                  : PostPageUrl(d, base, site_tags, next_page, page_limit);  // as recorded (no credentials)
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
    if (next_page == 1 && !cursor_page) {
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
    f.ReportRetryAfterCut();
    if (r.status == 304 && r.error.empty()) {
      finished = true;  // page 1 unchanged: nothing new
      break;
    }
    if (r.error == "challenge") {
      f.counters().Failed("challenge");
      return Status::Network(ChallengeMessage(d, f.api_origin(), f.http().stats().requests));
    }
    if (r.error.empty() && (r.status == 401 || r.status == 403)) {
      f.counters().Failed("page_" + r.Reason());
      return Status::Network(fmt::format(
          "{} refused the API request (HTTP {}){}: set {} in the environment{}", f.api_origin(), r.status,
          auth.empty() ? " without credentials" : " with the credentials given", CredentialVariables(d),
          d == Dialect::kGelbooru ? " (Gelbooru has asked for an API key and user id since 2025; both are on its "
                                    "account options page)"
                                  : ""));
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
      std::fprintf(stderr, "crawl: stopping at %s: %s%s\n",
                   cursor_page ? fmt::format("the id cursor {}", next_before).c_str()
                               : fmt::format("page {}", next_page).c_str(),
                   page.status().ToString().c_str(),
                   cursor_page ? "" : " (a query with order: or sort: pages by number, which sites cap)");
      break;
    }
    first_request = false;
    if (page->posts.empty()) {
      finished = true;
      break;
    }
    std::vector<NewPost> take;
    bool reached_stop = false, reached_max = false;
    int64_t newest = 0, oldest = 0, np_passed = passed;
    for (auto& rec : page->posts) {
      int64_t id = std::strtoll(rec.remote_id.c_str(), nullptr, 10);
      if (stop_at > 0 && id > 0 && id <= stop_at) {
        reached_stop = true;
        break;
      }
      if (o.limit > 0 && taken + static_cast<int64_t>(take.size()) >= o.limit) break;
      // Decided on the record, which then moves into the post.
      std::string filtered;
      std::optional<ChosenVariant> chosen;
      if (rec.skip_reason.empty()) {
        std::string why = filter.Reason(rec);
        if (!why.empty()) {
          filtered = "filtered:" + why;
        } else {
          if (o.max_posts_per_query > 0 && np_passed >= o.max_posts_per_query) {
            reached_max = true;
            // The rest of this page is listed but not taken (nor recorded): counted by reason.
            int64_t rest = static_cast<int64_t>(page->posts.size()) - (&rec - page->posts.data());
            f.counters().Skipped("max_posts_per_query", rest);
            break;
          }
          chosen = ChooseVariant(rec, o.variant, o.min_variant_px);
          ++np_passed;
        }
      }
      NewPost p = FromRecord(std::move(rec));
      if (!filtered.empty()) p.skip_reason = std::move(filtered);
      if (chosen) {
        if (chosen->name != "original") {
          p.file_url = chosen->url;
          p.md5.clear();  // the site's md5 is the original's
        }
        p.variant = chosen->name;
      }
      newest = std::max(newest, id);
      if (id > 0) oldest = oldest == 0 ? id : std::min(oldest, id);
      take.push_back(std::move(p));
    }
    int64_t sid = f.source_id();
    std::string q = o.tags;
    int64_t npg = next_page + 1;
    int64_t nt = taken + static_cast<int64_t>(take.size());
    int64_t nb = by_cursor && oldest > 0 ? oldest : 0;
    std::string etag = r.Header("etag"), lm = r.Header("last-modified");
    int code = r.status;
    MF_RETURN_IF_ERROR(f.YieldAhead(std::move(take), [=](db::Database& db) -> Status {
      std::string now = db::NowIso();
      MF_ASSIGN_OR_RETURN(db::Stmt * cur, db.Cached(
          "UPDATE crawl_cursors SET next_page=?, taken=?, next_before=?, passed=?, "
          "pass_newest=MAX(COALESCE(pass_newest, 0), ?), updated_at=? WHERE source_id=? AND query=?"));
      cur->BindAll(npg, nt);
      if (nb > 0) cur->Bind(3, nb); else cur->Bind(3, nullptr);
      MF_RETURN_IF_ERROR(cur->Bind(4, np_passed).Bind(5, newest).Bind(6, now).Bind(7, sid).Bind(8, q).Run());
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
    next_page = npg;
    next_before = nb;
    passed = np_passed;
    if (reached_stop || reached_max) {
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
  if (f.challenged()) {
    f.counters().Failed("challenge");
    return Status::Network(ChallengeMessage(d, f.api_origin(), f.http().stats().requests));
  }
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
