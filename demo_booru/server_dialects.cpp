// The demo booru's three dialects: tag queries and the post objects of Danbooru,
// Moebooru and Gelbooru, mirroring the recorded responses in shared/assets/api (field
// names, order, types: Danbooru ISO times, Moebooru Unix times, Gelbooru's string
// booleans and "ab/cd" directories).
#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <ctime>

#include <openssl/evp.h>

#include "demo_booru/server_internal.h"
#include "core/hash.h"
#include "core/http.h"
#include "core/strings.h"

namespace moeforge::demo::internal {
namespace {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

// The ratings a dialect's rating:VALUE names; empty when VALUE is not a rating there.
std::set<Rating> RatingsNamed(const std::string& value, Dialect d) {
  std::set<Rating> out;
  for (const std::string& v : Split(value, ',')) {
    if (d == Dialect::kMoebooru) {
      // Moebooru knows s/q/e; the server writes general as s, sensitive/questionable as q.
      if (v == "s" || v == "safe") out.insert(Rating::kGeneral);
      else if (v == "q" || v == "questionable") out.insert({Rating::kSensitive, Rating::kQuestionable});
      else if (v == "e" || v == "explicit") out.insert(Rating::kExplicit);
      else return {};
    } else {
      if (v == "g" || v == "general" || (d == Dialect::kGelbooru && v == "safe")) out.insert(Rating::kGeneral);
      else if (v == "s" || v == "sensitive") out.insert(Rating::kSensitive);
      else if (v == "q" || v == "questionable") out.insert(Rating::kQuestionable);
      else if (v == "e" || v == "explicit") out.insert(Rating::kExplicit);
      else return {};
    }
  }
  return out;
}

bool ParseId(const std::string& s, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  *out = std::stoll(s);
  return true;
}

int64_t TagCount(const std::vector<std::string>& v) { return static_cast<int64_t>(v.size()); }

}  // namespace

Result<TagQuery> ParseTagQuery(const std::string& tags, Dialect d) {
  TagQuery q;
  std::string cur;
  std::vector<std::string> tokens;
  for (char c : tags + " ") {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!cur.empty()) tokens.push_back(AsciiLower(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  for (const std::string& tok : tokens) {
    bool negated = tok.size() > 1 && tok[0] == '-';
    std::string t = negated ? tok.substr(1) : tok;
    if (t.rfind("rating:", 0) == 0) {
      std::set<Rating> r = RatingsNamed(t.substr(7), d);
      if (r.empty()) return Status::InvalidArgument("unknown rating in '" + tok + "'");
      if (negated) {
        q.excluded_ratings.insert(r.begin(), r.end());
      } else if (q.ratings.empty()) {
        q.ratings = r;
      } else {  // two rating: terms must both hold
        std::set<Rating> both;
        for (Rating x : r)
          if (q.ratings.count(x)) both.insert(x);
        q.ratings = both;
        if (both.empty()) q.impossible = true;
      }
      continue;
    }
    if (t.rfind("id:", 0) == 0 && !negated) {
      std::string v = t.substr(3);
      int64_t n = 0;
      if (!v.empty() && (v[0] == '<' || v[0] == '>')) {
        if (!ParseId(v.substr(1), &n)) return Status::InvalidArgument("bad id term '" + tok + "'");
        (v[0] == '<' ? q.id_lt : q.id_gt) = n;
      } else {
        if (!ParseId(v, &n)) return Status::InvalidArgument("bad id term '" + tok + "'");
        q.id_eq = n;
      }
      continue;
    }
    if (t == "order:id" || t == "order:id_asc" || t == "sort:id:asc") {
      q.ascending = true;
      continue;
    }
    if (t == "order:id_desc" || t == "sort:id:desc" || t == "sort:id") {
      q.ascending = false;
      continue;
    }
    (negated ? q.exclude : q.include).push_back(t);
  }
  return q;
}

bool Matches(const TagQuery& q, const PostMeta& p) {
  if (q.impossible) return false;
  if (q.id_eq && p.id != *q.id_eq) return false;
  if (q.id_lt && p.id >= *q.id_lt) return false;
  if (q.id_gt && p.id <= *q.id_gt) return false;
  if (!q.ratings.empty() && !q.ratings.count(p.rating)) return false;
  if (q.excluded_ratings.count(p.rating)) return false;
  // p.tags is sorted (server.cpp builds it so).
  for (const std::string& t : q.include)
    if (!std::binary_search(p.tags.begin(), p.tags.end(), t)) return false;
  for (const std::string& t : q.exclude)
    if (std::binary_search(p.tags.begin(), p.tags.end(), t)) return false;
  return true;
}

std::string RatingFor(Rating r, Dialect d) {
  switch (d) {
    case Dialect::kDanbooru: return RatingLetter(r);
    case Dialect::kGelbooru: return RatingWord(r);
    case Dialect::kMoebooru:
      return r == Rating::kGeneral ? "s" : (r == Rating::kExplicit ? "e" : "q");
  }
  return "g";
}

std::string Md5Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), digest, &n, EVP_md5(), nullptr);
  return HexLower(digest, n);
}

