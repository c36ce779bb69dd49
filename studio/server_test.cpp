// Server tests: a tiny run trained in-process on synthetic faces, served on a free port,
// and asked for the page, the runs, the schema and sample grids over real HTTP; bad
// requests answer 400 with the message a user can act on. The last test runs the real
// `moeforge serve` binary and stops it with SIGTERM.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "core/tag_schema.h"
#include "core/workspace.h"
#include "studio/server.h"
#include "trainer/synthetic_faces.h"
#include "trainer/trainer.h"

namespace fs = std::filesystem;
using namespace moeforge;

namespace {

const char* kRun = "tiny";

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string((fs::temp_directory_path() / ("moeforge_server_test_" + std::to_string(getpid()))).string());
    fs::remove_all(*root_);
    fs::create_directories(*root_);
    Status s = trainer::MakeSyntheticFaceWorkspace(*root_, 16);
    ASSERT_TRUE(s.ok()) << s.ToString();
    trainer::TrainOptions o;
    o.run = kRun;
    o.resolution = 32;
    o.steps = 2;
    o.batch = 4;
    o.z_dim = 16;
    o.g_channels = 8;
    o.g_blocks = 1;
    o.d_channels = 8;
    o.d_blocks = 1;
    o.threads = 1;
    o.checkpoint_every = 2;
    o.snapshot_every = 2;
    o.sample_every = 1000;
    auto sum = trainer::Train(Workspace(*root_), o);
    ASSERT_TRUE(sum.ok()) << sum.status().ToString();

    server::ServeOptions so;
    so.port = 0;
    so.sample_threads = 1;
    server_ = new server::SampleServer(Workspace(*root_), so);
    s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    if (root_ != nullptr) fs::remove_all(*root_);
    delete root_;
    root_ = nullptr;
  }

  static httplib::Result Get(const std::string& path) {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(60, 0);
    return c.Get(path.c_str());
  }

  static std::string* root_;
  static server::SampleServer* server_;
};

std::string* ServerTest::root_ = nullptr;
server::SampleServer* ServerTest::server_ = nullptr;

TEST_F(ServerTest, PageOffersTheRunAndItsSchema) {
  auto r = Get("/");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/html"), std::string::npos);
  const std::string& html = r->body;
  EXPECT_NE(html.find("<option value=\"tiny\" selected>"), std::string::npos);
  // Every schema tag is offered: radio buttons for exclusive groups (with "random"),
  // checkboxes for the others.
  const TagSchema& schema = TagSchema::Default();
  for (size_t g = 0; g < schema.groups().size(); ++g) {
    const auto& grp = schema.groups()[g];
    for (const auto& t : grp.tags) {
      std::string input = std::string("<input type=\"") + (grp.exclusive ? "radio" : "checkbox") +
                          "\" data-tag name=\"g" + std::to_string(g) + "\" value=\"" + t + "\">";
      EXPECT_NE(html.find(input), std::string::npos) << t;
    }
    if (grp.exclusive) {
      EXPECT_NE(html.find("name=\"g" + std::to_string(g) + "\" value=\"\" checked>"), std::string::npos) << grp.name;
    }
  }
  for (const char* id : {"id=\"seed\"", "id=\"reroll\"", "id=\"n\"", "id=\"generate\"", "id=\"grid\""})
    EXPECT_NE(html.find(id), std::string::npos) << id;
  // Self-contained: no external scripts, styles, fonts or images.
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("href=\"http"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("<script src"), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
}

TEST_F(ServerTest, PageForAMissingRunSaysWhy) {
  auto r = Get("/?run=nope");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("run &#39;nope&#39; has no"), std::string::npos);
  EXPECT_NE(r->body.find("id=\"generate\" disabled"), std::string::npos);
}

TEST_F(ServerTest, ApiRunsListsTheTrainedRun) {
  auto r = Get("/api/runs");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  auto j = nlohmann::json::parse(r->body);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["name"], kRun);
  EXPECT_EQ(j[0]["step"], 2);
  EXPECT_EQ(j[0]["resolution"], 32);
  EXPECT_EQ(j[0]["has_checkpoint"], true);
  EXPECT_FALSE(j[0]["updated_at"].get<std::string>().empty());
}

TEST_F(ServerTest, ApiSchemaGivesTheRunsGroups) {
  auto r = Get("/api/schema?run=tiny");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  auto j = nlohmann::json::parse(r->body);
  const TagSchema& schema = TagSchema::Default();
  ASSERT_EQ(j["groups"].size(), schema.groups().size());
  for (size_t g = 0; g < schema.groups().size(); ++g) {
    EXPECT_EQ(j["groups"][g]["name"], schema.groups()[g].name);
    EXPECT_EQ(j["groups"][g]["exclusive"], schema.groups()[g].exclusive);
    EXPECT_EQ(j["groups"][g]["tags"].get<std::vector<std::string>>(), schema.groups()[g].tags);
  }
}

