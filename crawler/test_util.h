// Helpers shared by the crawler's end-to-end tests: a throw-away workspace and the
// storage invariants every crawl must leave.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/hash.h"
#include "core/workspace.h"
#include "db/db.h"

namespace moeforge::crawler::testing_util {

namespace fs = std::filesystem;

// The moeforge binary the tests run: MOEFORGE_BIN, or the one this build made.
inline std::string Binary() {
  const char* env = std::getenv("MOEFORGE_BIN");
  return env ? env : std::string(MOEFORGE_BINARY_DIR) + "/cli/moeforge";
}

// Starts args[0] with args, its stdout and stderr to `out` (appended; /dev/null unless
// given); returns the child's pid.
inline pid_t Spawn(const std::vector<std::string>& args, const std::string& out = "/dev/null") {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Waits for pid: its exit status, or 128 + the signal that ended it.
inline int WaitExit(pid_t pid) {
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// Runs args[0] with args to its end: its exit status (as WaitExit) and its stdout + stderr.
inline std::pair<int, std::string> RunCapture(const std::vector<std::string>& args) {
  int fds[2];
  if (pipe(fds) != 0) return {-1, ""};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  return {WaitExit(pid), out};
}

struct Env {
  std::string dir;
  Workspace ws;
  explicit Env(const std::string& name)
      : dir((fs::temp_directory_path() / ("mf_crawl_" + name + "_" + std::to_string(::getpid()))).string()), ws(dir) {
    fs::remove_all(dir);
    EXPECT_TRUE(ws.CreateDirs().ok());
    auto db = db::OpenWorkspace(ws, true);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
  }
  ~Env() { fs::remove_all(dir); }
  std::unique_ptr<db::Database> Db() { return std::move(db::OpenWorkspace(ws).value()); }
  int64_t Q(const std::string& sql) { return Db()->QueryInt(sql).value(); }
  // remote_id -> state/error
  std::map<std::string, std::pair<std::string, std::string>> Posts() {
    auto db = Db();
    auto st = db->Prepare("SELECT remote_id, state, COALESCE(error,'') FROM posts").value();
    std::map<std::string, std::pair<std::string, std::string>> out;
    while (st.Step().value()) out[st.Text(0)] = {st.Text(1), st.Text(2)};
    return out;
  }
};

// Every images row with a blob_path has that file with that content; every file under
// blobs/ has a row; every stored/duplicate post points at a stored blob.
inline void CheckInvariants(Env& env) {
  auto db = env.Db();
  auto st = db->Prepare("SELECT sha256, blob_path FROM images WHERE blob_path IS NOT NULL").value();
  std::set<std::string> rows;
  while (st.Step().value()) {
    std::string sha = st.Text(0);
    rows.insert(sha);
    auto h = Sha256File(env.ws.Abs(st.Text(1)));
    ASSERT_TRUE(h.ok()) << "row without blob: " << sha;
    EXPECT_EQ(*h, sha);
  }
  std::set<std::string> files;
  for (auto& e : fs::recursive_directory_iterator(env.ws.blobs_dir()))
    if (e.is_regular_file()) files.insert(e.path().filename().string());
  EXPECT_EQ(files, rows) << "blobs without rows or rows without blobs";
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state IN ('stored','duplicate') AND image_sha256 NOT IN "
                  "(SELECT sha256 FROM images WHERE blob_path IS NOT NULL)"),
            0);
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state='stored' AND image_sha256 <> content_sha256"), 0);
}


}  // namespace moeforge::crawler::testing_util
