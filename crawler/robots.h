// robots.txt per RFC 9309: the group for our product token (else `*`), longest match
// wins, Allow wins a tie, `*` and `$` patterns, percent-encoding normalised. Status
// handling follows section 2.3.1: 4xx (and a missing file) allows everything; 5xx or an
// unreachable host disallows everything. Parsed rules are cached per origin in the
// robots_cache table for at most 24 hours.
#pragma once

#include <string>
#include <vector>

namespace moeforge::crawler {

class RobotsRules {
 public:
  static RobotsRules AllowAll();
  static RobotsRules DisallowAll();
  // `agent` is our product token ("moeforge"), matched case-insensitively.
  static RobotsRules Parse(const std::string& body, const std::string& agent);
  // From the HTTP outcome of fetching /robots.txt (status 0: unreachable).
  static RobotsRules FromFetch(int http_status, const std::string& body, const std::string& agent);

  // `path` is the path and query of the URL ("/posts.json?tags=x").
  bool Allowed(const std::string& path) const;

 private:
  struct Rule {
    bool allow;
    std::string pattern;
  };
  std::vector<Rule> rules_;
  bool all_ = true;  // verdict when no rule matches
};

}  // namespace moeforge::crawler
