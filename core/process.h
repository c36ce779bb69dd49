// Small process helpers: CPU time from getrusage, running a command to capture its
// standard output (bench drivers, binary tests) and naming threads.
#pragma once

#include <map>
#include <string>

namespace moeforge {

// CPU seconds (user + system, all threads) of this process (RUSAGE_SELF) or of its
// waited-for children (RUSAGE_CHILDREN): steadier than wall time on a shared machine.
double CpuSeconds(int who);

// CPU seconds of each live thread of this process, by thread id (the threads listed in
// /proc/self/task, each read from its CPU-time clock). A thread that has ended is not
// listed.
std::map<int, double> ThreadCpuSeconds();

struct CommandResult {
  int status = -1;     // the exit status when the command exited, else -1
  std::string output;  // its standard output
};
// Runs `cmd` through /bin/sh (popen) and waits for it.
CommandResult RunCommand(const std::string& cmd);

// Names the calling thread (at most 15 bytes are kept), as `top -H`, `perf report --sort
// comm` and gdb show it.
void SetThreadName(const char* name);

}  // namespace moeforge
