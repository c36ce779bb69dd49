#include "core/tag_schema.h"

#include <toml++/toml.h>

#include <sstream>

#include "core/hash.h"
#include "core/workspace.h"

namespace moeforge {

namespace {
// The MakeGirlsMoe 34 in Danbooru's names. Kept as TOML so the default goes through the
// same loader as a user's schema.
const char* kDefaultSchemaToml = R"(name = "makegirlsmoe34"

[[group]]
name = "hair_color"
exclusive = true
tags = ["blonde_hair", "brown_hair", "black_hair", "blue_hair", "pink_hair", "purple_hair", "green_hair", "red_hair", "silver_hair", "white_hair", "orange_hair", "aqua_hair", "grey_hair"]

[[group]]
name = "hair_style"
exclusive = false
tags = ["long_hair", "short_hair", "twintails", "drill_hair", "ponytail"]

[[group]]
name = "other"
exclusive = false
tags = ["blush", "smile", "open_mouth", "hat", "ribbon", "glasses"]

[[group]]
name = "eye_color"
exclusive = true
tags = ["blue_eyes", "red_eyes", "brown_eyes", "green_eyes", "purple_eyes", "yellow_eyes", "pink_eyes", "aqua_eyes", "black_eyes", "orange_eyes"]

[aliases]
blond_hair = "blonde_hair"
gray_hair = "grey_hair"
light_blue_hair = "aqua_hair"
twin_drills = "drill_hair"
hair_ribbon = "ribbon"
eyewear = "glasses"
gray_eyes = "black_eyes"
)";
}  // namespace

const TagSchema& TagSchema::Default() {
  static const TagSchema kDefault = [] {
    auto r = FromToml(kDefaultSchemaToml);
    return r.ok() ? r.value() : TagSchema();
  }();
  return kDefault;
}

Result<TagSchema> TagSchema::FromToml(const std::string& text) {
  toml::table tbl;
  try {
    tbl = toml::parse(text);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(std::string("tag schema: ") + std::string(e.description()));
  }
  TagSchema s;
  s.name_ = tbl["name"].value_or(std::string("custom"));
  for (auto&& [k, v] : tbl) {
    std::string key(k.str());
    if (key != "name" && key != "group" && key != "aliases")
      return Status::InvalidArgument("tag schema: unknown key '" + key + "'");
  }
  const toml::array* groups = tbl["group"].as_array();
  if (groups == nullptr || groups->empty())
    return Status::InvalidArgument("tag schema: needs at least one [[group]]");
  for (const auto& node : *groups) {
    const toml::table* g = node.as_table();
    if (g == nullptr) return Status::InvalidArgument("tag schema: [[group]] must be a table");
    TagGroup group;
    group.name = (*g)["name"].value_or(std::string());
    group.exclusive = (*g)["exclusive"].value_or(false);
    if (group.name.empty()) return Status::InvalidArgument("tag schema: a group has no name");
    const toml::array* tags = (*g)["tags"].as_array();
    if (tags == nullptr || tags->empty())
      return Status::InvalidArgument("tag schema: group '" + group.name + "' has no tags");
    for (const auto& t : *tags) {
      auto name = t.value<std::string>();
      if (!name || name->empty()) return Status::InvalidArgument("tag schema: group '" + group.name + "' has a non-string tag");
      if (s.index_.count(*name)) return Status::InvalidArgument("tag schema: tag '" + *name + "' appears twice");
      s.index_[*name] = static_cast<int>(s.tags_.size());
      s.tags_.push_back(*name);
      s.group_of_.push_back(static_cast<int>(s.groups_.size()));
      group.tags.push_back(*name);
    }
    s.groups_.push_back(std::move(group));
  }
  if (const toml::table* al = tbl["aliases"].as_table()) {
    for (auto&& [k, v] : *al) {
      auto target = v.value<std::string>();
      std::string from(k.str());
      if (!target || !s.index_.count(*target))
        return Status::InvalidArgument("tag schema: alias '" + from + "' points at no schema tag");
      if (s.index_.count(from)) return Status::InvalidArgument("tag schema: alias '" + from + "' is also a tag");
      s.aliases_[from] = *target;
    }
    for (const auto& [from, to] : s.aliases_) s.index_[from] = s.index_[to];
  }
  return s;
}

Result<TagSchema> TagSchema::Load(const std::string& name_or_path) {
  if (name_or_path.empty() || name_or_path == "makegirlsmoe34") return Default();
  auto text = ReadFile(name_or_path);
  if (!text.ok()) return Status::NotFound("tag schema '" + name_or_path + "': no such built-in schema or file");
  auto s = FromToml(*text);
  if (!s.ok()) return s.status().WithContext(name_or_path);
  return s;
}

int TagSchema::IndexOf(const std::string& tag) const {
  auto it = index_.find(tag);
  return it == index_.end() ? -1 : it->second;
}

std::vector<float> TagSchema::Encode(const std::vector<std::string>& source_tags) const {
  std::vector<float> v(tags_.size(), 0.f);
  for (const auto& t : source_tags) {
    int i = IndexOf(t);
    if (i >= 0) v[static_cast<size_t>(i)] = 1.f;
  }
  return v;
}

std::vector<bool> TagSchema::Decide(const std::vector<float>& scores, const std::vector<float>& thresholds) const {
  std::vector<bool> out(tags_.size(), false);
  auto thr = [&](size_t i) { return thresholds.empty() ? 0.5f : thresholds[i]; };
  size_t col = 0;
  for (const auto& g : groups_) {
    if (g.exclusive) {
      size_t best = col;
      for (size_t i = col; i < col + g.tags.size(); ++i)
        if (scores[i] > scores[best]) best = i;
      out[best] = true;
    } else {
      for (size_t i = col; i < col + g.tags.size(); ++i) out[i] = scores[i] >= thr(i);
    }
    col += g.tags.size();
  }
  return out;
}

std::string TagSchema::ToToml() const {
  std::ostringstream o;
  o << "name = \"" << name_ << "\"\n";
  for (const auto& g : groups_) {
    o << "\n[[group]]\nname = \"" << g.name << "\"\nexclusive = " << (g.exclusive ? "true" : "false") << "\ntags = [";
    for (size_t i = 0; i < g.tags.size(); ++i) o << (i ? ", " : "") << '"' << g.tags[i] << '"';
    o << "]\n";
  }
  if (!aliases_.empty()) {
    o << "\n[aliases]\n";
    for (const auto& [from, to] : aliases_) o << from << " = \"" << to << "\"\n";
  }
  return o.str();
}

std::string TagSchema::Hash() const { return Sha256Hex(ToToml()); }

}  // namespace moeforge
