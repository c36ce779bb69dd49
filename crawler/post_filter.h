// What a booru crawl takes, decided on the API's metadata before any download (the
// --min-size, --aspect, --rating, --exclude-tags and --ext filters, and the search terms
// an anonymous account may not send, moved to our side), and which rendition of a post to
// fetch (--variant). A filtered post costs no image request; it is recorded as skipped
// with "filtered:<reason>", and a pass with other filters decides it anew.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "core/status.h"
#include "crawler/booru_api.h"
#include "crawler/crawler.h"

namespace moeforge::crawler {

class PostFilter {
 public:
  // Reads the filter options; InvalidArgument names the bad one.
  static Result<PostFilter> FromOptions(const CrawlOptions& o);

  // Moves the terms of `tags` beyond `max_terms` (0: no limit) to our side: "tag" must be
  // present, "-tag" absent, "rating:x" narrows the ratings. Returns what the site is sent;
  // InvalidArgument for a metatag that only the site can evaluate (order:, score:, ...).
  Result<std::string> TakeOverTerms(const std::string& tags, int max_terms);

  // "" when `p` passes, else the reason: min_size, aspect, rating, ext, exclude_tags, tags.
  std::string Reason(const PostRecord& p) const;
  // A canonical text of every setting: equal signatures decide every post alike.
  std::string Signature() const;
  // The terms TakeOverTerms moved, for the message.
  const std::vector<std::string>& moved() const { return moved_; }

 private:
  int64_t min_w_ = 0, min_h_ = 0;
  double aspect_min_ = 0, aspect_max_ = 0;  // 0: no bound
  std::set<std::string> ratings_;            // words (general, sensitive, ...); empty: any
  std::set<std::string> exts_;
  std::set<std::string> exclude_, require_;
  std::vector<std::string> moved_;
};

// The rendition of `p` to fetch: the original (file_url), or one of p.variants.
struct ChosenVariant {
  std::string name = "original";
  std::string url;
  int64_t width = 0, height = 0;
};
// mode: original|sample|auto (see CrawlOptions::variant).
ChosenVariant ChooseVariant(const PostRecord& p, const std::string& mode, int min_short_side);

}  // namespace moeforge::crawler
