// The command line is the user's contract (DESIGN.md): subcommands exist with their
// flags, --help shows defaults, bad usage exits 2 with one line.
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/e2e_util.h"

namespace moeforge::testing {
namespace {

TEST(Cli, HelpListsTheSubcommands) {
  Outcome r = Moeforge("--help");
  EXPECT_EQ(r.status, 0) << r.out;
  for (const char* cmd : {"init", "status", "demo-booru", "crawl", "detect", "tag", "train", "sample", "eval",
                          "demo", "run", "models", "view", "export"})
    EXPECT_NE(r.out.find(std::string("\n  ") + cmd + " "), std::string::npos) << "missing subcommand " << cmd;
}

TEST(Cli, EachHelpShowsItsFlagsWithDefaults) {
  struct Case { const char* args; const char* must_contain; } cases[] = {
      {"demo-booru --help", "--port"},
      {"demo-booru --help", "--dump-truth"},
      {"crawl --help", "--concurrency"},
      {"detect --help", "--crop-size"},
      {"tag --help", "--tagger"},
      {"tag train --help", "--epochs"},
      {"train --help", "--resolution"},
      {"train --help", "--resume"},
      {"sample --help", "--tags"},
      {"demo --help", "--out"},
      {"status --help", "--json"},
  };
  for (const auto& c : cases) {
    Outcome r = Moeforge(c.args);
    EXPECT_EQ(r.status, 0) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.must_contain), std::string::npos) << c.args << "\n" << r.out;
  }
  // Defaults are printed.
  Outcome demo = Moeforge("demo --help");
  EXPECT_NE(demo.out.find("--out TEXT=moeforge-demo"), std::string::npos) << demo.out;
}

TEST(Cli, BadUsageExitsTwoWithOneLine) {
  std::string ws = TempDir("cli");
  ASSERT_EQ(Moeforge("init " + ws + "/ws").status, 0);
  const char* bad[] = {
      "frobnicate",
      "status -w WS --no-such-flag",
      "train -w WS --resolution 48",
      "demo --posts many",
      "status -w /nonexistent/ws",
      "export -w WS --format jpeg --out /tmp/x",
  };
  for (std::string args : bad) {
    auto pos = args.find("WS");
    if (pos != std::string::npos) args.replace(pos, 2, ws + "/ws");
    Outcome r = Moeforge(args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.out;
    std::string s = r.out;
    while (!s.empty() && s.back() == '\n') s.pop_back();
    EXPECT_EQ(s.find('\n'), std::string::npos) << args << ": expected one line, got:\n" << r.out;
  }
}

TEST(Cli, StageNamedExecutablesRunTheirSubcommand) {
  std::string ws = TempDir("alias");
  ASSERT_EQ(Moeforge("init " + ws + "/ws").status, 0);
  std::string alias = Bin().substr(0, Bin().find_last_of('/') + 1) + "moeforge-status";
  FILE* p = popen((alias + " -w " + ws + "/ws --json").c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, p);
  buf[n] = 0;
  EXPECT_EQ(pclose(p), 0);
  EXPECT_NE(std::string(buf).find("\"schema_version\""), std::string::npos) << buf;
}

}  // namespace
}  // namespace moeforge::testing
