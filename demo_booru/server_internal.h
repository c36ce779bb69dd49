// Private to the demo booru server (server.cpp, server_dialects.cpp): the cached post,
// tag queries, and the three dialects' post formats.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "demo_booru/server.h"

namespace moeforge::demo::internal {

// A rendered post as the server keeps it: metadata plus the bytes it serves.
struct Entry {
  PostMeta meta;
  std::string bytes;         // what a healthy original request serves (md5 == meta.md5)
  std::string content_type;  // of `bytes`
  std::string dir;           // "ab/cd" from the md5
  std::string preview;       // JPEG, fits 180x180
  std::string sample;        // JPEG, fits sample_px (meta.sample_width > 0), else empty
  int preview_w = 0, preview_h = 0;
  std::vector<std::string> general;  // tag_string_general
  std::vector<std::string> meta_tags;  // tag_string_meta
};

enum class Dialect { kDanbooru, kMoebooru, kGelbooru };

// A parsed `tags=` search.
struct TagQuery {
  std::vector<std::string> include, exclude;
  std::set<Rating> ratings;            // empty: any
  std::set<Rating> excluded_ratings;
  std::optional<int64_t> id_eq, id_lt, id_gt;
  bool ascending = false;              // order:id / sort:id:asc
  bool impossible = false;             // contradictory terms (rating:g rating:s)
  bool empty() const {
    return include.empty() && exclude.empty() && ratings.empty() && excluded_ratings.empty() &&
           !id_eq && !id_lt && !id_gt && !impossible;
  }
};
Result<TagQuery> ParseTagQuery(const std::string& tags, Dialect d);
bool Matches(const TagQuery& q, const PostMeta& p);

// The rating as the dialect writes it in a post.
std::string RatingFor(Rating r, Dialect d);

std::string Md5Hex(std::string_view data);
// A small, valid PNG (signature, IHDR, one IDAT, IEND, correct CRCs) whose IHDR declares
// width x height RGB pixels while its pixel data is a few bytes. `comment` goes into a
// tEXt chunk, so that every post's forged file has its own md5.
std::string ForgedPng(uint32_t width, uint32_t height, const std::string& comment);
std::string Join(const std::vector<std::string>& v, const char* sep = " ");

// Danbooru "2023-03-17T03:50:48.762-05:00", Gelbooru "Wed Mar 15 09:46:20 -0500 2023"
// (both in a fixed UTC-5).
std::string DanbooruTime(int64_t unix_s, int millis);
std::string GelbooruTime(int64_t unix_s);

// URLs of a post's files, `base` being "http://host:port".
std::string OriginalUrl(const Entry& e, Dialect d, const std::string& base);
// The sample's URL (all dialects share /data/sample/); the original's when it has none.
std::string SampleUrl(const Entry& e, const std::string& base);
// Whether the API withholds the post's file (deleted, banned, restricted: no file_url, no md5).
bool Withheld(const PostMeta& m);
std::string PreviewUrl(const Entry& e, Dialect d, const std::string& base);

nlohmann::ordered_json DanbooruPost(const Entry& e, const std::string& base);
// Danbooru's Rails XML of one post object: dashed names, type= and nil= attributes.
std::string DanbooruPostXml(const nlohmann::ordered_json& post, const std::string& indent);
nlohmann::ordered_json MoebooruPost(const Entry& e, const std::string& base);
nlohmann::ordered_json GelbooruPost(const Entry& e, const std::string& base);
// One <post> element, 0.2.5+ element style, indented by `indent`.
std::string GelbooruPostXml(const Entry& e, const std::string& base, const std::string& indent);

}  // namespace moeforge::demo::internal
