#include "crawler/xml_reader.h"

#include <cctype>
#include <cstdlib>

namespace moeforge::crawler {

const XmlNode* XmlNode::Child(const std::string& n) const {
  for (const auto& c : children)
    if (c->name == n) return c.get();
  return nullptr;
}

namespace {

void AppendUtf8(std::string& out, unsigned long cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x110000) {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == ':' || c == '.' ||
         (static_cast<unsigned char>(c) >= 0x80);
}

}  // namespace

std::string DecodeXmlEntities(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i + 1);
    // A bare '&' (no ';' within a short distance): keep it as text.
    if (semi == std::string::npos || semi - i > 10) {
      out += '&';
      continue;
    }
    std::string ent = s.substr(i + 1, semi - i - 1);
    std::string rep;
    if (ent == "amp") rep = "&";
    else if (ent == "lt") rep = "<";
    else if (ent == "gt") rep = ">";
    else if (ent == "quot") rep = "\"";
    else if (ent == "apos") rep = "'";
    else if (ent.size() > 1 && ent[0] == '#') {
      char* end = nullptr;
      unsigned long cp = (ent[1] == 'x' || ent[1] == 'X') ? std::strtoul(ent.c_str() + 2, &end, 16)
                                                          : std::strtoul(ent.c_str() + 1, &end, 10);
      if (end && *end == '\0') AppendUtf8(rep, cp);
    }
    if (rep.empty()) {
      out += '&';  // unknown entity or bare '&' followed by text with a ';' later
      continue;
    }
    out += rep;
    i = semi;
  }
  return out;
}

Result<std::unique_ptr<XmlNode>> ParseXml(const std::string& s) {
  std::unique_ptr<XmlNode> root;
  std::vector<XmlNode*> stack;
  size_t i = 0, n = s.size();
  auto add_text = [&](size_t a, size_t b) {
    if (!stack.empty() && b > a) stack.back()->text += DecodeXmlEntities(s.substr(a, b - a));
  };
  while (i < n) {
    size_t lt = s.find('<', i);
    if (lt == std::string::npos) {
      add_text(i, n);
      break;
    }
    add_text(i, lt);
    if (s.compare(lt, 4, "<!--") == 0) {
      size_t e = s.find("-->", lt + 4);
      if (e == std::string::npos) return Status::Corrupt("xml: unterminated comment");
      i = e + 3;
      continue;
    }
    if (s.compare(lt, 9, "<![CDATA[") == 0) {
      size_t e = s.find("]]>", lt + 9);
      if (e == std::string::npos) return Status::Corrupt("xml: unterminated CDATA");
      if (!stack.empty()) stack.back()->text += s.substr(lt + 9, e - lt - 9);
      i = e + 3;
      continue;
    }
    if (s.compare(lt, 2, "<?") == 0 || s.compare(lt, 2, "<!") == 0) {
      size_t e = s.find('>', lt + 2);
      if (e == std::string::npos) return Status::Corrupt("xml: unterminated declaration");
      i = e + 1;
      continue;
    }
    if (s.compare(lt, 2, "</") == 0) {
      size_t e = s.find('>', lt + 2);
      if (e == std::string::npos) return Status::Corrupt("xml: unterminated end tag");
      std::string name = s.substr(lt + 2, e - lt - 2);
      while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
      if (stack.empty() || stack.back()->name != name)
        return Status::Corrupt("xml: </" + name + "> does not close the open element");
      stack.pop_back();
      i = e + 1;
      continue;
    }
    // Start tag: name, attributes, optional '/'.
    size_t p = lt + 1;
    size_t ns = p;
    while (p < n && IsNameChar(s[p])) ++p;
    if (p == ns) {
      // '<' that starts no tag: text (lenient).
      add_text(lt, lt + 1);
      i = lt + 1;
      continue;
    }
    auto node = std::make_unique<XmlNode>();
    node->name = s.substr(ns, p - ns);
    bool self_close = false;
    while (true) {
      while (p < n && std::isspace(static_cast<unsigned char>(s[p]))) ++p;
      if (p >= n) return Status::Corrupt("xml: unterminated start tag <" + node->name + ">");
      if (s[p] == '/') {
        self_close = true;
        ++p;
        continue;
      }
      if (s[p] == '>') {
        ++p;
        break;
      }
      size_t an = p;
      while (p < n && IsNameChar(s[p])) ++p;
      if (p == an) return Status::Corrupt("xml: bad attribute in <" + node->name + ">");
      std::string aname = s.substr(an, p - an);
      while (p < n && std::isspace(static_cast<unsigned char>(s[p]))) ++p;
      std::string value;
      if (p < n && s[p] == '=') {
        ++p;
        while (p < n && std::isspace(static_cast<unsigned char>(s[p]))) ++p;
        if (p < n && (s[p] == '"' || s[p] == '\'')) {
          char q = s[p++];
          size_t e = s.find(q, p);
          if (e == std::string::npos) return Status::Corrupt("xml: unterminated attribute " + aname);
          value = DecodeXmlEntities(s.substr(p, e - p));
          p = e + 1;
        } else {
          size_t vs = p;
          while (p < n && !std::isspace(static_cast<unsigned char>(s[p])) && s[p] != '>' && s[p] != '/') ++p;
          value = DecodeXmlEntities(s.substr(vs, p - vs));
        }
      }
      node->attrs[aname] = value;
    }
    XmlNode* raw = node.get();
    if (stack.empty()) {
      if (root) return Status::Corrupt("xml: more than one root element");
      root = std::move(node);
    } else {
      stack.back()->children.push_back(std::move(node));
    }
    if (!self_close) stack.push_back(raw);
    i = p;
  }
  if (!root) return Status::Corrupt("xml: no element");
  if (!stack.empty()) return Status::Corrupt("xml: <" + stack.back()->name + "> is never closed");
  return root;
}

}  // namespace moeforge::crawler