TEST_F(ServerTest, SampleIsAPngGridThatFollowsSeedAndTags) {
  auto a = Get("/api/sample.png?run=tiny&tags=blonde_hair+blue_eyes&seed=7&n=4");
  ASSERT_TRUE(a);
  ASSERT_EQ(a->status, 200) << a->body;
  EXPECT_EQ(a->get_header_value("Content-Type"), "image/png");
  EXPECT_EQ(a->get_header_value("X-Moeforge-Seed"), "7");
  std::vector<uchar> bytes(a->body.begin(), a->body.end());
  cv::Mat img = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
  ASSERT_FALSE(img.empty());
  // 2 x 2 faces of 32 px with 2 px gaps and borders.
  EXPECT_EQ(img.cols, 2 * (32 + 2) + 2);
  EXPECT_EQ(img.rows, 2 * (32 + 2) + 2);
  EXPECT_EQ(img.channels(), 3);

  auto same = Get("/api/sample.png?run=tiny&tags=blonde_hair%20blue_eyes&seed=7&n=4");
  ASSERT_TRUE(same);
  EXPECT_EQ(same->body, a->body);
  auto other_seed = Get("/api/sample.png?run=tiny&tags=blonde_hair+blue_eyes&seed=8&n=4");
  ASSERT_TRUE(other_seed);
  EXPECT_EQ(other_seed->status, 200);
  EXPECT_NE(other_seed->body, a->body);
  auto other_tags = Get("/api/sample.png?run=tiny&tags=black_hair+blue_eyes&seed=7&n=4");
  ASSERT_TRUE(other_tags);
  EXPECT_EQ(other_tags->status, 200);
  EXPECT_NE(other_tags->body, a->body);

  // n = 5: 3 columns, 2 rows.
  auto five = Get("/api/sample.png?run=tiny&seed=1&n=5");
  ASSERT_TRUE(five);
  ASSERT_EQ(five->status, 200);
  std::vector<uchar> b5(five->body.begin(), five->body.end());
  cv::Mat g5 = cv::imdecode(b5, cv::IMREAD_COLOR);
  EXPECT_EQ(g5.cols, 3 * 34 + 2);
  EXPECT_EQ(g5.rows, 2 * 34 + 2);

  // The temporary grids are gone.
  std::string tmp = Workspace(*root_).tmp_dir();
  if (fs::exists(tmp))
    for (const auto& e : fs::directory_iterator(tmp)) ADD_FAILURE() << "left behind: " << e.path();
}

// The run keeps a snapshot of step 2: it can be served, and truncation 0 gives every
// noise one face for one set of tags.
TEST_F(ServerTest, SnapshotsAndTruncationCanBeAskedFor) {
  auto snap = Get("/api/sample.png?run=tiny&tags=blonde_hair+blue_eyes&seed=7&n=2&snapshot=2");
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->status, 200) << snap->body;
  auto t0 = Get("/api/sample.png?run=tiny&tags=blonde_hair+blue_eyes&seed=7&n=2&truncation=0");
  ASSERT_TRUE(t0);
  ASSERT_EQ(t0->status, 200) << t0->body;
  cv::Mat grid = cv::imdecode(std::vector<uchar>(t0->body.begin(), t0->body.end()), cv::IMREAD_COLOR);
  ASSERT_EQ(grid.cols, 2 * 34 + 2);
  EXPECT_EQ(cv::norm(grid(cv::Rect(2, 2, 32, 32)), grid(cv::Rect(36, 2, 32, 32)), cv::NORM_L1), 0.0);
}

TEST_F(ServerTest, NoSeedDrawsOneAndReportsIt) {
  auto r = Get("/api/sample.png?run=tiny&n=1");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  std::string seed = r->get_header_value("X-Moeforge-Seed");
  ASSERT_FALSE(seed.empty());
  auto again = Get("/api/sample.png?run=tiny&n=1&seed=" + seed);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->body, r->body);  // the reported seed reproduces the grid
}

