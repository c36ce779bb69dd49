// How the HTML source reads links out of a page it fetched: no HTML library, just the
// attribute values it needs. Public so that the fuzz target reads pages as the crawl does.
#pragma once

#include <string>
#include <vector>

namespace moeforge::crawler {

// The values of attribute `attr` of every <tag ...> in `html` (tag and attribute names
// case-insensitive; values double-quoted, single-quoted or bare), trimmed.
std::vector<std::string> HtmlAttrValues(const std::string& html, const std::string& tag, const std::string& attr);
// `s` with every "&amp;" replaced by "&" (the only entity hrefs carry in practice).
std::string DecodeHtmlAmp(std::string s);

}  // namespace moeforge::crawler
