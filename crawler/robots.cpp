#include "crawler/robots.h"
#include "core/strings.h"

#include <cctype>

namespace moeforge::crawler {

namespace {

// Upper-case hex in escapes, and unreserved characters decoded, so "/%7efoo" and "/~foo"
// compare equal (RFC 9309 2.2.2).
std::string NormalizePath(const std::string& p) {
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '%' && i + 2 < p.size() && std::isxdigit(static_cast<unsigned char>(p[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(p[i + 2]))) {
      int v = std::stoi(p.substr(i + 1, 2), nullptr, 16);
      if (std::isalnum(v) || v == '-' || v == '.' || v == '_' || v == '~') {
        out += static_cast<char>(v);
      } else {
        out += '%';
        out += static_cast<char>(std::toupper(static_cast<unsigned char>(p[i + 1])));
        out += static_cast<char>(std::toupper(static_cast<unsigned char>(p[i + 2])));
      }
      i += 2;
    } else {
      out += p[i];
    }
  }
  return out;
}

// Does `pat` (with * and a final $) match a prefix of `path` (or all of it with $)?
bool Match(const std::string& pat, size_t pi, const std::string& path, size_t si) {
  while (pi < pat.size()) {
    char c = pat[pi];
    if (c == '*') {
      while (pi < pat.size() && pat[pi] == '*') ++pi;
      if (pi == pat.size()) return true;
      for (size_t k = si; k <= path.size(); ++k)
        if (Match(pat, pi, path, k)) return true;
      return false;
    }
    if (c == '$' && pi + 1 == pat.size()) return si == path.size();
    if (si >= path.size() || path[si] != c) return false;
    ++pi;
    ++si;
  }
  return true;
}

}  // namespace

RobotsRules RobotsRules::AllowAll() { return RobotsRules(); }

RobotsRules RobotsRules::DisallowAll() {
  RobotsRules r;
  r.all_ = false;
  return r;
}

RobotsRules RobotsRules::FromFetch(int http_status, const std::string& body, const std::string& agent) {
  if (http_status >= 200 && http_status < 300) return Parse(body, agent);
  if (http_status >= 400 && http_status < 500) return AllowAll();
  return DisallowAll();  // 5xx, unreachable, or a redirect we could not follow
}

RobotsRules RobotsRules::Parse(const std::string& body, const std::string& agent) {
  std::string me = AsciiLower(agent);
  std::vector<Rule> mine, star;
  bool found_mine = false;
  // Group state: the agents of the current group, and whether we are still reading
  // its user-agent lines.
  bool in_agents = false;
  bool group_mine = false, group_star = false;
  size_t i = 0;
  while (i <= body.size()) {
    size_t e = body.find('\n', i);
    if (e == std::string::npos) e = body.size();
    std::string line = body.substr(i, e - i);
    i = e + 1;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = AsciiLower(Trim(line.substr(0, colon)));
    std::string value = Trim(line.substr(colon + 1));
    if (key == "user-agent") {
      if (!in_agents) {
        group_mine = group_star = false;
        in_agents = true;
      }
      std::string v = AsciiLower(value);
      // The product token is matched as a prefix-free, case-insensitive name.
      if (v == "*") {
        group_star = true;
      } else if (!me.empty() && (v == me || v.rfind(me + "/", 0) == 0)) {
        group_mine = true;
        found_mine = true;
      }
      continue;
    }
    if (key == "allow" || key == "disallow") {
      in_agents = false;
      if (value.empty()) continue;  // "Disallow:" with no path allows everything
      Rule r{key == "allow", NormalizePath(value)};
      if (group_mine) mine.push_back(r);
      if (group_star) star.push_back(r);
      continue;
    }
    // Other keys (sitemap, crawl-delay) end the agent list but not the group.
    if (!key.empty()) in_agents = false;
  }
  RobotsRules out;
  out.rules_ = found_mine ? mine : star;
  return out;
}

bool RobotsRules::Allowed(const std::string& raw_path) const {
  if (rules_.empty()) return all_;
  std::string path = NormalizePath(raw_path.empty() ? "/" : raw_path);
  if (path == "/robots.txt") return true;
  int best_len = -1;
  bool verdict = true;
  for (const auto& r : rules_) {
    if (!Match(r.pattern, 0, path, 0)) continue;
    int len = static_cast<int>(r.pattern.size());
    if (len > best_len || (len == best_len && r.allow)) {
      best_len = len;
      verdict = r.allow;
    }
  }
  return verdict;
}

}  // namespace moeforge::crawler
