// The `moeforge` umbrella command. Also installed under the stage names
// (moeforge-crawl ...): invoked so, it runs that subcommand.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/command.h"

namespace moeforge::cli {

int Fail(const std::string& cmd, const Status& status) {
  std::fprintf(stderr, "moeforge %s: %s\n", cmd.c_str(), status.ToString().c_str());
  return status.ExitCode();
}

namespace {
sigset_t StopSet() {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  return stop;
}
}  // namespace

void BlockStopSignals() {
  sigset_t stop = StopSet();
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
}

int WaitForStopSignal() {
  sigset_t stop = StopSet();
  int sig = 0;
  sigwait(&stop, &sig);
  return sig;
}

}  // namespace moeforge::cli

int main(int argc, char** argv) {
  using namespace moeforge::cli;
  // moeforge-crawl ARGS == moeforge crawl ARGS
  std::vector<std::string> args(argv, argv + argc);
  std::string self = args[0].substr(args[0].find_last_of('/') + 1);
  if (self.rfind("moeforge-", 0) == 0) {
    args[0] = "moeforge";
    args.insert(args.begin() + 1, self.substr(std::strlen("moeforge-")));
  }

  CLI::App app{"moeforge: build anime-face training sets and train conditional GANs on them"};
  app.set_version_flag("--version", "moeforge 0.1.0");
  app.require_subcommand(1);
  app.fallthrough(false);
  std::vector<Command> commands;
  using Adder = Command (*)(CLI::App&);
  for (Adder add : std::vector<Adder>{
#define MF_CMD(fn) &fn,
#include "cli/commands.inc"
#undef MF_CMD
       }) {
    commands.push_back(add(app));
  }

  std::vector<const char*> cargs;
  for (auto& a : args) cargs.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(cargs.size()), cargs.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, exit 2 (DESIGN.md: bad usage).
    std::fprintf(stderr, "moeforge: %s (see --help)\n", e.what());
    return 2;
  }
  for (auto& c : commands)
    if (c.app->parsed()) return c.run();
  return 2;
}
