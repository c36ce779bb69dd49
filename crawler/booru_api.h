// The three booru API dialects: how to ask for a page of posts and how to read the
// answer (JSON or XML, every shape the recorded responses in ../shared/assets/api
// show) into one PostRecord shape.
//   danbooru  /posts.json?tags=&page=&limit=            (danbooru, safebooru.donmai.us)
//   moebooru  /post.json?tags=&page=&limit=             (konachan, yande.re)
//   gelbooru  /index.php?page=dapi&s=post&q=index&json=1&tags=&pid=&limit=
//                                                        (gelbooru, safebooru.org)
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace moeforge::crawler {

enum class Dialect { kDanbooru, kMoebooru, kGelbooru };
Result<Dialect> DialectFromName(const std::string& name);
const char* DialectName(Dialect d);

// A smaller rendition the site serves beside the original (Danbooru's large_file_url and
// media_asset variants, Moebooru's sample_url and jpeg_url, Gelbooru's sample_url).
struct PostVariant {
  std::string name;  // "sample", "jpeg", "720x720", ...
  std::string url;   // absolute
  int64_t width = 0, height = 0;  // 0 when the site does not say
};

struct PostRecord {
  std::string remote_id;
  std::string md5;        // may be empty (restricted posts, safebooru.org's "hash" is used)
  std::string file_url;   // absolute; empty when the site withholds it
  std::string page_url;
  std::string rating;     // general|sensitive|safe|questionable|explicit ("" unknown)
  std::string file_ext;   // lower-case, no dot
  std::string created_at; // as the site gave it; Unix times become ISO 8601 UTC
  int64_t width = 0, height = 0;
  std::vector<std::pair<std::string, std::string>> tags;  // (tag, category or "")
  std::vector<PostVariant> variants;  // smaller renditions, the original excluded
  // Non-empty: not fetchable. deleted|banned (the site says so), restricted (no file_url:
  // withheld from this user), video (mp4, webm, swf), ugoira (Pixiv's zip of frames),
  // not_image (any other extension).
  std::string skip_reason;
  std::string meta_json;    // the post object as the site sent it (XML: as flat JSON)
};

struct PostPage {
  std::vector<PostRecord> posts;
  int64_t count = -1;  // total matches when the site says (Gelbooru's count), else -1
};

// Reads one API response body (JSON or XML, sniffed from its first character).
// `base_url` is the site root, used for relative file URLs and page URLs.
Result<PostPage> ParsePostPage(Dialect d, const std::string& body, const std::string& base_url);

// The URL of page `page` (1-based) of a tag search, `limit` posts a page. `auth` is
// appended as-is ("&login=..&api_key=.."), from AuthQueryFromEnv.
std::string PostPageUrl(Dialect d, const std::string& base_url, const std::string& tags, int64_t page,
                        int limit, const std::string& auth = "");
// The URL of the page of posts with ids below `before_id` (newest first), the id cursor
// each site documents: Danbooru page=b<ID>, Moebooru and Gelbooru the tag id:<ID with the
// first page (page=1, pid=0). Numbered pages stop at the site's page cap (Danbooru 1000);
// a cursor does not.
std::string CursorPageUrl(Dialect d, const std::string& base_url, const std::string& tags, int64_t before_id,
                          int limit, const std::string& auth = "");
// Whether `tags` asks for an order other than newest first (order:, sort:), where an id
// cursor would skip posts: such a query pages by number.
bool OrdersOtherThanNewest(const std::string& tags);
// The most search terms (metatags included) an anonymous account may use: Danbooru 2,
// Moebooru 6 (yande.re, konachan); 0: none known (Gelbooru). An id:< cursor takes one.
int AnonymousTagLimit(Dialect d);
// The environment variables holding the dialect's credentials, for messages:
// "MOEFORGE_GELBOORU_USER_ID and MOEFORGE_GELBOORU_API_KEY".
std::string CredentialVariables(Dialect d);
// API credentials from the environment (never from the command line, so they do not
// show in shell history or `ps`): MOEFORGE_<DIALECT>_LOGIN and MOEFORGE_<DIALECT>_API_KEY
// (Gelbooru: user_id and api_key). Empty when unset.
std::string AuthQueryFromEnv(Dialect d);
// The largest page size the dialect's servers accept.
int MaxPageLimit(Dialect d);

}  // namespace moeforge::crawler
