// Where posts come from. A source reads one site, list or folder and yields what it
// finds into the frontier (crawler/frontier.h), which owns the database rows, the fetches
// and the ingest; a source owns only its own paging and its own cursor rows. As waifuc's
// sources do: a source yields items, it does not store them.
//
//   danbooru|moebooru|gelbooru  source_booru.cpp  a booru API, paged newest first
//   urls                        source_urls.cpp   a text file of image URLs
//   html                        source_html.cpp   same-host pages to a depth, <img> sources
//   dir                         source_dir.cpp    a local folder, tags from CSV or sidecars
#pragma once

#include <memory>

#include "core/status.h"
#include "crawler/booru_api.h"
#include "crawler/crawler.h"

namespace moeforge::crawler {

class Frontier;

class PostSource {
 public:
  virtual ~PostSource() = default;
  // Reads the source and yields its posts into `frontier` (Frontier::Yield) until it is
  // exhausted or the limit is reached; returns when every image it yielded is decided.
  // An error only when the source itself cannot be read (its first page, its list file).
  virtual Status Run(Frontier& frontier) = 0;
  // False for sources of local files: the frontier then makes no HTTP client.
  virtual bool fetches() const { return true; }
};

std::unique_ptr<PostSource> MakeBooruSource(Dialect dialect);
std::unique_ptr<PostSource> MakeUrlListSource();
std::unique_ptr<PostSource> MakeHtmlSource();
std::unique_ptr<PostSource> MakeDirSource();

// The source `opts.source` names; InvalidArgument for an unknown name.
Result<std::unique_ptr<PostSource>> MakeSource(const CrawlOptions& opts);

}  // namespace moeforge::crawler
