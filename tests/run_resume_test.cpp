// `moeforge run CONFIG` is re-runnable: killed with SIGKILL in each stage and started
// again, it ends where an uninterrupted run ends; run once more, it redoes nothing (the
// tagger is not retrained, no training step is added).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include <gtest/gtest.h>

#include "core/models.h"
#include "db/db.h"
#include "tests/e2e_util.h"

namespace moeforge::testing {
namespace {

// `moeforge run ARGS` in its own process group, its stdout collected as it comes.
class RunProcess {
 public:
  explicit RunProcess(const std::string& args) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      dup2(fds[1], STDOUT_FILENO);
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, STDERR_FILENO);
      close(fds[0]);
      close(fds[1]);
      std::string cmd = "exec " + Bin() + " run " + args;
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    fd_ = fds[0];
  }
  ~RunProcess() {
    if (!exited_ && pid_ > 0) Kill();
    if (fd_ >= 0) close(fd_);
  }
  // Reads output until `ready()` holds (true) or the process ends (false).
  bool PumpUntil(const std::function<bool()>& ready) {
    while (!exited_) {
      if (ready()) return true;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) > 0) {
        char buf[4096];
        ssize_t n = read(fd_, buf, sizeof buf);
        if (n > 0) {
          out_.append(buf, static_cast<size_t>(n));
        } else {
          int st = 0;
          waitpid(pid_, &st, 0);
          exited_ = true;
          status_ = st;
        }
      }
    }
    return false;
  }
  void Kill() {
    kill(-pid_, SIGKILL);
    int st = 0;
    waitpid(pid_, &st, 0);
    exited_ = true;
    status_ = st;
  }
  bool killed() const { return exited_ && WIFSIGNALED(status_) && WTERMSIG(status_) == SIGKILL; }
  int exit_code() const { return exited_ && WIFEXITED(status_) ? WEXITSTATUS(status_) : -1; }
  const std::string& out() const { return out_; }
  bool Printed(const std::string& stage) const { return out_.find("\n" + stage + ": ") != std::string::npos ||
                                                        out_.rfind(stage + ": ", 0) == 0; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string out_;
  bool exited_ = false;
  int status_ = 0;
};

// A read-only count over the workspace as the run writes it; -1 before it exists.
int64_t Count(const std::string& ws, const std::string& sql) {
  if (!std::filesystem::exists(ws + "/moeforge.db")) return -1;
  db::OpenOptions o;
  o.read_only = true;
  auto d = db::Database::Open(ws + "/moeforge.db", o);
  if (!d.ok()) return -1;
  auto n = (*d)->QueryInt(sql);
  return n.ok() ? *n : -1;
}

std::string WriteConfig(const std::string& dir, const std::string& url) {
  std::ofstream cfg(dir + "/run.toml");
  // Slow enough in crawl (rate) and tag (batch) that each stage can be caught running.
  cfg << "workspace = '" << dir << "/ws'\n"
      << "[crawl]\nsource = 'danbooru'\nurl = '" << url << "'\nlimit = 40\nrate = 25\nconcurrency = 1\n"
      << "[detect]\ncrop_size = 64\nthreads = 1\n[tag_train]\nepochs = 3\n[tag]\nbatch = 2\nthreads = 1\n"
      << "[train]\nrun = 'r'\nresolution = 32\nsteps = 24\nbatch = 8\ng_channels = 16\ng_blocks = 1\n"
      << "d_channels = 16\nd_blocks = 1\ncheckpoint_every = 4\n[sample]\nn = 4\n";
  return dir + "/run.toml";
}

struct Totals {
  int64_t posts, faces, tagged, step;
};
Totals Read(const std::string& ws) {
  return {Count(ws, "SELECT count(*) FROM posts WHERE state IN ('stored', 'duplicate')"),
          Count(ws, "SELECT count(*) FROM faces"),
          Count(ws, "SELECT count(DISTINCT face_id) FROM face_tags"),
          Count(ws, "SELECT step FROM runs WHERE name = 'r'")};
}

