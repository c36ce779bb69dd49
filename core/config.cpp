#include "core/config.h"

#include <toml++/toml.h>

#include <sstream>

#include "core/workspace.h"

namespace moeforge {

Config::Config() : table_(std::make_unique<toml::table>()) {}
Config::~Config() = default;
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;

Result<Config> Config::Parse(const std::string& text, const std::string& origin) {
  Config c;
  c.origin_ = origin;
  try {
    *c.table_ = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream m;
    m << origin << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
    return Status::InvalidArgument(m.str());
  }
  return c;
}

Result<Config> Config::Load(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return Status::NotFound("config file '" + path + "' cannot be read");
  return Parse(*text, path);
}

Status Config::ApplyOverride(const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    return Status::InvalidArgument("override '" + assignment + "' is not KEY=VALUE");
  std::string key = assignment.substr(0, eq);
  std::string value = assignment.substr(eq + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    // A bare word: take it as a string.
    parsed = toml::table{{"v", value}};
  }
  // Walk/create the tables along the dotted key.
  toml::table* t = table_.get();
  std::stringstream ss(key);
  std::string part;
  std::vector<std::string> parts;
  while (std::getline(ss, part, '.')) parts.push_back(part);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    auto* node = t->get(parts[i]);
    if (node == nullptr) {
      t->insert(parts[i], toml::table{});
      node = t->get(parts[i]);
    }
    t = node->as_table();
    if (t == nullptr) return Status::InvalidArgument("override '" + key + "': '" + parts[i] + "' is not a table");
  }
  t->insert_or_assign(parts.back(), *parsed.get("v"));
  return Status::Ok();
}

bool Config::Has(const std::string& dotted_key) const {
  return static_cast<bool>(table_->at_path(dotted_key));
}

namespace {
void CollectKeys(const toml::table& t, const std::string& prefix, std::vector<std::string>* out) {
  for (auto&& [k, v] : t) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const auto* sub = v.as_table())
      CollectKeys(*sub, key, out);
    else
      out->push_back(key);
  }
}
}  // namespace

std::vector<std::string> Config::Keys() const {
  std::vector<std::string> keys;
  CollectKeys(*table_, "", &keys);
  return keys;
}

namespace {
template <typename T>
void BindNumber(const Config& cfg, const std::string& key, T* out, std::vector<std::string>* errors) {
  auto node = cfg.table().at_path(key);
  if (!node) return;
  if (auto v = node.value<int64_t>()) {
    *out = static_cast<T>(*v);
  } else if (auto d = node.value<double>(); d && std::is_floating_point_v<T>) {
    *out = static_cast<T>(*d);
  } else {
    errors->push_back(key + ": expected a number");
  }
}
}  // namespace

void ConfigBinder::Bind(const std::string& key, std::string* out) {
  known_.insert(key);
  auto node = cfg_.table().at_path(key);
  if (!node) return;
  if (auto v = node.value<std::string>()) *out = *v;
  else errors_.push_back(key + ": expected a string");
}
void ConfigBinder::Bind(const std::string& key, int* out) { known_.insert(key); BindNumber(cfg_, key, out, &errors_); }
void ConfigBinder::Bind(const std::string& key, int64_t* out) { known_.insert(key); BindNumber(cfg_, key, out, &errors_); }
void ConfigBinder::Bind(const std::string& key, uint64_t* out) { known_.insert(key); BindNumber(cfg_, key, out, &errors_); }
void ConfigBinder::Bind(const std::string& key, double* out) { known_.insert(key); BindNumber(cfg_, key, out, &errors_); }
void ConfigBinder::Bind(const std::string& key, bool* out) {
  known_.insert(key);
  auto node = cfg_.table().at_path(key);
  if (!node) return;
  if (auto v = node.value<bool>()) *out = *v;
  else errors_.push_back(key + ": expected true or false");
}
void ConfigBinder::Bind(const std::string& key, std::vector<int>* out) {
  known_.insert(key);
  auto node = cfg_.table().at_path(key);
  if (!node) return;
  if (auto v = node.value<int64_t>()) {
    *out = {static_cast<int>(*v)};
    return;
  }
  const toml::array* arr = node.as_array();
  if (arr == nullptr) {
    errors_.push_back(key + ": expected an integer or a list of integers");
    return;
  }
  out->clear();
  for (const auto& e : *arr) {
    auto i = e.value<int64_t>();
    if (!i) {
      errors_.push_back(key + ": expected a list of integers");
      return;
    }
    out->push_back(static_cast<int>(*i));
  }
}

void ConfigBinder::Allow(const std::string& prefix) { prefixes_.push_back(prefix + "."); }

Status ConfigBinder::Finish() const {
  std::vector<std::string> problems = errors_;
  for (const auto& k : cfg_.Keys()) {
    if (known_.count(k)) continue;
    bool allowed = false;
    for (const auto& p : prefixes_) allowed = allowed || k.rfind(p, 0) == 0;
    if (!allowed) problems.push_back("unknown key '" + k + "'");
  }
  if (problems.empty()) return Status::Ok();
  std::string msg = cfg_.origin() + ": ";
  for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
  return Status::InvalidArgument(msg);
}

}  // namespace moeforge
