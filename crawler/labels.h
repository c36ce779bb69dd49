// Tags of local images (the dir source): a labels CSV or .txt sidecars.
//
// Labels CSV: a header row; the column `file` (or filename, image, path) names the image;
// `tags` holds tags (comma or space separated); an attribute column hair_color /
// eye_color with value v gives "v_hair" / "v_eyes" (the Danbooru names); every other
// column is kept in meta_json only. Fields may be quoted ("a, b" and "" escapes).
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace moeforge::crawler {

struct ImageLabels {
  std::vector<std::string> tags;
  std::string meta_json;  // the row's non-empty cells, by lower-cased column name
};
// File name (as the CSV wrote it) -> its labels.
using LabelTable = std::unordered_map<std::string, ImageLabels>;

// InvalidArgument for an empty file or a header without a file column.
Result<LabelTable> ReadLabelsCsv(const std::string& path);
// "blonde hair, blue_eyes" or "blonde_hair blue_eyes" -> {"blonde_hair", "blue_eyes"}.
std::vector<std::string> SplitTags(const std::string& text);

}  // namespace moeforge::crawler
