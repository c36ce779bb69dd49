// The demo booru's HTTP server (DESIGN.md, "The demo booru"): posts 1..N drawn by
// demo_booru/render.h, served on loopback in the three booru dialects the crawler speaks, with
// the ground truth of every post and the faults of demo_booru/faults.h.
//
//   Danbooru   GET /posts.json?tags=&page=&limit=   limit 20 by default, at most 200; page
//                                                    N (1-based, at most 1000) or the
//                                                    cursors bID (ids below ID) / aID (above)
//              GET /posts.xml, /posts/ID.xml        the same in Danbooru's Rails XML
//              GET /posts/ID.json                   one post object; 404 JSON when unknown
//              GET /counts/posts.json?tags=         {"counts":{"posts":N}}
//              GET /robots.txt                      today's Danbooru template: /*.json is
//                                                    disallowed for every user agent
//              GET /data/original/ab/cd/MD5.EXT      the image (faults apply)
//              GET /data/preview/ab/cd/MD5.jpg       a 180x180-bounded JPEG preview
//              GET /data/sample/ab/cd/sample-MD5.jpg a `sample_px`-bounded JPEG sample
//                                                    (large_file_url when has_large)
//   Moebooru   GET /post.json?tags=&page=&limit=    limit 16 by default, at most 1000;
//                                                    created_at a Unix time, s/q/e ratings
//              GET /image/MD5/ANY-NAME.EXT           the image (faults apply)
//   Gelbooru   GET /index.php?page=dapi&s=post&q=index&json=1&tags=&pid=&limit=&id=
//                                                    0.2.5+ {"@attributes":{..},"post":[..]}
//                                                    ("post" absent when empty); without
//                                                    json=1 the 0.2.5+ element-style XML.
//                                                    limit 100 by default, at most 1000;
//                                                    pid 0-based
//              GET /images/ab/cd/MD5.EXT             the image (faults apply)
//              GET /thumbnails/ab/cd/thumbnail_MD5.jpg
//
// Moebooru's sample_url and Gelbooru's sample_url point at the same sample file.
// Site rules, each off by default (Options): a page cap for numbered pages in every
// dialect (Danbooru 410, Moebooru 424, Gelbooru "Too deep"); the anonymous tag limit
// (Danbooru 2, Moebooru 6 terms, metatags included; a request with login/api_key,
// user_id/api_key or password_hash is not anonymous); a Cloudflare-style challenge (403,
// cf-mitigated: challenge, "Just a moment...") for every request after the first N; Gelbooru's
// API key (since 2025): a 401 or 403 to API requests without user_id and api_key;
// posts that cannot be had (deleted, banned, restricted: no file_url or md5; video and
// ugoira: an mp4 or zip file_url); WebP originals; file URLs on another host name.
// The api429 fault (demo_booru/faults.h) may answer any of these API requests with 429 first.
// Every list is newest first (descending id). Tag search: space-separated tags that must
// all be present, `-tag` to exclude, the metatags rating:X (and -rating:X; Danbooru
// g/s/q/e or general/sensitive/..., Moebooru s/q/e, Gelbooru words) and id:N.
// Posts are rendered once each, all at Start() (`prerender`, the default) or the first
// time anything needs them, and cached as encoded bytes: the server is not the bottleneck.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "demo_booru/faults.h"
#include "demo_booru/render.h"

