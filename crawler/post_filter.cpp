#include "crawler/post_filter.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include <fmt/format.h>

#include "core/strings.h"

namespace moeforge::crawler {

namespace {

std::vector<std::string> Words(const std::string& s, bool commas) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || (commas && c == ',')) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

// A rating letter or word as the word PostRecord::rating uses; "" when unknown.
std::string RatingWord(const std::string& r) {
  std::string l = AsciiLower(r);
  if (l == "g" || l == "general") return "general";
  if (l == "s" || l == "sensitive") return "sensitive";
  if (l == "safe") return "safe";
  if (l == "q" || l == "questionable") return "questionable";
  if (l == "e" || l == "explicit") return "explicit";
  return "";
}

std::string Join(const std::set<std::string>& s, const char* sep) {
  std::string out;
  for (const auto& x : s) out += (out.empty() ? "" : sep) + x;
  return out;
}

}  // namespace

Result<PostFilter> PostFilter::FromOptions(const CrawlOptions& o) {
  PostFilter f;
  if (!o.min_size.empty()) {
    char* end = nullptr;
    std::string s = AsciiLower(o.min_size);
    f.min_w_ = std::strtoll(s.c_str(), &end, 10);
    if (end == nullptr || *end != 'x' || f.min_w_ < 0)
      return Status::InvalidArgument("--min-size wants WxH (e.g. 512x512), got '" + o.min_size + "'");
    char* end2 = nullptr;
    f.min_h_ = std::strtoll(end + 1, &end2, 10);
    if (*end2 != '\0' || f.min_h_ < 0)
      return Status::InvalidArgument("--min-size wants WxH (e.g. 512x512), got '" + o.min_size + "'");
  }
  if (!o.aspect.empty()) {
    auto colon = o.aspect.find(':');
    char* e1 = nullptr;
    char* e2 = nullptr;
    std::string a = o.aspect.substr(0, colon), b = colon == std::string::npos ? "" : o.aspect.substr(colon + 1);
    f.aspect_min_ = std::strtod(a.c_str(), &e1);
    f.aspect_max_ = std::strtod(b.c_str(), &e2);
    if (colon == std::string::npos || a.empty() || b.empty() || *e1 != '\0' || *e2 != '\0' || f.aspect_min_ <= 0 ||
        f.aspect_max_ < f.aspect_min_)
      return Status::InvalidArgument("--aspect wants MIN:MAX of width/height (e.g. 0.5:2), got '" + o.aspect + "'");
  }
  for (const auto& r : Words(o.rating, true)) {
    std::string w = RatingWord(r);
    if (w.empty()) return Status::InvalidArgument("--rating: unknown rating '" + r + "' (g, s, q, e or words)");
    f.ratings_.insert(w);
    if (w == "sensitive") f.ratings_.insert("safe");  // Danbooru's old s and the others' safe
  }
  for (const auto& e : Words(o.ext, true)) {
    std::string x = AsciiLower(e);
    if (!x.empty() && x[0] == '.') x.erase(0, 1);
    f.exts_.insert(x == "jpeg" ? "jpg" : x);
  }
  for (const auto& t : Words(o.exclude_tags, false)) f.exclude_.insert(t);
  return f;
}

Result<std::string> PostFilter::TakeOverTerms(const std::string& tags, int max_terms) {
  std::vector<std::string> terms = Words(tags, false);
  if (max_terms <= 0 || static_cast<int>(terms.size()) <= max_terms) return tags;
  std::string site;
  for (size_t i = 0; i < terms.size(); ++i) {
    const std::string& t = terms[i];
    if (static_cast<int>(i) < max_terms) {
      site += (site.empty() ? "" : " ") + t;
      continue;
    }
    std::string l = AsciiLower(t);
    if (l.rfind("rating:", 0) == 0) {
      std::set<std::string> words;
      for (const auto& r : Words(l.substr(7), true)) {
        std::string w = RatingWord(r);
        if (w.empty()) return Status::InvalidArgument("unknown rating in '" + t + "'");
        words.insert(w);
        if (w == "sensitive") words.insert("safe");
      }
      if (ratings_.empty()) {
        ratings_ = words;
      } else {
        std::set<std::string> both;
        for (const auto& w : ratings_)
          if (words.count(w)) both.insert(w);
        ratings_ = both.empty() ? std::set<std::string>{"none"} : both;
      }
    } else if (t[0] == '-' && t.size() > 1 && t.find(':') == std::string::npos) {
      exclude_.insert(t.substr(1));
    } else if (t.find(':') != std::string::npos || t.find('*') != std::string::npos || t[0] == '~') {
      return Status::InvalidArgument(
          fmt::format("'{}' is term {} of the query, beyond the {} an anonymous account may send, and only the site "
                      "can evaluate it: put it among the first {} terms, or set the site's credentials",
                      t, i + 1, max_terms, max_terms));
    } else {
      require_.insert(t);
    }
    moved_.push_back(t);
  }
  return site;
}

std::string PostFilter::Reason(const PostRecord& p) const {
  if ((min_w_ > 0 || min_h_ > 0) && (p.width < min_w_ || p.height < min_h_)) return "min_size";
  if (aspect_max_ > 0) {
    if (p.width <= 0 || p.height <= 0) return "aspect";
    double a = static_cast<double>(p.width) / static_cast<double>(p.height);
    if (a < aspect_min_ || a > aspect_max_) return "aspect";
  }
  if (!ratings_.empty() && !ratings_.count(p.rating)) return "rating";
  if (!exts_.empty() && !exts_.count(p.file_ext)) return "ext";
  if (!exclude_.empty() || !require_.empty()) {
    std::set<std::string> have;
    for (const auto& [t, cat] : p.tags) have.insert(t);
    for (const auto& t : exclude_)
      if (have.count(t)) return "exclude_tags";
    for (const auto& t : require_)
      if (!have.count(t)) return "tags";
  }
  return "";
}

std::string PostFilter::Signature() const {
  return fmt::format("size={}x{};aspect={}:{};rating={};ext={};exclude={};require={}", min_w_, min_h_, aspect_min_,
                     aspect_max_, Join(ratings_, ","), Join(exts_, ","), Join(exclude_, " "), Join(require_, " "));
}

ChosenVariant ChooseVariant(const PostRecord& p, const std::string& mode, int min_short_side) {
  ChosenVariant orig{"original", p.file_url, p.width, p.height};
  if (mode == "sample") {
    for (const auto& v : p.variants)
      if (v.name == "sample") return ChosenVariant{v.name, v.url, v.width, v.height};
    return orig;
  }
  if (mode != "auto") return orig;
  // The smallest rendition (by pixels) whose shorter side reaches min_short_side; sizes
  // the site does not give are not guessed.
  ChosenVariant best = orig;
  int64_t best_px = p.width * p.height;
  if (std::min(p.width, p.height) < min_short_side) return orig;  // nothing smaller can reach it
  for (const auto& v : p.variants) {
    if (v.width <= 0 || v.height <= 0 || std::min(v.width, v.height) < min_short_side) continue;
    int64_t px = v.width * v.height;
    if (px < best_px) {
      best = ChosenVariant{v.name, v.url, v.width, v.height};
      best_px = px;
    }
  }
  return best;
}

}  // namespace moeforge::crawler