TEST(RunResume, KilledInEachStageThenRerunEndsLikeAnUninterruptedRun) {
  if (!ResolveModel("lbpcascade_animeface").ok()) GTEST_SKIP() << "lbpcascade_animeface not on MOEFORGE_MODEL_PATH";
  // Some transfers stall a quarter second, so the crawl lasts long enough to be killed in.
  DemoBooruProcess booru("--posts 40 --seed 11 --faults stall=0.15,stall_ms=250");
  ASSERT_FALSE(booru.url().empty());

  std::string ref_dir = TempDir("resume_ref");
  Outcome ref = Moeforge("run " + WriteConfig(ref_dir, booru.url()), true);
  ASSERT_EQ(ref.status, 0) << ref.out;
  Totals want = Read(ref_dir + "/ws");
  ASSERT_GT(want.faces, 10);
  ASSERT_EQ(want.step, 24);

  std::string dir = TempDir("resume_kill");
  std::string cfg = WriteConfig(dir, booru.url());
  std::string ws = dir + "/ws";
  // Each kill point: the stage running when it fires (the previous stage's summary is out,
  // and this stage has left a trace where it has one).
  struct KillPoint {
    const char* stage;
    const char* after;  // summary line already printed
    std::string trace;  // SQL that is > 0 once this stage has written something
    bool must_catch;    // long enough that the kill lands inside it every time
  } points[] = {
      {"crawl", "", "SELECT count(*) FROM posts WHERE state = 'stored'", true},
      {"detect", "crawl", "SELECT count(*) FROM faces", true},
      {"tag-train", "detect", "", true},
      {"tag", "tag-train", "SELECT count(*) FROM face_tags", false},
      {"train", "view", "SELECT count(*) FROM runs WHERE step >= 4", true},
      {"sample", "train", "", false},
  };
  for (const auto& k : points) {
    SCOPED_TRACE(k.stage);
    RunProcess run(cfg);
    bool fired = run.PumpUntil([&] {
      if (*k.after && !run.Printed(k.after)) return false;
      return k.trace.empty() || Count(ws, k.trace) > 0;
    });
    if (fired) run.Kill();
    bool inside = fired && !run.Printed(k.stage);
    if (k.must_catch) {
      EXPECT_TRUE(run.killed() && inside) << "the kill should land in " << k.stage << "; output:\n" << run.out();
    }
    EXPECT_TRUE(run.killed() || run.exit_code() == 0) << run.out();
  }
  // Started again after the last kill: it finishes.
  Outcome finish = Moeforge("run " + cfg, true);
  ASSERT_EQ(finish.status, 0) << finish.out;
  Totals got = Read(ws);
  EXPECT_EQ(got.posts, want.posts);
  EXPECT_EQ(got.faces, want.faces) << "no face lost or detected twice";
  EXPECT_EQ(got.tagged, want.tagged);
  EXPECT_EQ(got.step, 24);
  EXPECT_EQ(Count(ws, "SELECT count(*) FROM (SELECT 1 FROM faces GROUP BY detector_id, image_sha256, idx HAVING count(*) > 1)"), 0);
  EXPECT_TRUE(std::filesystem::exists(ws + "/sample.png"));

  // Once more: nothing to do, nothing retrained.
  Outcome again = Moeforge("run " + cfg + " --set train.steps=24", true);
  ASSERT_EQ(again.status, 0) << again.out;
  for (const char* line : {"crawl: 0 done", "detect: 0 done", "tag-train: 0 done, 1 skipped", "tag: 0 done",
                           "train: 0 done", "run report (workspace "})
    EXPECT_NE(again.out.find(line), std::string::npos) << line << "\n" << again.out;
  EXPECT_EQ(Read(ws).step, 24);

  // More steps asked: training continues from where it stopped; the tagger still is not retrained.
  Outcome more = Moeforge("run " + cfg + " --set train.steps=28 --from tag_train --until train", true);
  ASSERT_EQ(more.status, 0) << more.out;
  EXPECT_NE(more.out.find("tag-train: 0 done, 1 skipped"), std::string::npos) << more.out;
  EXPECT_NE(more.out.find("train: 4 done"), std::string::npos) << more.out;
  EXPECT_EQ(more.out.find("crawl: "), std::string::npos) << "--from skips crawl";
  EXPECT_EQ(more.out.find("sample: "), std::string::npos) << "--until stops after train";
  EXPECT_EQ(Read(ws).step, 28);
  Outcome bad = Moeforge("run " + cfg + " --from nowhere");
  EXPECT_EQ(bad.status, 2) << bad.out;
  EXPECT_NE(bad.out.find("not a stage"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace moeforge::testing
