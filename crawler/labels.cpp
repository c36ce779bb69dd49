// Tags of local images: the labels CSV and .txt sidecars (see labels.h).
#include "crawler/labels.h"
#include "core/strings.h"
#include "core/workspace.h"

#include <sstream>

#include <nlohmann/json.hpp>

namespace moeforge::crawler {

namespace {

std::vector<std::string> SplitCsvLine(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool q = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (q) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        q = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      q = true;
    } else if (c == ',') {
      out.push_back(Trim(cur));
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  out.push_back(Trim(cur));
  return out;
}

std::string TagWord(std::string s) {
  s = AsciiLower(Trim(s));
  for (auto& c : s)
    if (c == ' ') c = '_';
  return s;
}

}  // namespace

std::vector<std::string> SplitTags(const std::string& text) {
  std::vector<std::string> out;
  if (text.find(',') != std::string::npos) {
    std::stringstream ss(text);
    std::string t;
    while (std::getline(ss, t, ','))
      if (!Trim(t).empty()) out.push_back(TagWord(t));
  } else {
    std::stringstream ss(text);
    std::string t;
    while (ss >> t) out.push_back(TagWord(t));
  }
  return out;
}

Result<LabelTable> ReadLabelsCsv(const std::string& path) {
  MF_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line)) return Status::InvalidArgument(path + " is empty");
  std::vector<std::string> head = SplitCsvLine(line);
  for (auto& h : head) h = AsciiLower(h);
  int file_col = -1;
  for (size_t i = 0; i < head.size(); ++i)
    if (head[i] == "file" || head[i] == "filename" || head[i] == "image" || head[i] == "path") file_col = static_cast<int>(i);
  if (file_col < 0) return Status::InvalidArgument(path + ": no file/filename column in the header");
  LabelTable out;
  while (std::getline(in, line)) {
    if (Trim(line).empty()) continue;
    auto cells = SplitCsvLine(line);
    if (static_cast<int>(cells.size()) <= file_col) continue;
    std::vector<std::string> tags;
    nlohmann::json meta = nlohmann::json::object();
    for (size_t i = 0; i < cells.size() && i < head.size(); ++i) {
      if (static_cast<int>(i) == file_col || cells[i].empty()) continue;
      const std::string& h = head[i];
      meta[h] = cells[i];
      if (h == "tags") {
        for (auto& t : SplitTags(cells[i])) tags.push_back(t);
      } else if (h == "hair_color" || h == "hair_colour" || h == "hair") {
        tags.push_back(TagWord(cells[i]) + "_hair");
      } else if (h == "eye_color" || h == "eye_colour" || h == "eyes") {
        tags.push_back(TagWord(cells[i]) + "_eyes");
      }
    }
    out[cells[file_col]] = ImageLabels{tags, meta.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
  }
  return out;
}

}  // namespace moeforge::crawler
