// Each stage option is declared once (cli/options.h): every flag a stage command shows in
// --help is a key of its table in `moeforge run CONFIG.toml`. Checked on the real binary:
// a config that sets every flag's key to a value of no option's type (a TOML date) must
// fail with a type error naming each key, never with "unknown key".
#include <fstream>
#include <regex>
#include <set>

#include <gtest/gtest.h>

#include "tests/e2e_util.h"

namespace moeforge::testing {
namespace {

// The long flags of `moeforge ARGS --help`, as config keys (--max-bytes -> max_bytes).
std::set<std::string> Keys(const std::string& args) {
  Outcome r = Moeforge(args + " --help", true);
  EXPECT_EQ(r.status, 0) << r.out;
  std::set<std::string> keys;
  std::regex flag(R"(^\s+(?:-\w,)?--([a-z0-9-]+))");
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, flag)) continue;
    std::string k = m[1];
    if (k == "help" || k == "workspace" || k == "json") continue;  // not stage options
    std::replace(k.begin(), k.end(), '-', '_');
    keys.insert(k);
  }
  return keys;
}

TEST(Options, EveryStageFlagIsAConfigKey) {
  std::string dir = TempDir("options");
  struct Case {
    const char* command;
    const char* table;
    size_t at_least;  // flags the command has today: the parse above must find them
  } cases[] = {{"crawl", "crawl", 18}, {"detect", "detect", 14}, {"tag train", "tag_train", 14},
               {"tag", "tag", 7},       {"train", "train", 26},   {"sample", "sample", 9}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.command);
    std::set<std::string> keys = Keys(c.command);
    EXPECT_GE(keys.size(), c.at_least);
    std::string cfg = dir + "/" + c.table + ".toml";
    {
      std::ofstream f(cfg);
      f << "workspace = '" << dir << "/ws'\n[" << c.table << "]\n";
      for (const auto& k : keys) f << k << " = 1979-05-27\n";
      // Crawl off, so [crawl] needs no source and url.
      if (std::string(c.table) != "crawl") f << "[crawl]\n";
      f << "enabled = false\n";
    }
    Outcome r = Moeforge("run " + cfg);
    EXPECT_EQ(r.status, 2) << r.out;
    EXPECT_EQ(r.out.find("unknown key"), std::string::npos) << r.out;
    for (const auto& k : keys)
      EXPECT_NE(r.out.find(std::string(c.table) + "." + k + ": expected"), std::string::npos)
          << k << " is not bound from the config:\n" << r.out;
  }
}

}  // namespace
}  // namespace moeforge::testing
