// `moeforge models`: a model file whose SHA-256 is not the registry's is never used, and
// the user is told which file is wrong, whether or not a download succeeds.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/models.h"
#include "tests/e2e_util.h"

namespace moeforge::testing {
namespace {

namespace fs = std::filesystem;

void WriteText(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

// Environment for one `moeforge models` run: a model path, a cache, and a proxy that
// refuses every connection, so the download fails here whether or not the machine is online.
std::string OfflineEnv(const std::string& model_path, const std::string& cache) {
  return "env MOEFORGE_MODEL_PATH='" + model_path + "' XDG_CACHE_HOME='" + cache +
         "' https_proxy=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9 ";
}

// Runs a shell command line; stdout and stderr together.
Outcome Shell(const std::string& cmd) {
  Outcome r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

TEST(Models, PullRefusesAWrongLocalCopyWhenTheDownloadFails) {
  std::string root = TempDir("models_pull");
  fs::path bad = fs::path(root) / "path" / "lbpcascade_animeface.xml";
  WriteText(bad, "<opencv_storage>not the published cascade</opencv_storage>\n");
  std::string cmd = OfflineEnv((fs::path(root) / "path").string(), root + "/cache") + Bin() +
                    " models pull lbpcascade_animeface";
  Outcome r = Shell(cmd);
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_EQ(r.out.find("using the"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(bad.string() + " has sha256"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("not usable"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(fs::path(root) / "cache" / "moeforge" / "models" / "lbpcascade_animeface.xml"));
  fs::remove_all(root);
}

// A wrong copy early on MOEFORGE_MODEL_PATH loses to the verified copy in the cache
// (where `models pull` saves a good download), and the wrong one is named on stderr.
TEST(Models, ResolvePassesOverAWrongCopyForAVerifiedOne) {
  auto good = ResolveModel("lbpcascade_animeface");  // verified, from the caller's path
  if (!good.ok()) GTEST_SKIP() << "no verified lbpcascade_animeface on MOEFORGE_MODEL_PATH: " << good.status().ToString();
  std::string root = TempDir("models_resolve");
  fs::path bad = fs::path(root) / "path" / "lbpcascade_animeface.xml";
  WriteText(bad, "<opencv_storage/>\n");
  fs::path cached = fs::path(root) / "cache" / "moeforge" / "models" / "lbpcascade_animeface.xml";
  fs::create_directories(cached.parent_path());
  fs::copy_file(*good, cached);

  std::string env = OfflineEnv((fs::path(root) / "path").string(), root + "/cache");
  Outcome r = Shell(env + Bin() + " models path lbpcascade_animeface");
  const std::string& out = r.out;
  EXPECT_EQ(r.status, 0) << out;
  EXPECT_NE(out.find(cached.string() + "\n"), std::string::npos) << out;
  EXPECT_NE(out.find("warning: model 'lbpcascade_animeface': " + bad.string() + " has sha256"), std::string::npos)
      << out;

  // And with the good copy gone, nothing is used: exit non-zero, naming the wrong file.
  fs::remove(cached);
  r = Shell(env + Bin() + " models path lbpcascade_animeface");
  EXPECT_NE(r.status, 0) << out;
  EXPECT_NE(out.find("never used"), std::string::npos) << out;
  EXPECT_EQ(out.find(cached.string()), std::string::npos) << out;
  fs::remove_all(root);
}

}  // namespace
}  // namespace moeforge::testing
