// The tolerant XML reader the booru XML dialects sit on, and its entity decoder.
#include <cstdint>
#include <string>

#include "crawler/xml_reader.h"

using namespace moeforge::crawler;

namespace {
size_t Walk(const XmlNode& n, int depth) {
  size_t total = n.name.size() + n.text.size() + n.attrs.size();
  if (depth > 100000) __builtin_trap();  // deeper than any input could nest: a cycle
  for (const auto& c : n.children) total += Walk(*c, depth + 1);
  return total;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto root = ParseXml(text);
  if (root.ok()) {
    volatile size_t n = Walk(**root, 0);
    (void)n;
  }
  volatile size_t d = DecodeXmlEntities(text).size();
  (void)d;
  return 0;
}
