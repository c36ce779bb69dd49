// How a subcommand plugs into the `moeforge` umbrella executable. Each stage's
// cli/<stage>_cmd.cpp defines one Add*Command function: it adds a CLI11 subcommand
// with its flags (defaults shown in --help) and returns the function that runs it.
// main() parses argv, runs the chosen command and exits with what it returns.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "core/status.h"

namespace moeforge::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;  // returns the exit status (0 done, 1 failed, 2 usage/input)
};

// Prints "moeforge <cmd>: <status>" on stderr; returns status.ExitCode().
int Fail(const std::string& cmd, const Status& status);

// For commands that serve until stopped: block SIGINT/SIGTERM in this thread (and so
// in every thread started after), then wait for one; returns the signal number.
void BlockStopSignals();
int WaitForStopSignal();

// The commands, one per file in cli/.
Command AddInitCommand(CLI::App& root);        // init_cmd.cpp
Command AddStatusCommand(CLI::App& root);      // status_cmd.cpp
Command AddDemoBooruCommand(CLI::App& root);   // demo_booru_cmd.cpp
Command AddCrawlCommand(CLI::App& root);       // crawl_cmd.cpp
Command AddDetectCommand(CLI::App& root);      // detect_cmd.cpp
Command AddTagCommand(CLI::App& root);         // tag_cmd.cpp (tag, tag train)
Command AddTrainCommand(CLI::App& root);       // train_cmd.cpp
Command AddSampleCommand(CLI::App& root);      // sample_cmd.cpp
Command AddEvalCommand(CLI::App& root);        // eval_cmd.cpp
Command AddDemoCommand(CLI::App& root);        // demo_cmd.cpp
Command AddRunCommand(CLI::App& root);         // run_cmd.cpp
Command AddModelsCommand(CLI::App& root);      // models_cmd.cpp
Command AddViewCommand(CLI::App& root);        // view_cmd.cpp
Command AddQueryCommand(CLI::App& root);       // query_cmd.cpp
Command AddExportCommand(CLI::App& root);      // export_cmd.cpp
Command AddMergeCommand(CLI::App& root);       // merge_cmd.cpp
Command AddServeCommand(CLI::App& root);       // serve_cmd.cpp

}  // namespace moeforge::cli
