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
  std::string skip_reason;  // non-empty: not fetchable (restricted, not_image)
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
// API credentials from the environment (never from the command line, so they do not
// show in shell history or `ps`): MOEFORGE_<DIALECT>_LOGIN and MOEFORGE_<DIALECT>_API_KEY
// (Gelbooru: user_id and api_key). Empty when unset.
std::string AuthQueryFromEnv(Dialect d);
// The largest page size the dialect's servers accept.
int MaxPageLimit(Dialect d);

}  // namespace moeforge::crawler
