// A booru API response (JSON or XML, sniffed as the crawl sniffs it) read as each of the
// three dialects by ParsePostPage, so a seed recorded from any site reaches all three.
#include <cstdint>
#include <string>

#include "crawler/booru_api.h"

using namespace moeforge::crawler;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);
  for (Dialect d : {Dialect::kDanbooru, Dialect::kMoebooru, Dialect::kGelbooru}) {
    auto page = ParsePostPage(d, body, "https://booru.example");
    if (!page.ok()) continue;
    for (const auto& p : page->posts) {
      // What the crawl does next with a record: every field must be a valid string.
      volatile size_t n = p.remote_id.size() + p.file_url.size() + p.meta_json.size() + p.tags.size();
      (void)n;
    }
  }
  return 0;
}