TEST_F(ServerTest, ConcurrentRequestsGetTheSameGridsAsOneAtATime) {
  std::string path = "/api/sample.png?run=tiny&tags=pink_hair&seed=3&n=2";
  auto serial = Get(path);
  ASSERT_TRUE(serial);
  ASSERT_EQ(serial->status, 200);
  std::vector<std::string> got(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&, i] {
      auto r = Get(path);
      if (r && r->status == 200) got[i] = r->body;
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(got[i], serial->body) << i;
}

TEST_F(ServerTest, BadRequestsAnswer400WithAMessage) {
  struct Case {
    const char* path;
    int status;
    const char* message;
  };
  const Case cases[] = {
      {"/api/sample.png?run=tiny&tags=purple_unicorn", 400, "unknown tag 'purple_unicorn'"},
      {"/api/sample.png?run=tiny&tags=blonde_hair+black_hair", 400, "both in the exclusive group hair_color"},
      {"/api/sample.png?run=nope&n=1", 400, "run 'nope' has no"},
      {"/api/sample.png?n=1", 400, "missing parameter 'run'"},
      {"/api/sample.png?run=..&n=1", 400, "bad run name"},
      {"/api/sample.png?run=tiny%2F..&n=1", 400, "bad run name"},
      {"/api/sample.png?run=tiny&n=0", 400, "'n' must lie in 1..64"},
      {"/api/sample.png?run=tiny&n=65", 400, "'n' must lie in 1..64"},
      {"/api/sample.png?run=tiny&n=abc", 400, "'n' must be a whole number"},
      {"/api/sample.png?run=tiny&seed=-1", 400, "'seed' must be a whole number"},
      {"/api/sample.png?run=tiny&seed=99999999999999999999", 400, "'seed' is out of range"},
      {"/api/sample.png?run=tiny&n=1&snapshot=99", 400, "has no snapshot of step 99"},
      {"/api/sample.png?run=tiny&n=1&snapshot=x", 400, "'snapshot' must be a whole number"},
      {"/api/sample.png?run=tiny&n=1&truncation=3", 400, "truncation must be a number in [0, 2]"},
      {"/api/sample.png?run=tiny&n=1&truncation=0.5x", 400, "truncation must be a number in [0, 2]"},
      {"/api/schema?run=nope", 400, "run 'nope' has no"},
      {"/api/schema", 400, "missing parameter 'run'"},
      {"/no/such/page", 404, "no such page"},
  };
  for (const Case& c : cases) {
    auto r = Get(c.path);
    ASSERT_TRUE(r) << c.path;
    EXPECT_EQ(r->status, c.status) << c.path;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << c.path << ": " << r->body;
    EXPECT_NE(j.value("error", std::string()).find(c.message), std::string::npos) << c.path << ": " << r->body;
  }
}

TEST(ServerStartTest, RefusesAMissingWorkspaceRunOrATakenPort) {
  std::string root = (fs::temp_directory_path() / ("moeforge_server_start_" + std::to_string(getpid()))).string();
  fs::remove_all(root);
  server::ServeOptions o;
  o.port = 0;
  {
    server::SampleServer s(Workspace(root), o);
    Status st = s.Start();
    EXPECT_EQ(st.code(), Status::Code::kNotFound) << st.ToString();
  }
  ASSERT_TRUE(trainer::MakeSyntheticFaceWorkspace(root, 1).ok());
  {
    server::ServeOptions bad = o;
    bad.run = "nope";
    server::SampleServer s(Workspace(root), bad);
    Status st = s.Start();
    EXPECT_EQ(st.code(), Status::Code::kNotFound) << st.ToString();
    EXPECT_NE(st.message().find("--run"), std::string::npos) << st.ToString();
  }
  {
    server::SampleServer first(Workspace(root), o);
    ASSERT_TRUE(first.Start().ok());
    server::ServeOptions same = o;
    same.port = first.port();
    server::SampleServer second(Workspace(root), same);
    EXPECT_EQ(second.Start().code(), Status::Code::kIoError);
    // A workspace without runs still serves a page that says how to make one.
    httplib::Client c("127.0.0.1", first.port());
    auto r = c.Get("/");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_NE(r->body.find("no runs yet"), std::string::npos);
  }
  fs::remove_all(root);
}

// The real binary: first line names the address, SIGTERM stops it with a summary.
TEST(ServeBinaryTest, ListensThenStopsOnSigterm) {
  const char* b = std::getenv("MOEFORGE_BIN");
  std::string bin = b != nullptr ? b : std::string(MOEFORGE_BINARY_DIR) + "/cli/moeforge";
  if (!fs::exists(bin)) GTEST_SKIP() << bin << " is not built";
  std::string root = (fs::temp_directory_path() / ("moeforge_serve_bin_" + std::to_string(getpid()))).string();
  fs::remove_all(root);
  ASSERT_TRUE(trainer::MakeSyntheticFaceWorkspace(root, 1).ok());

  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execl(bin.c_str(), bin.c_str(), "serve", "-w", root.c_str(), "--port", "0", "--json", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  FILE* f = fdopen(out[0], "r");
  char line[512] = {0};
  ASSERT_NE(std::fgets(line, sizeof line, f), nullptr);
  std::smatch m;
  std::string first(line);
  ASSERT_TRUE(std::regex_search(first, m, std::regex(R"(^listening on http://127\.0\.0\.1:(\d+)\n$)"))) << first;
  int port = std::stoi(m[1]);
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/api/runs");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "[]");

  kill(pid, SIGTERM);
  std::string rest;
  while (std::fgets(line, sizeof line, f) != nullptr) rest += line;
  std::fclose(f);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  auto summary = nlohmann::json::parse(rest, nullptr, false);
  ASSERT_TRUE(summary.is_object()) << rest;
  EXPECT_EQ(summary["stage"], "serve");
  EXPECT_EQ(summary["done"], 1);
  fs::remove_all(root);
}

}  // namespace
