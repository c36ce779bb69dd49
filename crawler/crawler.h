// The crawl stage (DESIGN.md): sources -> posts, source tags and content-addressed
// original images in one workspace.
//
//   danbooru|moebooru|gelbooru  a booru API at --url, paged newest first with --tags
//   urls                        a text file of image URLs, one a line (# comments)
//   html                        pages from --url: same-host links to --depth, <img> sources
//   dir                         a local folder of images; tags from a CSV (--labels, or
//                               labels.csv / tags.csv in the folder: column `file`, then
//                               `tags` (space separated) or attribute columns such as
//                               hair_color=blonde -> blonde_hair, eye_color=blue ->
//                               blue_eyes) or per-image .txt sidecars (comma or space
//                               separated tags)
//
// Every fetched file is sniffed by magic bytes, its dimensions read from its header and
// refused above max_pixels before any decode, its SHA-256 taken, and it is stored once at
// Workspace::BlobPath(sha) (an unnamed file linked there; crawler/blob_store.h) before
// its images row commits. Exact duplicates share one blob; of near duplicates (dHash
// within near_dup_threshold) the copy with the most pixels is kept (lossless over lossy
// at equal size; crawler/ingest.h), whichever the site lists first: the others are linked
// to it (posts.image_sha256 = the kept copy's, state "duplicate", images.near_dup_of) and
// not stored, and a better copy found later replaces the kept one (its blob is removed;
// detect then works on the new). The frontier (every URL with its state, attempts, next
// try, HTTP status, error, ETag/Last-Modified) lives in the database, so a crawl killed
// at any moment resumes where it stopped; re-running a finished crawl asks the site only
// for posts newer than the newest one it has; images that failed transiently (timeout,
// cut transfer, 5xx, 429) are asked for again, permanent failures (404, corrupt, too
// large, noai...) are not.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "core/workspace.h"
#include "db/stage_run.h"

namespace moeforge::crawler {

struct CrawlOptions {
  std::string source;   // danbooru|moebooru|gelbooru|urls|html|dir
  std::string url;      // API base URL, URL list file, start page, or folder
  std::string tags;     // API tag query ("solo -monochrome")
  int64_t limit = 0;    // posts (or files) to take from the source; 0 = all
  std::string shard;    // "i/N": keep only the posts whose remote id hashes to part i (core/shard.h)
  int concurrency = 8;  // image transfers in flight (and per image host)
  // Requests per second to one site, API pages and its file hosts sharing one budget;
  // 0 = the polite default (one request every 0.5-1.5 s) or, on loopback, unlimited.
  double rate = 0;
  double jitter_s = -1;  // added at random to each interval; -1: 1 s with the polite default (0.5-1.5 s), 0 with --rate
  std::string robots = "auto";  // auto (obey for urls/html, not for API pages)|obey|ignore
  std::string user_agent_contact;  // goes into the User-Agent: "moeforge/0.1.0 (+CONTACT)"
  std::string labels;   // dir: a CSV of file,tags... (default: labels.csv / tags.csv there)
  int64_t max_bytes = 50 << 20;       // larger files are refused while streaming
  int64_t max_pixels = 50'000'000;    // larger declared dimensions are refused undecoded
  int near_dup_threshold = 4;         // dHash Hamming distance; -1 turns near-dup off
  int depth = 1;                      // html: link depth from the start page
  int page_limit = 0;                 // API page size; 0 = the dialect's maximum
  double timeout_s = 20;              // low-speed (stall) timeout per transfer
  int retries = 3;                    // extra attempts for transient failures
  std::string ca_file;                // extra CA certificates (PEM) to trust for https
  // ---- booru APIs: what to take (decided on the API's metadata, before any download;
  // a filtered post is recorded as skipped with error "filtered:<reason>") ----
  std::string min_size;               // "WxH": both sides at least this ("" none)
  std::string aspect;                 // "MIN:MAX" of width/height, e.g. "0.5:2" ("" none)
  std::string rating;                 // allowed ratings, letters or words: "g,s" ("" any)
  std::string exclude_tags;           // a blacklist: posts with any of these tags are skipped
  std::string ext;                    // allowed file types: "jpg,png,webp" ("" any image)
  int64_t max_posts_per_query = 0;    // stop a query after this many posts passed the filters
  // original | sample (the site's sample when it has one) | auto (the smallest rendition
  // whose shorter side is at least min_variant_px, else the original)
  std::string variant = "original";
  int min_variant_px = 800;
  double retry_after_max_s = 600;     // a site's Retry-After is honoured up to this long
  bool write_metadata = false;        // <sha256>.json beside each blob: the post's API record
  bool json = false;                  // summary as JSON (the CLI prints it)
  bool quiet = false;                 // no progress line
};

// Runs one crawl into `ws` (which must exist: `moeforge init`). Prints the politeness
// choice and a progress line on stderr; returns the summary (done = files stored, skipped
// = already there, exact or near duplicates, restricted; failed by reason), which is also
// recorded in stage_runs. InvalidArgument for bad options, Network when the source itself
// cannot be read (the API's first page, the list file).
Result<db::StageSummary> Crawl(const Workspace& ws, const CrawlOptions& opts);

}  // namespace moeforge::crawler
