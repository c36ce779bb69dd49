// moeforge crawl -w WS --source danbooru|moebooru|gelbooru|urls|html|dir --url URL_OR_PATH
//                [--tags "solo -monochrome"] [--limit N] [--concurrency C] [--rate R/s] ...
#include <memory>

#include "cli/command.h"
#include "crawler/crawler.h"

namespace moeforge::cli {

Command AddCrawlCommand(CLI::App& root) {
  auto* app = root.add_subcommand("crawl", "Crawl a booru API, URL list, HTML pages or a local folder into the workspace");
  auto ws = std::make_shared<std::string>();
  auto o = std::make_shared<crawler::CrawlOptions>();
  app->add_option("-w,--workspace", *ws, "Workspace folder")->required();
  app->add_option("--source", o->source, "danbooru|moebooru|gelbooru|urls|html|dir")->required();
  app->add_option("--url", o->url,
                  "API base URL (https://danbooru.donmai.us), URL list file, start page, or image folder")
      ->required();
  app->add_option("--tags", o->tags, "Tag query for booru APIs, e.g. \"solo -monochrome\"")->capture_default_str();
  app->add_option("--limit", o->limit, "Take at most this many posts/files (0: all)")->capture_default_str();
  app->add_option("--concurrency", o->concurrency, "Image transfers in flight")->capture_default_str();
  app->add_option("--rate", o->rate,
                  "API requests per second per host (0: polite default, 0.5-1.5 s apart; unlimited on loopback)")
      ->capture_default_str();
  app->add_option("--robots", o->robots,
                  "robots.txt: auto (obey for urls/html, not for API pages), obey, ignore")
      ->capture_default_str();
  app->add_option("--contact", o->user_agent_contact,
                  "E-mail or URL put in the User-Agent so site operators can reach you")
      ->capture_default_str();
  app->add_option("--labels", o->labels, "dir: CSV with a file column and tags/attribute columns "
                                          "(default: labels.csv or tags.csv in the folder, else .txt sidecars)")
      ->capture_default_str();
  app->add_option("--max-bytes", o->max_bytes, "Refuse files larger than this while downloading")
      ->capture_default_str();
  app->add_option("--max-pixels", o->max_pixels, "Refuse images whose header declares more pixels, before decoding")
      ->capture_default_str();
  app->add_option("--near-dup-threshold", o->near_dup_threshold,
                  "dHash Hamming distance at or below which an image is a near duplicate (-1: off, max 7)")
      ->capture_default_str();
  app->add_option("--depth", o->depth, "html: link depth from the start page")->capture_default_str();
  app->add_option("--page-limit", o->page_limit, "Posts per API page (0: the dialect's maximum)")
      ->capture_default_str();
  app->add_option("--timeout", o->timeout_s, "Seconds without progress before a transfer is abandoned")
      ->capture_default_str();
  app->add_option("--retries", o->retries, "Extra attempts for transient failures (5xx, 429, timeouts)")
      ->capture_default_str();
  app->add_option("--ca-file", o->ca_file, "Also trust the CA certificates in this PEM file for https (a private mirror)")
      ->check(CLI::ExistingFile);
  app->add_flag("--quiet", o->quiet, "No progress line");
  app->add_flag("--json", o->json, "Print the summary as one JSON object");
  return {app, [ws, o]() -> int {
            auto s = crawler::Crawl(Workspace(*ws), *o);
            if (!s.ok()) return Fail("crawl", s.status());
            db::PrintSummary(*s, o->json);
            return 0;
          }};
}

}  // namespace moeforge::cli
