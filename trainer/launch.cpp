// `moeforge train --nproc N`: the local launcher of data-parallel ranks (torchrun's job on
// one machine). No torch here: it only starts, watches and stops processes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "trainer/trainer.h"

namespace moeforge::trainer {

namespace {

std::atomic<int> g_forward_signal{0};
void OnLauncherSignal(int sig) { g_forward_signal = sig; }

// A port free on loopback now (rank 0's TCPStore binds it a moment later).
Result<int> FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return Status::IoError("socket: " + std::string(std::strerror(errno)));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return Status::IoError("no free loopback port: " + std::string(std::strerror(errno)));
  }
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

Result<std::vector<std::string>> OwnCommandLine() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  if (!f) return Status::IoError("cannot read /proc/self/cmdline to start the ranks");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  size_t i = 0;
  while (i < all.size()) {
    size_t j = all.find('\0', i);
    if (j == std::string::npos) j = all.size();
    args.push_back(all.substr(i, j - i));
    i = j + 1;
  }
  if (args.empty()) return Status::IoError("/proc/self/cmdline is empty");
  return args;
}

std::string HowItEnded(int wstatus) {
  if (WIFEXITED(wstatus)) return fmt::format("exited with status {}", WEXITSTATUS(wstatus));
  if (WIFSIGNALED(wstatus)) return fmt::format("was killed by signal {} ({})", WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus)));
  return "ended";
}

}  // namespace

bool IsRankOfMany() {
  const char* w = std::getenv("WORLD_SIZE");
  return w != nullptr && std::atoi(w) > 1;
}

int RankFromEnvironment() {
  const char* r = std::getenv("RANK");
  return r != nullptr ? std::atoi(r) : 0;
}

Status LaunchLocalRanks(int nproc, std::chrono::seconds grace) {
  if (nproc < 2) return Status::InvalidArgument("the launcher starts 2 or more ranks");
  MF_ASSIGN_OR_RETURN(std::vector<std::string> args, OwnCommandLine());
  int port = 0;
  if (const char* p = std::getenv("MASTER_PORT"); p != nullptr && *p != '\0') {
    port = std::atoi(p);
  } else {
    MF_ASSIGN_OR_RETURN(port, FreeLoopbackPort());
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<pid_t> pids(nproc, -1);
  for (int r = 0; r < nproc; ++r) {
    pid_t pid = ::fork();
    if (pid < 0) {
      for (int k = 0; k < r; ++k) ::kill(pids[k], SIGKILL);
      return Status::IoError("fork: " + std::string(std::strerror(errno)));
    }
    if (pid == 0) {
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "train: rank %d: exec of /proc/self/exe failed: %s\n", r, std::strerror(errno));
      ::_exit(127);
    }
    pids[r] = pid;
  }
  std::fprintf(stderr, "train: started %d ranks on 127.0.0.1:%d (pids", nproc, port);
  for (pid_t p : pids) std::fprintf(stderr, " %d", p);
  std::fprintf(stderr, ")\n");

  auto old_int = std::signal(SIGINT, OnLauncherSignal);
  auto old_term = std::signal(SIGTERM, OnLauncherSignal);
  g_forward_signal = 0;
  std::vector<std::string> failures;
  int running = nproc;
  bool forwarded = false;
  std::chrono::steady_clock::time_point first_failure{};
  int escalation = 0;  // 0: waiting, 1: SIGTERM sent, 2: SIGKILL sent
  while (running > 0) {
    int wstatus = 0;
    pid_t pid = ::waitpid(-1, &wstatus, WNOHANG);
    if (pid > 0) {
      for (int r = 0; r < nproc; ++r) {
        if (pids[r] != pid) continue;
        pids[r] = -1;
        --running;
        if (!(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)) {
          if (failures.empty()) first_failure = std::chrono::steady_clock::now();
          failures.push_back(fmt::format("rank {} (pid {}) {}", r, pid, HowItEnded(wstatus)));
        }
      }
      continue;
    }
    if (g_forward_signal != 0 && !forwarded) {
      for (pid_t p : pids)
        if (p > 0) ::kill(p, SIGTERM);
      forwarded = true;
    }
    if (!failures.empty()) {
      auto waited = std::chrono::steady_clock::now() - first_failure;
      if (escalation == 0 && waited > grace) {
        for (pid_t p : pids)
          if (p > 0) ::kill(p, SIGTERM);
        escalation = 1;
      } else if (escalation == 1 && waited > grace + std::chrono::seconds(30)) {
        for (pid_t p : pids)
          if (p > 0) ::kill(p, SIGKILL);
        escalation = 2;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  if (failures.empty()) return Status::Ok();
  std::string msg = fmt::format("{} of {} ranks failed: ", failures.size(), nproc);
  for (size_t i = 0; i < failures.size(); ++i) msg += (i ? "; " : "") + failures[i];
  msg += ". Their errors are above; the run resumes from its last checkpoint with --resume";
  return Status::Network(msg);
}

}  // namespace moeforge::trainer
