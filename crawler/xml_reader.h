// A small, tolerant XML reader for booru API responses (there is no XML library in
// the dependency list). It builds a tree of elements with attributes and text, decodes
// the five named entities and numeric references, and accepts what real responses
// contain although XML forbids it: a bare '&' (Gelbooru, 2020) is kept as text.
// Not a validating parser: no DTDs, no namespaces (prefixes stay in the names).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace moeforge::crawler {

struct XmlNode {
  std::string name;
  std::map<std::string, std::string> attrs;
  std::string text;  // concatenated character data directly inside this element
  std::vector<std::unique_ptr<XmlNode>> children;
  const XmlNode* Child(const std::string& n) const;
};

// The document's root element, or Corrupt when there is no element or tags do not nest.
Result<std::unique_ptr<XmlNode>> ParseXml(const std::string& text);
std::string DecodeXmlEntities(const std::string& s);

}  // namespace moeforge::crawler
