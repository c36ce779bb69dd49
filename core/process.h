// Small process helpers the bench drivers and binary tests share: CPU time from getrusage
// and running a command to capture its standard output.
#pragma once

#include <string>

namespace moeforge {

// CPU seconds (user + system, all threads) of this process (RUSAGE_SELF) or of its
// waited-for children (RUSAGE_CHILDREN): steadier than wall time on a shared machine.
double CpuSeconds(int who);

struct CommandResult {
  int status = -1;     // the exit status when the command exited, else -1
  std::string output;  // its standard output
};
// Runs `cmd` through /bin/sh (popen) and waits for it.
CommandResult RunCommand(const std::string& cmd);

}  // namespace moeforge
