// moeforge crawl -w WS --source danbooru|moebooru|gelbooru|urls|html|dir --url URL_OR_PATH
//                [--tags "solo -monochrome"] [--limit N] [--concurrency C] [--rate R/s] ...
#include <memory>

#include "cli/command.h"
#include "cli/options.h"
#include "crawler/crawler.h"

namespace moeforge::cli {

Command AddCrawlCommand(CLI::App& root) {
  auto* app = root.add_subcommand("crawl", "Crawl a booru API, URL list, HTML pages or a local folder into the workspace");
  auto ws = std::make_shared<std::string>();
  auto o = std::make_shared<crawler::CrawlOptions>();
  app->add_option("-w,--workspace", *ws, "Workspace folder")->required();
  CrawlOptionTable(o.get()).AddFlags(app);
  app->add_flag("--json", o->json, "Print the summary as one JSON object");
  return {app, [ws, o]() -> int {
            auto s = crawler::Crawl(Workspace(*ws), *o);
            if (!s.ok()) return Fail("crawl", s.status());
            db::PrintSummary(*s, o->json);
            return 0;
          }};
}

}  // namespace moeforge::cli
