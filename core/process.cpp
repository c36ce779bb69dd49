#include "core/process.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>

namespace moeforge {

double CpuSeconds(int who) {
  rusage ru{};
  ::getrusage(who, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::map<int, double> ThreadCpuSeconds() {
  std::map<int, double> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    int tid = std::atoi(e.path().filename().c_str());
    // The thread's CPU-time clock, as pthread_getcpuclockid() makes it for a pthread_t
    // (Linux: ~tid << 3 | CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED), in nanoseconds; the
    // clock ticks of /proc/self/task/*/stat lose up to 10 ms per thread.
    clockid_t clock = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6u);
    timespec ts{};
    if (::clock_gettime(clock, &ts) != 0) continue;  // ended meanwhile
    out[tid] = static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  }
  return out;
}

CommandResult RunCommand(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) r.output += buf;
  int rc = ::pclose(p);
  r.status = rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return r;
}

void SetThreadName(const char* name) {
  char shortened[16];
  std::strncpy(shortened, name, sizeof shortened - 1);
  shortened[sizeof shortened - 1] = '\0';
  ::pthread_setname_np(::pthread_self(), shortened);
}

}  // namespace moeforge
