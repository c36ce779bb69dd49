// An HTML page as the HTML source reads it: <img src> and <a href> values, &amp; decoded,
// resolved against the page's URL.
#include <cstdint>
#include <string>

#include "core/http.h"
#include "crawler/html_links.h"

using namespace moeforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string html(reinterpret_cast<const char*>(data), size);
  const std::string base = "https://site.example/gallery/index.html?page=2";
  for (const auto& v : crawler::HtmlAttrValues(html, "img", "src")) {
    volatile size_t n = http::ResolveUrl(base, crawler::DecodeHtmlAmp(v)).size();
    (void)n;
  }
  for (const auto& v : crawler::HtmlAttrValues(html, "a", "href")) {
    volatile size_t n = http::ResolveUrl(base, crawler::DecodeHtmlAmp(v)).size();
    (void)n;
  }
  // The page text as a reference, against a base that is itself odd.
  if (size < 512) {
    volatile size_t n = http::ResolveUrl(html, "../a/./b?c#d").size() + http::ResolveUrl(base, html).size();
    (void)n;
  }
  return 0;
}