namespace moeforge::demo {

enum class Rating { kGeneral, kSensitive, kQuestionable, kExplicit };

// One post as every dialect reports it, with its truth.
struct PostMeta {
  int64_t id = 0;
  PostKind kind = PostKind::kNormal;
  int64_t duplicate_of = 0;        // 0 unless kind is kDuplicate
  std::string md5;                 // the API's md5: of the bytes a healthy request serves
  std::string file_ext;            // "png" | "jpg" | "webp"; "mp4" | "zip" for video and ugoira
  // "" (an ordinary post) or why the file cannot be had: deleted|banned|restricted|video|ugoira.
  std::string unavailable;
  int sample_width = 0, sample_height = 0;  // 0: no sample (has_large false)
  int64_t sample_size = 0;
  int width = 0, height = 0;       // as the API reports them
  int64_t file_size = 0;
  Rating rating = Rating::kGeneral;
  int64_t created_at = 0;          // Unix seconds; grows with id
  int score = 0;
  std::vector<std::string> tags;   // every tag of the post (general, copyright, artist, meta)
  std::string artist;              // the one artist tag (also in `tags`)
  std::vector<FaceTruth> faces;    // the true face boxes and their schema tags
  FaultVerdict fault;
  // The JSON Lines record of --dump-truth (DESIGN.md) plus "fault":{name,stored,reason}.
  std::string TruthJson() const;
};

struct ServerStats {
  int64_t requests = 0;       // every request answered
  int64_t api_requests = 0;   // list / post / count endpoints of all dialects
  int64_t image_requests = 0; // originals, previews and fault detours
  int64_t faults_injected = 0;
  int64_t rendered = 0;       // posts rendered so far
  int64_t original_requests = 0, sample_requests = 0;
  int64_t original_bytes = 0, sample_bytes = 0;  // body bytes of healthy 200 answers
  int64_t challenges = 0;     // requests answered with the challenge page
};

// One request as it arrived (Options::log_requests).
struct RequestLogEntry {
  double t = 0;          // seconds on a monotonic clock (steady_clock), at arrival
  std::string host;      // the Host header
  std::string target;    // path?query
};

class DemoBooru {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 0;              // 0: a free port, see port()
    int posts = 500;           // ids 1..posts
    uint64_t seed = 1;
    std::string faults;        // demo_booru/faults.h SPEC; "" for none
    int threads = 16;          // HTTP worker threads (one per open keep-alive connection)
    // Render every post at Start(), in parallel (about 50 posts/s per 2 busy cores), so
    // that no API page waits on drawing; false renders each post when first asked for
    // (a tag search or a Gelbooru count still renders them all).
    bool prerender = true;

    // ---- site rules (defaults keep the booru as it always was) ----
    int page_cap = 1000;          // highest numbered page served (Gelbooru: pid + 1)
    bool anon_tag_limit = false;  // refuse anonymous searches over 2 (Danbooru) / 6 (Moebooru) terms
    int64_t challenge_after = -1; // >= 0: every request after this many gets the challenge page
    int gelbooru_key_status = 0;  // 401 or 403: Gelbooru API requests without user_id and api_key get it
    double unavailable_rate = 0;  // share of posts deleted, banned, restricted, video or ugoira
    double webp_rate = 0;         // share of posts (normal kind) whose original is WebP
    int sample_px = 0;            // > 0: posts whose longer side exceeds it get a sample that size
    std::string file_host;        // non-empty: file URLs name this host (same port), e.g. localhost
    bool log_requests = false;    // keep every request's arrival (request_log())
  };

  explicit DemoBooru(Options options);
  ~DemoBooru();  // Stop()s
  DemoBooru(const DemoBooru&) = delete;
  DemoBooru& operator=(const DemoBooru&) = delete;

  // Checks the options, binds and starts serving on background threads. InvalidArgument
  // for a bad fault spec or post count, IoError when the address cannot be bound.
  Status Start();
  // The bound port (after Start()).
  int port() const;
  // "http://HOST:PORT".
  std::string base_url() const;
  // Stops accepting, cuts stalls short and joins every thread. Idempotent.
  void Stop();

  const Options& options() const;
  const FaultSpec& fault_spec() const;
  // Post `id` (1..posts), rendered on first use. NotFound outside the range.
  Result<PostMeta> Post(int64_t id);
  // All posts' truth records as JSON Lines, in id order (renders every post).
  Status WriteTruth(const std::string& path);
  ServerStats stats() const;
  // Requests for post `id`'s original file so far (its md5's URL; exact duplicates share one).
  int64_t OriginalHits(int64_t id) const;
  int64_t SampleHits(int64_t id) const;
  std::vector<RequestLogEntry> request_log() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

const char* RatingLetter(Rating r);  // Danbooru's today: g s q e
const char* RatingWord(Rating r);    // general sensitive questionable explicit

}  // namespace moeforge::demo
