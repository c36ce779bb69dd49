#include "crawler/booru_api.h"
#include "core/strings.h"

#include <cctype>
#include <cstdlib>
#include <ctime>

#include <nlohmann/json.hpp>

#include "core/http.h"
#include "codecs/decode.h"
#include "crawler/xml_reader.h"

namespace moeforge::crawler {

using nlohmann::json;

Result<Dialect> DialectFromName(const std::string& name) {
  if (name == "danbooru") return Dialect::kDanbooru;
  if (name == "moebooru") return Dialect::kMoebooru;
  if (name == "gelbooru") return Dialect::kGelbooru;
  return Status::InvalidArgument("unknown booru dialect '" + name + "' (danbooru|moebooru|gelbooru)");
}

const char* DialectName(Dialect d) {
  switch (d) {
    case Dialect::kDanbooru: return "danbooru";
    case Dialect::kMoebooru: return "moebooru";
    case Dialect::kGelbooru: return "gelbooru";
  }
  return "?";
}

int MaxPageLimit(Dialect d) { return d == Dialect::kMoebooru ? 100 : (d == Dialect::kGelbooru ? 100 : 200); }

namespace {

std::string StripSlash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

// A field as text whatever JSON type the site used; "" for null or absent.
std::string Str(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return "";
  if (it->is_string()) return Trim(it->get<std::string>());
  if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
  if (it->is_number_unsigned()) return std::to_string(it->get<uint64_t>());
  if (it->is_number_float()) return std::to_string(static_cast<int64_t>(it->get<double>()));
  if (it->is_boolean()) return it->get<bool>() ? "true" : "false";
  return "";
}

int64_t Int(const json& o, const char* key) {
  std::string s = Str(o, key);
  return s.empty() ? 0 : std::strtoll(s.c_str(), nullptr, 10);
}

std::vector<std::string> SplitWs(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string ExtOf(const std::string& url) {
  std::string path = url.substr(0, url.find_first_of("?#"));
  auto slash = path.find_last_of('/');
  auto dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  return AsciiLower(path.substr(dot + 1));
}

bool IsVideoExt(const std::string& e) { return e == "mp4" || e == "webm" || e == "swf" || e == "mkv"; }

bool IsImageExt(const std::string& e) {
  return e.empty() || e == "jpg" || e == "jpeg" || e == "png" || e == "gif" || e == "webp" || e == "bmp";
}

// An XML <post> (attribute style or element style, Rails' dashed names) as a flat
// JSON object of strings, so one reader handles both formats.
json XmlPostToJson(const XmlNode& post) {
  json o = json::object();
  auto norm = [](std::string k) {
    for (auto& c : k)
      if (c == '-') c = '_';
    return k;
  };
  for (const auto& [k, v] : post.attrs) o[norm(k)] = v;
  for (const auto& c : post.children) {
    auto nil = c->attrs.find("nil");
    if (nil != c->attrs.end() && nil->second == "true") {
      o[norm(c->name)] = nullptr;
    } else {
      // Multi-line values (re-indented tags) collapse to single spaces later.
      o[norm(c->name)] = Trim(c->text);
    }
  }
  return o;
}

std::string UnixToIso(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string NormalizeRating(const std::string& raw, Dialect d, bool new_letters) {
  std::string r = AsciiLower(raw);
  if (r == "g") return "general";
  if (r == "s") {
    // Danbooru's letters changed in 2022: before, s meant safe; after, sensitive (and g
    // general). Moebooru and old Gelbooru keep s = safe.
    return (d == Dialect::kDanbooru && new_letters) ? "sensitive" : "safe";
  }
  if (r == "q") return "questionable";
  if (r == "e") return "explicit";
  return r;  // Gelbooru 0.2.5+ and safebooru.org JSON give whole words already
}

PostRecord ReadPost(Dialect d, const json& o, const std::string& base, bool new_letters) {
  PostRecord p;
  p.remote_id = Str(o, "id");
  p.md5 = Str(o, "md5");
  if (p.md5.empty()) p.md5 = Str(o, "hash");
  p.file_url = Str(o, "file_url");
  if (p.file_url.empty() && d == Dialect::kGelbooru) {
    std::string dir = Str(o, "directory"), image = Str(o, "image");
    // safebooru.org: no file_url; the file is at /images/<directory>/<image>.
    if (!dir.empty() && !image.empty()) p.file_url = base + "/images/" + dir + "/" + image;
  }
  if (!p.file_url.empty()) p.file_url = http::ResolveUrl(base + "/", p.file_url);
  p.width = Int(o, "image_width");
  if (p.width == 0) p.width = Int(o, "width");
  p.height = Int(o, "image_height");
  if (p.height == 0) p.height = Int(o, "height");
  p.file_ext = AsciiLower(Str(o, "file_ext"));
  if (p.file_ext.empty()) p.file_ext = ExtOf(p.file_url.empty() ? Str(o, "image") : p.file_url);
  if (p.file_ext == "jpeg") p.file_ext = "jpg";
  auto ca = o.find("created_at");
  if (ca != o.end() && ca->is_number()) {
    p.created_at = UnixToIso(ca->get<int64_t>());
  } else {
    p.created_at = Str(o, "created_at");
  }
  p.rating = NormalizeRating(Str(o, "rating"), d, new_letters);
  switch (d) {
    case Dialect::kDanbooru:
      p.page_url = base + "/posts/" + p.remote_id;
      break;
    case Dialect::kMoebooru:
      p.page_url = base + "/post/show/" + p.remote_id;
      break;
    case Dialect::kGelbooru:
      p.page_url = base + "/index.php?page=post&s=view&id=" + p.remote_id;
      break;
  }
  // Danbooru splits tags by category; the others give one string.
  static const std::pair<const char*, const char*> kCats[] = {
      {"tag_string_general", "general"}, {"tag_string_character", "character"},
      {"tag_string_copyright", "copyright"}, {"tag_string_artist", "artist"}, {"tag_string_meta", "meta"}};
  bool categorized = false;
  if (d == Dialect::kDanbooru) {
    for (const auto& [key, cat] : kCats) {
      if (o.contains(key)) categorized = true;
      for (auto& t : SplitWs(Str(o, key))) p.tags.emplace_back(t, cat);
    }
  }
  if (!categorized) {
    std::string all = Str(o, "tag_string");
    if (all.empty()) all = Str(o, "tags");
    for (auto& t : SplitWs(all)) p.tags.emplace_back(t, "");
  }
  // Smaller renditions.
  // `abs`: the URL already resolved.
  auto add_resolved = [&](const std::string& name, std::string abs, int64_t w, int64_t h) {
    if (abs == p.file_url) return;
    for (const auto& v : p.variants)
      if (v.url == abs) return;
    p.variants.push_back(PostVariant{name, std::move(abs), w, h});
  };
  auto add_variant = [&](const std::string& name, const std::string& url, int64_t w, int64_t h) {
    if (!url.empty()) add_resolved(name, http::ResolveUrl(base + "/", url), w, h);
  };
  auto ma = o.find("media_asset");
  if (ma != o.end() && ma->is_object() && ma->contains("variants") && (*ma)["variants"].is_array()) {
    for (const auto& v : (*ma)["variants"])
      if (v.is_object() && Str(v, "type") != "original") add_variant(Str(v, "type"), Str(v, "url"), Int(v, "width"), Int(v, "height"));
  }
  if (d == Dialect::kDanbooru) {
    std::string large = Str(o, "large_file_url");
    if (!large.empty()) {
      // Danbooru's sample is 850 px wide (older responses carry no variant sizes).
      int64_t w = p.width > 850 ? 850 : p.width;
      int64_t h = p.width > 0 ? p.height * w / p.width : 0;
      add_resolved("sample", http::ResolveUrl(base + "/", large), w, h);
    }
  } else {
    add_variant("sample", Str(o, "sample_url"), Int(o, "sample_width"), Int(o, "sample_height"));
    add_variant("jpeg", Str(o, "jpeg_url"), Int(o, "jpeg_width"), Int(o, "jpeg_height"));
  }
  std::string status = AsciiLower(Str(o, "status"));
  if (Str(o, "is_deleted") == "true" || status == "deleted") {
    p.skip_reason = "deleted";
  } else if (Str(o, "is_banned") == "true") {
    p.skip_reason = "banned";
  } else if (p.file_ext == "zip" || p.file_ext == "ugoira") {
    p.skip_reason = "ugoira";
  } else if (IsVideoExt(p.file_ext)) {
    p.skip_reason = "video";
  } else if (p.file_url.empty()) {
    p.skip_reason = "restricted";  // the site withholds the file from this user
  } else if (!codecs::MissingDecoder(p.file_ext).empty()) {
    p.skip_reason = p.file_ext;  // avif: not asked for, this build could not decode it
  } else if (!IsImageExt(p.file_ext)) {
    p.skip_reason = "not_image";
  }
  // Site text may not be valid UTF-8 (XML bodies are not checked): replace, never throw.
  p.meta_json = o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return p;
}

}  // namespace

Result<PostPage> ParsePostPage(Dialect d, const std::string& body, const std::string& base_url) {
  std::string base = StripSlash(base_url);
  PostPage page;
  // The posts, read in place: a page of 200 Danbooru posts is ~370 KB of JSON, and copying
  // each object (then freeing both) cost as much as parsing it.
  std::vector<const json*> objs;
  std::vector<json> from_xml;
  json j;
  size_t first = body.find_first_not_of(" \t\r\n\xEF\xBB\xBF");
  if (first == std::string::npos) return page;  // an empty body: no posts
  if (body[first] == '<') {
    MF_ASSIGN_OR_RETURN(auto root, ParseXml(body));
    if (root->name == "posts") {
      auto c = root->attrs.find("count");
      if (c != root->attrs.end()) page.count = std::strtoll(c->second.c_str(), nullptr, 10);
      for (const auto& ch : root->children)
        if (ch->name == "post") from_xml.push_back(XmlPostToJson(*ch));
    } else if (root->name == "post") {
      from_xml.push_back(XmlPostToJson(*root));
    } else if (root->name == "response" || root->name == "error" || root->name == "hash") {
      return Status::Network("the site answered with an error document <" + root->name + ">");
    } else {
      return Status::Corrupt("unexpected XML root <" + root->name + ">");
    }
    for (const auto& o : from_xml) objs.push_back(&o);
  } else {
    j = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return Status::Corrupt("response is neither JSON nor XML");
    if (j.is_array()) {
      for (const auto& o : j)
        if (o.is_object()) objs.push_back(&o);
    } else if (j.is_object()) {
      if (j.contains("@attributes")) {
        // Gelbooru 0.2.5+: {"@attributes":{limit,offset,count},"post":[...]}; no "post"
        // key at all when nothing matched.
        page.count = Int(j["@attributes"], "count");
        auto it = j.find("post");
        if (it != j.end()) {
          if (it->is_array()) {
            for (const auto& o : *it) objs.push_back(&o);
          } else if (it->is_object()) {
            objs.push_back(&*it);
          }
        }
      } else if (j.contains("success") && j["success"].is_boolean() && !j["success"].get<bool>()) {
        std::string why = Str(j, "message");
        if (why.empty()) why = Str(j, "reason");
        return Status::Network("the site refused the query: " + why);
      } else if (j.contains("danbooru") && j["danbooru"].is_object()) {
        objs.push_back(&j["danbooru"]);  // a waifuc metadata sidecar around a Danbooru post
      } else if (j.contains("id")) {
        objs.push_back(&j);  // a single post lookup
      } else {
        return Status::Corrupt("unexpected JSON object without posts");
      }
    } else {
      return Status::Corrupt("unexpected JSON value");
    }
  }
  bool new_letters = false;
  for (const json* o : objs)
    if (AsciiLower(Str(*o, "rating")) == "g") new_letters = true;
  page.posts.reserve(objs.size());
  for (const json* o : objs) {
    PostRecord p = ReadPost(d, *o, base, new_letters);
    if (p.remote_id.empty()) return Status::Corrupt("a post without an id");
    page.posts.push_back(std::move(p));
  }
  return page;
}

std::string PostPageUrl(Dialect d, const std::string& base_url, const std::string& tags, int64_t page, int limit,
                        const std::string& auth) {
  std::string base = StripSlash(base_url);
  std::string t = http::UrlEncode(tags);
  switch (d) {
    case Dialect::kDanbooru:
      return base + "/posts.json?tags=" + t + "&page=" + std::to_string(page) + "&limit=" + std::to_string(limit) +
             auth;
    case Dialect::kMoebooru:
      return base + "/post.json?tags=" + t + "&page=" + std::to_string(page) + "&limit=" + std::to_string(limit) +
             auth;
    case Dialect::kGelbooru:
      return base + "/index.php?page=dapi&s=post&q=index&json=1&tags=" + t + "&pid=" + std::to_string(page - 1) +
             "&limit=" + std::to_string(limit) + auth;
  }
  return "";
}

std::string CursorPageUrl(Dialect d, const std::string& base_url, const std::string& tags, int64_t before_id,
                          int limit, const std::string& auth) {
  std::string base = StripSlash(base_url);
  std::string cursor_tag = "id:<" + std::to_string(before_id);
  std::string with_cursor = Trim(tags).empty() ? cursor_tag : Trim(tags) + " " + cursor_tag;
  switch (d) {
    case Dialect::kDanbooru:
      return base + "/posts.json?tags=" + http::UrlEncode(tags) + "&page=b" + std::to_string(before_id) +
             "&limit=" + std::to_string(limit) + auth;
    case Dialect::kMoebooru:
      return base + "/post.json?tags=" + http::UrlEncode(with_cursor) + "&page=1&limit=" + std::to_string(limit) +
             auth;
    case Dialect::kGelbooru:
      return base + "/index.php?page=dapi&s=post&q=index&json=1&tags=" + http::UrlEncode(with_cursor) +
             "&pid=0&limit=" + std::to_string(limit) + auth;
  }
  return "";
}

bool OrdersOtherThanNewest(const std::string& tags) {
  for (const auto& t : SplitWs(AsciiLower(tags))) {
    if (t.rfind("order:", 0) == 0 || t.rfind("sort:", 0) == 0) {
      if (t == "order:id_desc" || t == "sort:id:desc" || t == "sort:id") continue;
      return true;
    }
  }
  return false;
}

int AnonymousTagLimit(Dialect d) {
  switch (d) {
    case Dialect::kDanbooru: return 2;
    case Dialect::kMoebooru: return 6;
    case Dialect::kGelbooru: return 0;
  }
  return 0;
}

std::string CredentialVariables(Dialect d) {
  switch (d) {
    case Dialect::kDanbooru: return "MOEFORGE_DANBOORU_LOGIN and MOEFORGE_DANBOORU_API_KEY";
    case Dialect::kMoebooru: return "MOEFORGE_MOEBOORU_LOGIN and MOEFORGE_MOEBOORU_PASSWORD_HASH";
    case Dialect::kGelbooru: return "MOEFORGE_GELBOORU_USER_ID and MOEFORGE_GELBOORU_API_KEY";
  }
  return "";
}

std::string AuthQueryFromEnv(Dialect d) {
  auto env = [](const char* k) {
    const char* v = std::getenv(k);
    return std::string(v ? v : "");
  };
  switch (d) {
    case Dialect::kDanbooru: {
      std::string login = env("MOEFORGE_DANBOORU_LOGIN"), key = env("MOEFORGE_DANBOORU_API_KEY");
      if (login.empty() || key.empty()) return "";
      return "&login=" + http::UrlEncode(login) + "&api_key=" + http::UrlEncode(key);
    }
    case Dialect::kMoebooru: {
      std::string login = env("MOEFORGE_MOEBOORU_LOGIN"), key = env("MOEFORGE_MOEBOORU_PASSWORD_HASH");
      if (login.empty() || key.empty()) return "";
      return "&login=" + http::UrlEncode(login) + "&password_hash=" + http::UrlEncode(key);
    }
    case Dialect::kGelbooru: {
      std::string uid = env("MOEFORGE_GELBOORU_USER_ID"), key = env("MOEFORGE_GELBOORU_API_KEY");
      if (uid.empty() || key.empty()) return "";
      return "&user_id=" + http::UrlEncode(uid) + "&api_key=" + http::UrlEncode(key);
    }
  }
  return "";
}

}  // namespace moeforge::crawler
