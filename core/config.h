// The one config loader: a TOML file plus command-line overrides ("train.steps=200"),
// bound onto the option structs of the stages. Every key the file holds must be bound
// by someone: Finish() reports unknown keys (a typo must not silently fall back to a
// default), and a value of the wrong type is an error naming the key.
//
//   auto cfg = Config::Load("run.toml");
//   cfg->ApplyOverride("train.steps=200");
//   ConfigBinder b(*cfg);
//   b.Bind("train.steps", &train_opts.steps);
//   ...
//   MF_RETURN_IF_ERROR(b.Finish());
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"

namespace toml {
inline namespace v3 {
class table;
}
}  // namespace toml

namespace moeforge {

class Config {
 public:
  static Result<Config> Load(const std::string& path);
  static Result<Config> Parse(const std::string& text, const std::string& origin = "config");
  Config();
  ~Config();
  Config(Config&&) noexcept;
  Config& operator=(Config&&) noexcept;

  // "a.b=value": the value is read as TOML (numbers, booleans, quoted or bare strings).
  Status ApplyOverride(const std::string& assignment);
  bool Has(const std::string& dotted_key) const;
  // All leaf keys, dotted ("crawl.limit").
  std::vector<std::string> Keys() const;
  const std::string& origin() const { return origin_; }
  const toml::table& table() const { return *table_; }

 private:
  std::unique_ptr<toml::table> table_;
  std::string origin_;
};

class ConfigBinder {
 public:
  explicit ConfigBinder(const Config& cfg) : cfg_(cfg) {}
  // Each copies the value at `key` into *out when present; type errors are collected.
  void Bind(const std::string& key, std::string* out);
  void Bind(const std::string& key, int* out);
  void Bind(const std::string& key, int64_t* out);
  void Bind(const std::string& key, uint64_t* out);
  void Bind(const std::string& key, double* out);
  void Bind(const std::string& key, bool* out);
  void Bind(const std::string& key, std::vector<int>* out);
  // Marks a whole table (e.g. "sample") as known, for keys read elsewhere.
  void Allow(const std::string& prefix);
  // InvalidArgument listing type errors and unknown keys; Ok otherwise.
  Status Finish() const;

 private:
  const Config& cfg_;
  std::set<std::string> known_;
  std::vector<std::string> prefixes_;
  std::vector<std::string> errors_;
};

}  // namespace moeforge
