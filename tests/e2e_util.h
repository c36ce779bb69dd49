// Helpers for end-to-end tests: run the real binary, capture its output and status.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace moeforge::testing {

struct Outcome {
  int status = -1;      // exit status
  std::string out;      // stdout + stderr
  std::string LastLine() const {
    std::string s = out;
    while (!s.empty() && s.back() == '\n') s.pop_back();
    auto nl = s.find_last_of('\n');
    return nl == std::string::npos ? s : s.substr(nl + 1);
  }
};

inline std::string Bin() {
  const char* b = std::getenv("MOEFORGE_BIN");
  return b ? b : "moeforge";
}

// Runs `moeforge ARGS` through the shell; stderr is folded into out unless
// `stdout_only`.
inline Outcome Moeforge(const std::string& args, bool stdout_only = false) {
  std::string cmd = Bin() + " " + args + (stdout_only ? " 2>/dev/null" : " 2>&1");
  Outcome r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

inline std::string TempDir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("moeforge_e2e_" + name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

}  // namespace moeforge::testing

#include <signal.h>
#include <unistd.h>

namespace moeforge::testing {

// `moeforge demo-booru ARGS` as a child process; url() from its first stdout line.
class DemoBooruProcess {
 public:
  explicit DemoBooruProcess(const std::string& args) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      std::string cmd = "exec " + Bin() + " demo-booru " + args;
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    out_ = fdopen(fds[0], "r");
    char line[512];
    if (out_ != nullptr && fgets(line, sizeof line, out_) != nullptr) {
      std::string l(line);
      const std::string prefix = "listening on ";
      if (l.rfind(prefix, 0) == 0) {
        url_ = l.substr(prefix.size());
        while (!url_.empty() && (url_.back() == '\n' || url_.back() == '\r')) url_.pop_back();
      }
    }
  }
  ~DemoBooruProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int st;
      waitpid(pid_, &st, 0);
    }
    if (out_ != nullptr) fclose(out_);
  }
  const std::string& url() const { return url_; }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  std::string url_;
};

}  // namespace moeforge::testing
