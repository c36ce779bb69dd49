// core/: tag schema, hashing, atomic writes, model lookup.
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "core/hash.h"
#include "core/models.h"
#include "core/tag_schema.h"
#include "core/workspace.h"

namespace moeforge {
namespace {

TEST(TagSchema, DefaultIsTheMakeGirlsMoe34) {
  const TagSchema& s = TagSchema::Default();
  ASSERT_EQ(s.size(), 34);
  ASSERT_EQ(s.groups().size(), 4u);
  EXPECT_EQ(s.groups()[0].tags.size(), 13u);
  EXPECT_TRUE(s.groups()[0].exclusive);
  EXPECT_EQ(s.groups()[3].tags.size(), 10u);
  EXPECT_EQ(s.IndexOf("blonde_hair"), 0);
  EXPECT_EQ(s.IndexOf("gray_hair"), s.IndexOf("grey_hair")) << "aliases map onto schema tags";
  EXPECT_EQ(s.IndexOf("1girl"), -1);
}

TEST(TagSchema, EncodeAndDecide) {
  const TagSchema& s = TagSchema::Default();
  auto v = s.Encode({"1girl", "blonde_hair", "blue_eyes", "smile", "hair_ribbon"});
  float sum = 0;
  for (float x : v) sum += x;
  EXPECT_EQ(sum, 4);
  EXPECT_EQ(v[static_cast<size_t>(s.IndexOf("ribbon"))], 1);
  std::vector<float> scores(34, 0.1f);
  scores[static_cast<size_t>(s.IndexOf("red_hair"))] = 0.3f;  // best hair colour, below 0.5
  scores[static_cast<size_t>(s.IndexOf("hat"))] = 0.7f;
  auto d = s.Decide(scores);
  EXPECT_TRUE(d[static_cast<size_t>(s.IndexOf("red_hair"))]) << "exclusive groups: argmax";
  EXPECT_TRUE(d[static_cast<size_t>(s.IndexOf("hat"))]);
  EXPECT_FALSE(d[static_cast<size_t>(s.IndexOf("smile"))]);
  int eyes = 0;
  for (const auto& t : s.groups()[3].tags) eyes += d[static_cast<size_t>(s.IndexOf(t))];
  EXPECT_EQ(eyes, 1);
}

TEST(TagSchema, RoundTripsAndRejectsBadSchemas) {
  const TagSchema& s = TagSchema::Default();
  auto again = TagSchema::FromToml(s.ToToml());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->tags(), s.tags());
  EXPECT_EQ(again->Hash(), s.Hash());
  struct Case { const char* toml; const char* why; } cases[] = {
      {"name = 'x'\n", "needs at least one"},
      {"name = 'x'\n[[group]]\nname='a'\ntags=['t','t']\n", "appears twice"},
      {"name = 'x'\ncolour = 1\n[[group]]\nname='a'\ntags=['t']\n", "unknown key"},
      {"name = 'x'\n[[group]]\nname='a'\ntags=['t']\n[aliases]\nu = 'nope'\n", "points at no schema tag"},
      {"name = 'x\n", "tag schema"},
  };
  for (const auto& c : cases) {
    auto r = TagSchema::FromToml(c.toml);
    ASSERT_FALSE(r.ok()) << c.toml;
    EXPECT_NE(r.status().message().find(c.why), std::string::npos) << c.toml << " -> " << r.status().ToString();
  }
}

TEST(Hash, KnownVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Workspace, AtomicWriteAndBlobLayout) {
  namespace fs = std::filesystem;
  std::string dir = (fs::temp_directory_path() / "moeforge_core_test").string();
  fs::remove_all(dir);
  Workspace ws(dir + "/");
  EXPECT_EQ(ws.root(), dir);
  std::string sha = Sha256Hex("x");
  EXPECT_EQ(ws.BlobPath(sha, true), "blobs/" + sha.substr(0, 2) + "/" + sha.substr(2, 2) + "/" + sha);
  ASSERT_TRUE(WriteFileAtomic(ws.BlobPath(sha), "x", 1).ok());
  EXPECT_EQ(*ReadFile(ws.BlobPath(sha)), "x");
  auto h = Sha256File(ws.BlobPath(sha));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, sha);
  int leftovers = 0;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().string().find(".tmp.") != std::string::npos) ++leftovers;
  EXPECT_EQ(leftovers, 0);
}