namespace {

uint32_t Crc32(const std::string& s) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  uint32_t c = 0xffffffffu;
  for (unsigned char b : s) c = table[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

void PutBe32(std::string& out, uint32_t v) {
  out += static_cast<char>(v >> 24);
  out += static_cast<char>(v >> 16);
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v);
}

void PutChunk(std::string& out, const char* type, const std::string& data) {
  PutBe32(out, static_cast<uint32_t>(data.size()));
  std::string body = std::string(type, 4) + data;
  out += body;
  PutBe32(out, Crc32(body));
}

}  // namespace

std::string ForgedPng(uint32_t width, uint32_t height, const std::string& comment) {
  std::string png("\x89PNG\r\n\x1a\n", 8);
  std::string ihdr;
  PutBe32(ihdr, width);
  PutBe32(ihdr, height);
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB, deflate, no filter, no interlace
  PutChunk(png, "IHDR", ihdr);
  PutChunk(png, "tEXt", std::string("Comment\0", 8) + comment);
  // A zlib stream holding the first scanline's filter byte and a few zero pixels, stored
  // uncompressed: a decoder reads the header happily and only then runs out of data.
  std::string raw(1 + 3 * 16, '\0');
  std::string z("\x78\x01", 2);
  z += '\x01';  // final stored block
  z += static_cast<char>(raw.size() & 0xff);
  z += static_cast<char>(raw.size() >> 8);
  z += static_cast<char>(~raw.size() & 0xff);
  z += static_cast<char>((~raw.size() >> 8) & 0xff);
  z += raw;
  uint32_t a = 1, b = 0;  // adler32
  for (unsigned char c : raw) a = (a + c) % 65521, b = (b + a) % 65521;
  PutBe32(z, (b << 16) | a);
  PutChunk(png, "IDAT", z);
  PutChunk(png, "IEND", "");
  return png;
}



std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

std::string DanbooruTime(int64_t unix_s, int millis) {
  time_t t = static_cast<time_t>(unix_s - 5 * 3600);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03d-05:00", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis % 1000);
  return buf;
}

