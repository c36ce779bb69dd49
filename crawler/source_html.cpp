// The HTML source: breadth first from the start page over same-host links to `depth`;
// every <img src> is an image post (remote id: its URL; page_url: where it was found).
#include "crawler/source.h"
#include "core/strings.h"

#include <cctype>
#include <cstdio>

#include "crawler/frontier.h"
#include "crawler/html_links.h"

namespace moeforge::crawler {

std::vector<std::string> HtmlAttrValues(const std::string& html, const std::string& tag, const std::string& attr) {
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

namespace {

class HtmlSource : public PostSource {
 public:
  Status Run(Frontier& f) override;
};

Status HtmlSource::Run(Frontier& f) {
  const CrawlOptions& o = f.options();
  std::fprintf(stderr, "crawl: HTML pages from %s to depth %d; robots.txt %s; %s\n", o.url.c_str(), o.depth,
               f.ObeyRobotsFor(false) ? "obeyed" : "ignored (--robots ignore)", f.policy().c_str());
  if (!IsHttpUrl(o.url)) return Status::InvalidArgument("--url must be an http(s) URL for --source html");
  f.set_window(std::max<int64_t>(256, 8 * o.concurrency));
  MF_RETURN_IF_ERROR(f.ResumeQueued());
  std::string host = http::HostOf(o.url);
  int64_t sid = f.source_id();
  std::string start = o.url;
  MF_RETURN_IF_ERROR(f.writer().Submit([sid, start](db::Database& db) -> Status {
    MF_ASSIGN_OR_RETURN(db::Stmt * st, db.Cached(
        "INSERT INTO frontier(source_id, url, kind, depth, state, updated_at) VALUES(?,?,'page',0,'queued',?) "
        "ON CONFLICT(source_id, url, post_id) DO NOTHING"));
    return st->BindAll(sid, start, db::NowIso()).Run();
  }));
  MF_RETURN_IF_ERROR(f.writer().Flush());
  int64_t images = 0;
  while (true) {
    if (o.limit > 0 && images >= o.limit) break;
    int64_t fid = 0, depth = 0;
    std::string url;
    {
      MF_ASSIGN_OR_RETURN(db::Stmt * st, f.reader().Cached(
          "SELECT id, url, depth FROM frontier WHERE source_id=? AND kind='page' AND state='queued' ORDER BY depth, id LIMIT 1"));
      st->Bind(1, f.source_id());
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
      return f.writer().Submit([=](db::Database& db) -> Status {
        MF_ASSIGN_OR_RETURN(db::Stmt * st, db.Cached(
            "UPDATE frontier SET state=?, http_status=?, error=?, attempts=attempts+1, updated_at=? WHERE id=?"));
        st->Bind(1, state).Bind(2, code);
        BindText(st, 3, err);
        return st->Bind(4, db::NowIso()).Bind(5, fid).Run();
      });
    };
    MF_ASSIGN_OR_RETURN(bool allowed, f.RobotsAllow(url, false));
    if (!allowed) {
      MF_RETURN_IF_ERROR(mark("skipped", 0, "robots"));
      MF_RETURN_IF_ERROR(f.writer().Flush());
      f.counters().Skipped("robots_page");
      continue;
    }
    http::Request rq;
    rq.url = url;
    rq.max_bytes = 16 << 20;
    rq.urgent = true;
    http::Response r = f.http().Get(rq);
    f.counters().Page();
    if (!r.ok()) {
      MF_RETURN_IF_ERROR(mark("failed", r.status, r.Reason()));
      MF_RETURN_IF_ERROR(f.writer().Flush());
      f.counters().Failed("page_" + r.Reason());
      continue;
    }
    std::string base = r.effective_url.empty() ? url : r.effective_url;
    std::vector<NewPost> posts;
    for (const auto& src : HtmlAttrValues(r.body, "img", "src")) {
      std::string abs = http::ResolveUrl(base, DecodeHtmlAmp(src));
      if (!IsHttpUrl(abs)) continue;
      if (o.limit > 0 && images + static_cast<int64_t>(posts.size()) >= o.limit) break;
      NewPost p;
      p.remote_id = abs;
      p.file_url = abs;
      p.page_url = url;
      p.depth = static_cast<int>(depth);
      posts.push_back(std::move(p));
    }
    std::vector<std::string> links;
    if (depth < o.depth) {
      for (const auto& href : HtmlAttrValues(r.body, "a", "href")) {
        std::string abs = http::ResolveUrl(base, DecodeHtmlAmp(href));
        if (IsHttpUrl(abs) && http::HostOf(abs) == host) links.push_back(abs);
      }
    }
    images += static_cast<int64_t>(posts.size());
    int64_t d1 = depth + 1;
    int code = r.status;
    MF_RETURN_IF_ERROR(f.Yield(std::move(posts), [=](db::Database& db) -> Status {
      std::string now = db::NowIso();
      MF_ASSIGN_OR_RETURN(db::Stmt * ins, db.Cached(
          "INSERT INTO frontier(source_id, url, kind, depth, state, updated_at) VALUES(?,?,'page',?,'queued',?) "
          "ON CONFLICT(source_id, url, post_id) DO NOTHING"));
      for (const auto& l : links) MF_RETURN_IF_ERROR(ins->BindAll(sid, l, d1, now).Run());
      MF_ASSIGN_OR_RETURN(db::Stmt * st, db.Cached(
          "UPDATE frontier SET state='done', http_status=?, error=NULL, attempts=attempts+1, updated_at=? WHERE id=?"));
      return st->BindAll(code, now, fid).Run();
    }));
  }
  f.Drain();
  return f.writer().Flush();
}

}  // namespace

std::unique_ptr<PostSource> MakeHtmlSource() { return std::make_unique<HtmlSource>(); }

}  // namespace moeforge::crawler