TEST(Models, ResolvesByNameOnTheSearchPathAndExplainsMisses) {
  namespace fs = std::filesystem;
  std::string dir = (fs::temp_directory_path() / "moeforge_models_test").string();
  fs::create_directories(dir);
  ASSERT_TRUE(WriteFileAtomic(dir + "/lbpcascade_animeface.xml", "<x/>", 4).ok());
  ASSERT_TRUE(WriteFileAtomic(dir + "/my_cascade.xml", "<x/>", 4).ok());
  setenv("MOEFORGE_MODEL_PATH", ("/nonexistent:" + dir).c_str(), 1);
  // A file name outside the registry is the user's own model: found, not checked.
  auto p = ResolveModel("my_cascade.xml");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(*p, dir + "/my_cascade.xml");
  // A registry model whose bytes are not the published ones is never used, and says so.
  auto bad = ResolveModel("lbpcascade_animeface");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::Code::kCorrupt);
  EXPECT_NE(bad.status().message().find(dir + "/lbpcascade_animeface.xml has sha256 " + Sha256Hex("<x/>")),
            std::string::npos)
      << bad.status().ToString();
  auto miss = ResolveModel("haar_anime_face_detect");
  ASSERT_FALSE(miss.ok());
  EXPECT_NE(miss.status().message().find("moeforge models pull haar_anime_face_detect"), std::string::npos);
  EXPECT_FALSE(ResolveModel("/no/such/model.onnx").ok());
}

}  // namespace
}  // namespace moeforge

#include "core/config.h"

namespace moeforge {
namespace {

TEST(Config, BindsOverridesAndRejectsUnknownKeys) {
  auto cfg = Config::Parse("workspace = 'ws'\n[train]\nsteps = 100\nlr = 2e-4\n[detect]\ncrop_size = [64, 128]\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  ASSERT_TRUE(cfg->ApplyOverride("train.steps=250").ok());
  ASSERT_TRUE(cfg->ApplyOverride("crawl.tags=solo").ok()) << "a bare word is a string";
  std::string ws, tags;
  int64_t steps = 0;
  double lr = 0;
  std::vector<int> sizes;
  ConfigBinder b(*cfg);
  b.Bind("workspace", &ws);
  b.Bind("train.steps", &steps);
  b.Bind("train.lr", &lr);
  b.Bind("detect.crop_size", &sizes);
  b.Bind("crawl.tags", &tags);
  EXPECT_TRUE(b.Finish().ok()) << b.Finish().ToString();
  EXPECT_EQ(ws, "ws");
  EXPECT_EQ(steps, 250);
  EXPECT_DOUBLE_EQ(lr, 2e-4);
  EXPECT_EQ(sizes, (std::vector<int>{64, 128}));
  EXPECT_EQ(tags, "solo");

  auto bad = Config::Parse("[train]\nstepz = 1\nsteps = 'many'\n");
  ASSERT_TRUE(bad.ok());
  ConfigBinder b2(*bad);
  b2.Bind("train.steps", &steps);
  Status s = b2.Finish();
  EXPECT_EQ(s.ExitCode(), 2);
  EXPECT_NE(s.message().find("unknown key 'train.stepz'"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("train.steps: expected a number"), std::string::npos) << s.ToString();

  auto broken = Config::Parse("[train\n", "run.toml");
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("run.toml:1"), std::string::npos) << broken.status().ToString();
}

}  // namespace
}  // namespace moeforge

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <map>
#include <thread>

#include "core/process.h"

// The crawl bench splits its CPU by thread with ThreadCpuSeconds(): a thread that burns CPU
// shows it under its own id, one that sleeps does not, and ended threads are not listed.
TEST(Process, ThreadCpuSecondsIsPerThread) {
  std::atomic<int> busy_tid{0}, idle_tid{0};
  std::atomic<bool> burned{false}, measured{false};
  auto own_cpu = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  };
  std::thread busy([&] {
    busy_tid = static_cast<int>(::syscall(SYS_gettid));
    volatile uint64_t x = 0;
    while (own_cpu() < 0.15) x = x + 1;  // 150 ms of CPU, however long that takes
    burned = true;
    while (!measured) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  std::thread idle([&] {
    idle_tid = static_cast<int>(::syscall(SYS_gettid));
    while (!measured) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  while (!burned || idle_tid == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::map<int, double> cpu = moeforge::ThreadCpuSeconds();
  measured = true;
  busy.join();
  idle.join();
  ASSERT_TRUE(cpu.count(busy_tid));
  ASSERT_TRUE(cpu.count(idle_tid));
  EXPECT_TRUE(cpu.count(static_cast<int>(::getpid())));  // the main thread
  EXPECT_GE(cpu[busy_tid], 0.15);
  EXPECT_LT(cpu[idle_tid], 0.05);
  std::map<int, double> after = moeforge::ThreadCpuSeconds();
  EXPECT_FALSE(after.count(busy_tid));
  EXPECT_FALSE(after.count(idle_tid));
}