std::string GelbooruTime(int64_t unix_s) {
  time_t t = static_cast<time_t>(unix_s - 5 * 3600);
  std::tm tm{};
  gmtime_r(&t, &tm);
  static const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s %s %02d %02d:%02d:%02d -0500 %04d", kDays[tm.tm_wday],
                kMonths[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
  return buf;
}

std::string OriginalUrl(const Entry& e, Dialect d, const std::string& base) {
  const PostMeta& m = e.meta;
  switch (d) {
    case Dialect::kDanbooru:
      return base + "/data/original/" + e.dir + "/" + m.md5 + "." + m.file_ext;
    case Dialect::kMoebooru:
      // Like konachan: the tags in a URL-encoded file name that nobody should parse.
      return base + "/image/" + m.md5 + "/" +
             http::UrlEncode("Demo " + std::to_string(m.id) + " " + Join(m.tags)) + "." + m.file_ext;
    case Dialect::kGelbooru:
      return base + "/images/" + e.dir + "/" + m.md5 + "." + m.file_ext;
  }
  return "";
}

std::string SampleUrl(const Entry& e, const std::string& base) {
  if (e.meta.sample_width <= 0) return OriginalUrl(e, Dialect::kDanbooru, base);
  return base + "/data/sample/" + e.dir + "/sample-" + e.meta.md5 + ".jpg";
}

bool Withheld(const PostMeta& m) {
  return m.unavailable == "deleted" || m.unavailable == "banned" || m.unavailable == "restricted";
}

std::string PreviewUrl(const Entry& e, Dialect d, const std::string& base) {
  if (d == Dialect::kGelbooru) return base + "/thumbnails/" + e.dir + "/thumbnail_" + e.meta.md5 + ".jpg";
  return base + "/data/preview/" + e.dir + "/" + e.meta.md5 + ".jpg";
}

nlohmann::ordered_json DanbooruPost(const Entry& e, const std::string& base) {
  const PostMeta& m = e.meta;
  nlohmann::ordered_json j;
  std::string time = DanbooruTime(m.created_at, static_cast<int>(m.id * 37 % 1000));
  std::string file_url = OriginalUrl(e, Dialect::kDanbooru, base);
  j["id"] = m.id;
  j["created_at"] = time;
  j["uploader_id"] = 100000 + m.id % 97;
  j["score"] = m.score;
  j["source"] = "";
  j["md5"] = m.md5;
  j["last_comment_bumped_at"] = nullptr;
  j["rating"] = RatingFor(m.rating, Dialect::kDanbooru);
  j["image_width"] = m.width;
  j["image_height"] = m.height;
  j["tag_string"] = Join(m.tags);
  j["fav_count"] = m.score / 2;
  j["file_ext"] = m.file_ext;
  j["last_noted_at"] = nullptr;
  j["parent_id"] = nullptr;
  j["has_children"] = false;
  j["approver_id"] = nullptr;
  j["tag_count_general"] = TagCount(e.general);
  j["tag_count_artist"] = 1;
  j["tag_count_character"] = 0;
  j["tag_count_copyright"] = 1;
  j["file_size"] = m.file_size;
  j["up_score"] = m.score;
  j["down_score"] = 0;
  j["is_pending"] = false;
  j["is_flagged"] = false;
  j["is_deleted"] = m.unavailable == "deleted";
  j["tag_count"] = TagCount(m.tags);
  j["updated_at"] = time;
  j["is_banned"] = m.unavailable == "banned";
  j["pixiv_id"] = nullptr;
  j["last_commented_at"] = nullptr;
  j["has_active_children"] = false;
  j["bit_flags"] = 0;
  j["tag_count_meta"] = TagCount(e.meta_tags);
  j["has_large"] = m.sample_width > 0;
  j["has_visible_children"] = false;
  j["tag_string_general"] = Join(e.general);
  j["tag_string_character"] = "";
  j["tag_string_copyright"] = "original";
  j["tag_string_artist"] = m.artist;
  j["tag_string_meta"] = Join(e.meta_tags);
  j["file_url"] = file_url;
  // Without a sample (has_large false) Danbooru repeats file_url.
  j["large_file_url"] = m.sample_width > 0 ? SampleUrl(e, base) : file_url;
  j["preview_file_url"] = PreviewUrl(e, Dialect::kDanbooru, base);
  if (!Withheld(m)) {
    // Today's API also lists every rendition with its size (media_asset.variants).
    nlohmann::ordered_json v = nlohmann::ordered_json::array();
    v.push_back({{"type", "180x180"}, {"url", PreviewUrl(e, Dialect::kDanbooru, base)}, {"width", e.preview_w},
                 {"height", e.preview_h}, {"file_ext", "jpg"}});
    if (m.sample_width > 0)
      v.push_back({{"type", "sample"}, {"url", SampleUrl(e, base)}, {"width", m.sample_width},
                   {"height", m.sample_height}, {"file_ext", "jpg"}});
    v.push_back({{"type", "original"}, {"url", file_url}, {"width", m.width}, {"height", m.height},
                 {"file_ext", m.file_ext}});
    j["media_asset"] = {{"id", m.id}, {"md5", m.md5}, {"file_ext", m.file_ext}, {"file_size", m.file_size},
                        {"image_width", m.width}, {"image_height", m.height}, {"variants", v}};
  }
  if (Withheld(m)) {
    // What an anonymous visitor gets for a deleted, banned or gold-only post.
    j.erase("md5");
    j.erase("file_url");
    j.erase("large_file_url");
    j.erase("preview_file_url");
  }
  return j;
}

std::string DanbooruPostXml(const nlohmann::ordered_json& post, const std::string& indent) {
  std::string out = indent + "<post>\n";
  for (const auto& [key, v] : post.items()) {
    if (v.is_object()) continue;  // media_asset: not in the XML this booru imitates
    std::string name = key;
    std::replace(name.begin(), name.end(), '_', '-');
    bool time = name.size() > 3 && name.compare(name.size() - 3, 3, "-at") == 0;
    std::string type;
    if (v.is_boolean()) type = " type=\"boolean\"";
    else if (v.is_number_integer()) type = " type=\"integer\"";
    else if (time) type = " type=\"dateTime\"";
    else if (v.is_null()) type = " type=\"integer\"";  // the nullable ids
    if (v.is_null()) {
      out += indent + "  <" + name + type + " nil=\"true\"/>\n";
      continue;
    }
    std::string text = v.is_string() ? v.get<std::string>() : v.dump();
    out += indent + "  <" + name + type + ">" + MarkupEscape(text) + "</" + name + ">\n";
  }
  out += indent + "</post>\n";
  return out;
}

nlohmann::ordered_json MoebooruPost(const Entry& e, const std::string& base) {
  const PostMeta& m = e.meta;
  nlohmann::ordered_json j;
  std::string file_url = OriginalUrl(e, Dialect::kMoebooru, base);
  j["id"] = m.id;
  j["tags"] = Join(m.tags);
  j["created_at"] = m.created_at;
  j["creator_id"] = 100000 + m.id % 97;
  j["author"] = "demo_uploader";
  j["change"] = 1000000 + m.id;
  j["source"] = "";
  j["score"] = m.score;
  j["md5"] = m.md5;
  j["file_size"] = m.file_size;
  j["file_ext"] = m.file_ext;
  j["file_url"] = file_url;
  j["is_shown_in_index"] = true;
  j["preview_url"] = PreviewUrl(e, Dialect::kMoebooru, base);
  j["preview_width"] = e.preview_w / 2 > 0 ? e.preview_w / 2 : 1;
  j["preview_height"] = e.preview_h / 2 > 0 ? e.preview_h / 2 : 1;
  j["actual_preview_width"] = e.preview_w;
  j["actual_preview_height"] = e.preview_h;
  // Without a sample, sample_url is the original's (as konachan does).
  j["sample_url"] = m.sample_width > 0 ? SampleUrl(e, base) : file_url;
  j["sample_width"] = m.sample_width > 0 ? m.sample_width : m.width;
  j["sample_height"] = m.sample_width > 0 ? m.sample_height : m.height;
  j["sample_file_size"] = m.sample_size;
  j["jpeg_url"] = file_url;
  j["jpeg_width"] = m.width;
  j["jpeg_height"] = m.height;
  j["jpeg_file_size"] = 0;
  j["rating"] = RatingFor(m.rating, Dialect::kMoebooru);
  j["has_children"] = false;
  j["parent_id"] = nullptr;
  j["status"] = m.unavailable == "deleted" ? "deleted" : "active";
  j["width"] = m.width;
  j["height"] = m.height;
  j["is_held"] = false;
  j["frames_pending_string"] = "";
  j["frames_pending"] = nlohmann::ordered_json::array();
  j["frames_string"] = "";
  j["frames"] = nlohmann::ordered_json::array();
  if (Withheld(m)) {
    j.erase("md5");
    j.erase("file_url");
    j.erase("sample_url");
    j.erase("jpeg_url");
  }
  return j;
}

namespace {

// Gelbooru's fields in its order, as strings ready for XML; `number` marks JSON numbers.
struct GelField {
  const char* name;
  std::string value;
  bool number;
};

std::vector<GelField> GelbooruFields(const Entry& e, const std::string& base) {
  const PostMeta& m = e.meta;
  auto n = [](int64_t v) { return std::to_string(v); };
  return {
      {"id", n(m.id), true},
      {"created_at", GelbooruTime(m.created_at), false},
      {"score", n(m.score), true},
      {"width", n(m.width), true},
      {"height", n(m.height), true},
      {"md5", Withheld(m) ? "" : m.md5, false},
      {"directory", Withheld(m) ? "" : e.dir, false},
      {"image", Withheld(m) ? "" : m.md5 + "." + m.file_ext, false},
      {"rating", RatingFor(m.rating, Dialect::kGelbooru), false},
      {"source", "", false},
      {"change", n(m.created_at), true},
      {"owner", "danbooru", false},
      {"creator_id", "6498", true},
      {"parent_id", "0", true},
      {"sample", m.sample_width > 0 ? "1" : "0", true},
      {"preview_height", n(e.preview_h), true},
      {"preview_width", n(e.preview_w), true},
      {"tags", Join(m.tags), false},
      {"title", "", false},
      {"has_notes", "false", false},
      {"has_comments", "false", false},
      {"file_url", Withheld(m) ? "" : OriginalUrl(e, Dialect::kGelbooru, base), false},
      {"preview_url", PreviewUrl(e, Dialect::kGelbooru, base), false},
      {"sample_url", m.sample_width > 0 && !Withheld(m) ? SampleUrl(e, base) : "", false},
      {"sample_height", n(m.sample_height), true},
      {"sample_width", n(m.sample_width), true},
      {"status", m.unavailable == "deleted" ? "deleted" : "active", false},
      {"post_locked", "0", true},
      {"has_children", "false", false},
  };
}

}  // namespace

nlohmann::ordered_json GelbooruPost(const Entry& e, const std::string& base) {
  nlohmann::ordered_json j;
  for (const GelField& f : GelbooruFields(e, base)) {
    if (f.number) j[f.name] = std::stoll(f.value);
    else j[f.name] = f.value;
  }
  return j;
}

std::string GelbooruPostXml(const Entry& e, const std::string& base, const std::string& indent) {
  std::string out = indent + "<post>\n";
  for (const GelField& f : GelbooruFields(e, base)) {
    if (f.value.empty()) {
      out += indent + "    <" + f.name + " />\n";
    } else {
      out += indent + "    <" + f.name + ">" + MarkupEscape(f.value) + "</" + f.name + ">\n";
    }
  }
  out += indent + "</post>\n";
  return out;
}

}  // namespace moeforge::demo::internal
