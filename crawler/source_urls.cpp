// The URL list source: one image URL a line; blank lines and # comments ignored.
#include "crawler/source.h"
#include "core/strings.h"
#include "core/workspace.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "crawler/frontier.h"

namespace moeforge::crawler {

namespace {

class UrlListSource : public PostSource {
 public:
  Status Run(Frontier& f) override;
};

Status UrlListSource::Run(Frontier& f) {
  const CrawlOptions& o = f.options();
  MF_ASSIGN_OR_RETURN(std::string text, ReadFile(o.url));
  std::fprintf(stderr, "crawl: URL list %s; robots.txt %s\n", o.url.c_str(),
               f.ObeyRobotsFor(false) ? "obeyed" : "ignored (--robots ignore)");
  f.set_window(std::max<int64_t>(256, 8 * o.concurrency));
  MF_RETURN_IF_ERROR(f.ResumeQueued());
  std::istringstream in(text);
  std::string line;
  std::vector<NewPost> batch;
  int64_t n = 0, bad = 0;
  auto flush = [&]() -> Status {
    if (batch.empty()) return Status::Ok();
    Status s = f.Yield(std::move(batch));
    batch.clear();
    return s;
  };
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (!IsHttpUrl(line)) {
      bad++;
      continue;
    }
    if (o.limit > 0 && n >= o.limit) break;
    n++;
    NewPost p;
    p.remote_id = line;
    p.file_url = line;
    batch.push_back(std::move(p));
    if (batch.size() >= 500) MF_RETURN_IF_ERROR(flush());
  }
  MF_RETURN_IF_ERROR(flush());
  if (bad) std::fprintf(stderr, "crawl: ignored %lld line(s) that are not http(s) URLs\n", static_cast<long long>(bad));
  f.Drain();
  return f.writer().Flush();
}

}  // namespace

std::unique_ptr<PostSource> MakeUrlListSource() { return std::make_unique<UrlListSource>(); }

}  // namespace moeforge::crawler
