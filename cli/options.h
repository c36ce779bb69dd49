// Each stage option declared once: a stage's OptionTable makes both its command's flags
// (--max-bytes) and its [table] keys in `moeforge run CONFIG.toml` (crawl.max_bytes), so
// everything settable on the command line is settable in CONFIG and the two cannot drift.
// The workspace and --json are not stage options: each command and the config's top
// level declare those.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/config.h"
#include "crawler/crawler.h"
#include "detector/detector.h"
#include "studio/server.h"
#include "tagger/tagger.h"
#include "trainer/trainer.h"

namespace moeforge::cli {

class OptionTable {
 public:
  explicit OptionTable(std::string table) : table_(std::move(table)) {}

  // An option named in snake_case: the key `table.name`, the flag --name-with-dashes.
  // Supported: std::string, int, int64_t, uint64_t, double, bool (a flag), std::vector<int>
  // (repeatable), std::vector<float> (comma-separated; one number in TOML).
  template <typename T>
  OptionTable& Add(const std::string& name, T* target, const std::string& help);
  // Refinements of the option added last.
  OptionTable& Flags(const std::string& spec);  // CLI11 names instead of --name, e.g. "-o,--out"
  OptionTable& Check(const CLI::Validator& v);
  OptionTable& Transform(const CLI::Validator& v);  // rewrites the command line's value (not TOML's)
  OptionTable& Required();                      // on the command line (run checks its own)

  void AddFlags(CLI::App* app) const;
  void Bind(ConfigBinder& b) const;

 private:
  struct Entry {
    std::string key;
    std::string flags;
    std::string help;
    std::function<CLI::Option*(CLI::App*, const std::string& flags, const std::string& help)> add;
    std::function<void(ConfigBinder&, const std::string& key)> bind;
    std::vector<std::function<void(CLI::Option*)>> refine;
  };
  std::string table_;
  std::vector<Entry> entries_;
};

// --snapshot's word "best" (trainer::kBestSnapshot), for the commands that take a step.
CLI::Transformer BestSnapshotWord();

// The stage tables; each binds into the options struct it is given.
OptionTable CrawlOptionTable(crawler::CrawlOptions* o);
OptionTable DetectOptionTable(detector::DetectOptions* o);
OptionTable TagTrainOptionTable(tagger::TagTrainOptions* o);
OptionTable TagOptionTable(tagger::TagOptions* o);
OptionTable TrainOptionTable(trainer::TrainOptions* o);
OptionTable SampleOptionTable(trainer::SampleOptions* o);
// `moeforge serve` (not a stage of `moeforge run`: its flags only).
OptionTable ServeOptionTable(studio::StudioOptions* o);

}  // namespace moeforge::cli
