// Fault injection for the demo booru (`moeforge demo-booru --faults SPEC`). Every fault
// is decided per post from (seed, post id, fault name) alone, so a test or the crawler's
// scoring can predict, without talking to the server, what each post's image request will
// do and whether a correct crawler ends up storing the post or recording it as failed.
//
// SPEC is a comma-separated list of name=value. Fault names take a probability in [0, 1];
// parameter names take a number:
//
//   fault            what the ORIGINAL image request of an affected post does      outcome
//   rate429          the first `fail_first` requests: 429 + Retry-After:           stored
//                    `retry_after` s (JSON error body); later requests: the image
//   5xx              the first `fail_first` requests: 500, 502 or 503 (chosen per  stored
//                    post and attempt); later requests: the image
//   5xx_perm         every request: 500                                            failed http_500
//   stall            headers with the full Content-Length and the first part of    failed timeout
//                    the body, then nothing for `stall_ms` (every request), then
//                    the rest. Only a client whose timeout is below stall_ms fails.
//   truncate         Content-Length of the whole file, half the body, then the     failed truncated
//                    connection is closed (every request)
//   corrupt          the full length with the right Content-Type, but every byte   failed corrupt
//                    after the first 64 is garbled; the API's md5 is that of the
//                    real image, so the md5 no longer matches and decoding fails
//   ctype            200 with Content-Type text/html and an HTML page (a login/     failed content_type
//                    challenge page) instead of the image
//   redirect_loop    302 to /redirect/ID/a -> 302 /redirect/ID/b -> 302 back to   failed redirect_loop
//                    the original URL, forever
//   redirect_scheme  302 to a non-http URL: ftp://HOST/... or file:///etc/passwd   failed redirect_scheme
//                    (chosen per post)
//   oversize         a body of `oversize_mb` MiB (the image, then zero bytes);     failed too_large
//                    half of the posts declare it in Content-Length, the other
//                    half send it chunked with no length
//   huge_dims        a tiny valid PNG whose IHDR declares 100000x100000 pixels;    failed huge_dims
//                    the API reports these dimensions, file_ext png, and the md5
//                    of these very bytes, so only a pixel-count check catches it
//   noai             the image with "X-Robots-Tag: noai, noimageai" (every         failed noai
//                    request); DESIGN.md's politeness policy says: do not keep it
//
// One more fault hits API pages instead of images:
//   api429           an API request (list, single post or count, any dialect) whose target
//                    (path?query exactly as sent) draws uniform(seed, target) < rate is
//                    answered 429 + Retry-After for its first `fail_first` requests; see
//                    ApiRateLimited(). A client that retries loses nothing.
//
//   parameter        default
//   fail_first       2       failed attempts before a transient fault (rate429, 5xx) clears
//   retry_after      1       seconds, the Retry-After of rate429
//   stall_ms         30000   how long a stall lasts (Stop() cuts it short)
//   oversize_mb      64      body size of oversize
//
// A post has at most one fault: each fault's draw is uniform(seed, id, name) < rate, and
// when several draw true the first in the table's order wins. An exact duplicate (same
// bytes, so the same md5 and file URL) takes its original's draw: one URL, one fault. Preview/thumbnail files
// and API pages are never faulted. "stored" assumes a client that retries at least
// `fail_first` times and honours Retry-After; "failed" is the reason a correct client
// should record.
// Example: "rate429=0.05,5xx=0.05,stall=0.02,truncate=0.02,corrupt=0.02,ctype=0.02,
//           redirect_loop=0.01,redirect_scheme=0.01,oversize=0.01,huge_dims=0.01"
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace moeforge::demo {

enum class Fault {
  kNone = 0,
  kRate429,
  k5xx,
  k5xxPermanent,
  kStall,
  kTruncate,
  kCorrupt,
  kContentType,
  kRedirectLoop,
  kRedirectScheme,
  kOversize,
  kHugeDims,
  kNoAi,
};
constexpr int kFaultCount = 13;  // including kNone

// "none", "rate429", "5xx", "5xx_perm", "stall", ... (the SPEC names).
const char* FaultName(Fault f);

struct FaultSpec {
  std::array<double, kFaultCount> rate{};  // indexed by Fault; rate[kNone] unused
  int fail_first = 2;
  int retry_after_s = 1;
  int stall_ms = 30000;
  int64_t oversize_bytes = 64ll << 20;
  double api429 = 0;  // rate of API request targets answered 429 at first

  bool empty() const;
  // Canonical SPEC text (faults with a non-zero rate, then non-default parameters).
  std::string ToString() const;
};

// Parses SPEC; "" is no faults. Unknown names or values out of range: InvalidArgument.
Result<FaultSpec> ParseFaultSpec(const std::string& spec);

// What happens to one post's image and what a correct crawler ends up with.
struct FaultVerdict {
  Fault fault = Fault::kNone;
  bool stored = true;   // false: the post must be recorded as failed
  std::string reason;   // for failed posts: http_500, timeout, truncated, corrupt,
                        // content_type, redirect_loop, redirect_scheme, too_large,
                        // huge_dims, noai; "" when stored
};

FaultVerdict FaultFor(uint64_t seed, int64_t post_id, const FaultSpec& spec);
Result<FaultVerdict> FaultFor(uint64_t seed, int64_t post_id, const std::string& spec);

// Whether the API request `target` ("/posts.json?tags=solo&page=2", as sent) starts with
// `fail_first` 429 answers.
bool ApiRateLimited(uint64_t seed, const std::string& target, const FaultSpec& spec);

// A uniform draw in [0, 1) from (seed, post id, name): the one source of every
// per-post random choice the server makes (faults, ratings, variants).
double UniformFor(uint64_t seed, int64_t post_id, const std::string& name);
uint64_t HashFor(uint64_t seed, int64_t post_id, const std::string& name);

}  // namespace moeforge::demo
