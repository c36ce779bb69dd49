// Studio tests: a demo workspace (studio/demo_workspace.h: 48 faces over ~30 illustrations,
// two views, a tiny trained run) served on a free port and asked over real HTTP for its
// pages, dataset pages, faces, runs and generations; then the bounds: path traversal,
// oversized requests, unknown ids and malformed filters each get a 4xx and the server goes
// on serving. The last test runs the real `moeforge serve` binary and stops it with SIGTERM.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "core/hash.h"
#include "core/tag_schema.h"
#include "core/workspace.h"
#include "db/dataset.h"
#include "db/db.h"
#include "studio/assets.h"
#include "studio/demo_workspace.h"
#include "studio/server.h"

namespace fs = std::filesystem;
using namespace moeforge;
using nlohmann::json;

namespace {

// Every file under `root` but SQLite's own -wal/-shm, with its size and modification time.
std::map<std::string, std::pair<uintmax_t, fs::file_time_type>> Listing(const std::string& root) {
  std::map<std::string, std::pair<uintmax_t, fs::file_time_type>> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    std::string p = e.path().string();
    if (p.size() > 4 && (p.compare(p.size() - 4, 4, "-wal") == 0 || p.compare(p.size() - 4, 4, "-shm") == 0)) continue;
    out[p] = {e.file_size(), e.last_write_time()};
  }
  return out;
}

cv::Mat Decode(const std::string& body) {
  return cv::imdecode(std::vector<uchar>(body.begin(), body.end()), cv::IMREAD_COLOR);
}

// Sends `request` as is on a fresh connection and returns the response's status code (0
// when none came back).
int RawStatus(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return 0;
  }
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer and close before reading it all
    sent += static_cast<size_t>(n);
  }
  std::string head;
  char buf[4096];
  while (head.find("\r\n") == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    head.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  std::smatch m;
  if (!std::regex_search(head, m, std::regex(R"(^HTTP/1\.[01] (\d{3}))"))) return 0;
  return std::stoi(m[1]);
}

class StudioTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string((fs::temp_directory_path() / ("moeforge_studio_test_" + std::to_string(getpid()))).string());
    fs::remove_all(*root_);
    studio::DemoWorkspaceOptions d;
    d.faces = 48;
    Status s = studio::MakeDemoWorkspace(*root_, d);
    ASSERT_TRUE(s.ok()) << s.ToString();
    before_ = new std::map<std::string, std::pair<uintmax_t, fs::file_time_type>>(Listing(*root_));
    studio::StudioOptions so;
    so.port = 0;
    so.sample_threads = 1;
    studio_ = new studio::Studio(Workspace(*root_), so);
    s = studio_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  static void TearDownTestSuite() {
    delete studio_;
    studio_ = nullptr;
    if (root_ != nullptr) fs::remove_all(*root_);
    delete root_;
    delete before_;
    root_ = nullptr;
  }

  static httplib::Result Get(const std::string& path) {
    httplib::Client c("127.0.0.1", studio_->port());
    c.set_read_timeout(60, 0);
    return c.Get(path.c_str());
  }
  static json GetJson(const std::string& path, int want = 200) {
    auto r = Get(path);
    EXPECT_TRUE(r) << path;
    if (!r) return json();
    EXPECT_EQ(r->status, want) << path << ": " << r->body;
    return json::parse(r->body, nullptr, false);
  }
  static std::string Enc(const std::string& s) { return httplib::detail::encode_query_param(s); }
  // Every face id of a selection, page by page (limit `limit`), in the order served.
  static std::vector<int64_t> PageThrough(const std::string& query, int limit) {
    std::vector<int64_t> ids;
    std::string after;
    for (int page = 0; page < 1000; ++page) {
      json j = GetJson("/api/faces?" + query + "&limit=" + std::to_string(limit) + "&after=" + Enc(after));
      if (!j.is_object()) break;
      EXPECT_LE(j["faces"].size(), static_cast<size_t>(limit));
      for (const auto& f : j["faces"]) ids.push_back(f["id"].get<int64_t>());
      if (j["next"].is_null()) break;
      after = j["next"].get<std::string>();
    }
    return ids;
  }
  // The faces whose tag `tag` the demo tagger decided on.
  static std::set<int64_t> WithTag(const std::string& tag) {
    auto d = db::Database::Open(Workspace(*root_).db_path(), db::OpenOptions{false, true});
    EXPECT_TRUE(d.ok());
    std::set<int64_t> out;
    auto st = (*d)->Prepare("SELECT face_id FROM face_tags WHERE tag = ? AND present = 1");
    st->Bind(1, tag);
    while (*st->Step()) out.insert(st->Int(0));
    return out;
  }

  static std::string* root_;
  static std::map<std::string, std::pair<uintmax_t, fs::file_time_type>>* before_;
  static studio::Studio* studio_;
};

std::string* StudioTest::root_ = nullptr;
std::map<std::string, std::pair<uintmax_t, fs::file_time_type>>* StudioTest::before_ = nullptr;
studio::Studio* StudioTest::studio_ = nullptr;

TEST_F(StudioTest, ThreePagesAndTheirScriptsComeFromTheBinary) {
  for (const char* page : {"/", "/runs", "/generate"}) {
    auto r = Get(page);
    ASSERT_TRUE(r) << page;
    EXPECT_EQ(r->status, 200) << page;
    EXPECT_NE(r->get_header_value("Content-Type").find("text/html"), std::string::npos) << page;
    // Self-contained: nothing from another host.
    EXPECT_EQ(r->body.find("http://"), std::string::npos) << page;
    EXPECT_EQ(r->body.find("https://"), std::string::npos) << page;
    EXPECT_EQ(r->body.find("@import"), std::string::npos) << page;
    // Every script and style it names is served.
    std::regex ref(R"((?:src|href)="(/static/[^"]+)\")");
    int refs = 0;
    for (std::sregex_iterator it(r->body.begin(), r->body.end(), ref), end; it != end; ++it, ++refs) {
      auto a = Get((*it)[1].str());
      ASSERT_TRUE(a);
      EXPECT_EQ(a->status, 200) << (*it)[1].str();
      EXPECT_EQ(a->body.find("https://"), std::string::npos) << (*it)[1].str();
    }
    EXPECT_GE(refs, 3) << page;
  }
  // The embedded copies are the files of studio/web/, byte for byte.
  int n = 0;
  for (const auto& e : fs::directory_iterator(std::string(MOEFORGE_SOURCE_DIR) + "/studio/web")) {
    std::ifstream f(e.path(), std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const studio::Asset* a = studio::FindAsset(e.path().filename().string());
    ASSERT_NE(a, nullptr) << e.path();
    EXPECT_EQ(std::string(a->data, a->size), text) << e.path();
    ++n;
  }
  EXPECT_GE(n, 8);
}

TEST_F(StudioTest, KeysetPagesVisitEveryFaceOnceInOrder) {
  json all = GetJson("/api/histogram");
  const int64_t total = all["total"].get<int64_t>();
  ASSERT_EQ(total, 48);
  struct Case {
    std::string query;
    std::string sort_key;  // the face field that must be ordered ("" = id)
    bool desc;
  } cases[] = {{"sort=face_id", "", false},
               {"sort=face_id&desc=1", "", true},
               {"sort=score", "score", false},
               {"sort=score&desc=1", "score", true},
               {"sort=sharpness&desc=1", "sharpness", true},
               {"sort=face_size", "", false},
               {"sort=tag:smile&desc=1", "", true}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.query);
    for (int limit : {1, 7, 48, 200}) {
      std::vector<int64_t> ids = PageThrough(c.query, limit);
      EXPECT_EQ(static_cast<int64_t>(ids.size()), total) << limit;
      EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), ids.size()) << "a face twice, limit " << limit;
    }
    // One page of everything: the key never goes the wrong way.
    json j = GetJson("/api/faces?" + c.query + "&limit=100");
    double last = c.desc ? 1e300 : -1e300;
    for (const auto& f : j["faces"]) {
      double k = f["k"].get<double>();
      if (c.desc) {
        EXPECT_LE(k, last);
      } else {
        EXPECT_GE(k, last);
      }
      last = k;
      if (!c.sort_key.empty() && !f[c.sort_key].is_null()) {
        EXPECT_DOUBLE_EQ(f[c.sort_key].get<double>(), k);
      }
    }
  }
}

TEST_F(StudioTest, FilterViewAndHistogramAgree) {
  const std::set<int64_t> smiling = WithTag("smile");
  ASSERT_FALSE(smiling.empty());
  ASSERT_LT(smiling.size(), 48u);
  std::vector<int64_t> by_filter = PageThrough("filter=smile", 10);
  EXPECT_EQ(std::set<int64_t>(by_filter.begin(), by_filter.end()), smiling);
  std::vector<int64_t> by_view = PageThrough("view=smiling", 10);
  EXPECT_EQ(std::set<int64_t>(by_view.begin(), by_view.end()), smiling);
  // A view narrowed by a filter: smiling and blonde.
  std::set<int64_t> both;
  for (int64_t id : WithTag("blonde_hair"))
    if (smiling.count(id)) both.insert(id);
  std::vector<int64_t> narrowed = PageThrough("view=smiling&filter=" + Enc("hair_color = blonde"), 5);
  EXPECT_EQ(std::set<int64_t>(narrowed.begin(), narrowed.end()), both);
  // Every face on a page carries its tags, and the filter's tag is on.
  json page = GetJson("/api/faces?filter=smile&limit=100");
  for (const auto& f : page["faces"]) {
    bool on = false;
    for (const auto& t : f["tags"])
      if (t["tag"] == "smile") on = t["on"].get<bool>();
    EXPECT_TRUE(on) << f.dump();
  }
  json h = GetJson("/api/histogram?filter=smile");
  EXPECT_EQ(h["total"], smiling.size());
  EXPECT_EQ(h["tags"]["smile"], smiling.size());
  EXPECT_EQ(h["groups"].size(), TagSchema::Default().groups().size());
  json views = GetJson("/api/views");
  ASSERT_EQ(views.size(), 2u);
  for (const auto& v : views)
    if (v["name"] == "smiling") {
      EXPECT_EQ(v["selected"], smiling.size());
    }
}

TEST_F(StudioTest, AFaceOpensItsIllustrationWithEveryBoxAndItsSourceTags) {
  // A face from an image with more than one face.
  json page = GetJson("/api/faces?filter=" + Enc("faces_in_image >= 2") + "&limit=1");
  ASSERT_EQ(page["faces"].size(), 1u);
  int64_t id = page["faces"][0]["id"];
  json f = GetJson("/api/face/" + std::to_string(id));
  EXPECT_EQ(f["id"], id);
  EXPECT_GE(f["boxes"].size(), 2u);
  bool self = false;
  for (const auto& b : f["boxes"]) self = self || b["id"] == id;
  EXPECT_TRUE(self);
  ASSERT_EQ(f["posts"].size(), 1u);
  std::string tags = f["posts"][0]["source_tags"];
  EXPECT_NE(tags.find("girls"), std::string::npos) << tags;
  EXPECT_EQ(f["tags"].size(), 34u);
  auto img = Get(f["image"].get<std::string>());
  ASSERT_TRUE(img);
  ASSERT_EQ(img->status, 200);
  EXPECT_EQ(img->get_header_value("Content-Type"), "image/jpeg");
  cv::Mat m = Decode(img->body);
  EXPECT_EQ(m.cols, f["image_width"].get<int>());
  EXPECT_EQ(m.rows, f["image_height"].get<int>());
  // The face's box is drawn in red over the illustration: its top edge, mid-way along.
  const auto& box = f["box"];
  cv::Vec3b px = m.at<cv::Vec3b>(static_cast<int>(box[1].get<double>()) + 1,
                                  static_cast<int>(box[0].get<double>() + box[2].get<double>() / 2));
  EXPECT_GT(px[2], 180);
  EXPECT_LT(px[0], 110);
  auto crop = Get(f["crop"].get<std::string>());
  ASSERT_TRUE(crop);
  ASSERT_EQ(crop->status, 200);
  EXPECT_EQ(Decode(crop->body).cols, 48);
}

TEST_F(StudioTest, RunsShowMetricsSampleGridsSnapshotsAndEval) {
  json runs = GetJson("/api/runs");
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["name"], "tiny");
  EXPECT_EQ(runs[0]["state"], "done");
  EXPECT_EQ(runs[0]["step"], 4);
  EXPECT_EQ(runs[0]["has_checkpoint"], true);
  json m = GetJson("/api/runs/tiny/metrics");
  for (const char* k : {"d_loss", "g_loss", "gp"}) {
    ASSERT_TRUE(m["metrics"].contains(k)) << m.dump();
    ASSERT_EQ(m["metrics"][k].size(), 4u) << k;
    EXPECT_EQ(m["metrics"][k][0][0], 1);
    EXPECT_EQ(m["metrics"][k][3][0], 4);
  }
  json since = GetJson("/api/runs/tiny/metrics?since=2");
  EXPECT_EQ(since["metrics"]["d_loss"].size(), 2u);
  json thin = GetJson("/api/runs/tiny/metrics?points=2");
  ASSERT_EQ(thin["metrics"]["d_loss"].size(), 2u);
  EXPECT_EQ(thin["metrics"]["d_loss"][1][0], 4) << "the last point is kept";
  json files = GetJson("/api/runs/tiny/files");
  EXPECT_EQ(files["samples"], json({2, 4}));
  EXPECT_EQ(files["snapshots"], json({2, 4}));
  EXPECT_EQ(files["eval"]["run"], "tiny");
  auto grid = Get("/files/sample/tiny/4");
  ASSERT_TRUE(grid);
  ASSERT_EQ(grid->status, 200);
  EXPECT_FALSE(Decode(grid->body).empty());
}

TEST_F(StudioTest, GenerationIsAPngGridThatFollowsSeedTagsAndSnapshot) {
  auto a = Get("/api/sample.png?run=tiny&tags=blonde_hair+blue_eyes&seed=7&n=4");
  ASSERT_TRUE(a);
  ASSERT_EQ(a->status, 200) << a->body;
  EXPECT_EQ(a->get_header_value("Content-Type"), "image/png");
  EXPECT_EQ(a->get_header_value("X-Moeforge-Seed"), "7");
  cv::Mat img = Decode(a->body);
  EXPECT_EQ(img.cols, 2 * (32 + 2) + 2);  // 2 x 2 faces of 32 px, 2 px gaps and borders
  EXPECT_EQ(img.rows, 2 * (32 + 2) + 2);
  auto same = Get("/api/sample.png?run=tiny&tags=blonde_hair%20blue_eyes&seed=7&n=4");
  ASSERT_TRUE(same);
  EXPECT_EQ(same->body, a->body);
  auto other_seed = Get("/api/sample.png?run=tiny&tags=blonde_hair+blue_eyes&seed=8&n=4");
  ASSERT_TRUE(other_seed);
  EXPECT_NE(other_seed->body, a->body);
  auto other_tags = Get("/api/sample.png?run=tiny&tags=black_hair+blue_eyes&seed=7&n=4");
  ASSERT_TRUE(other_tags);
  EXPECT_NE(other_tags->body, a->body);
  auto snap = Get("/api/sample.png?run=tiny&seed=7&n=2&snapshot=2");
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->status, 200) << snap->body;
  auto t0 = Get("/api/sample.png?run=tiny&tags=blonde_hair+blue_eyes&seed=7&n=2&truncation=0");
  ASSERT_TRUE(t0);
  ASSERT_EQ(t0->status, 200) << t0->body;
  cv::Mat grid = Decode(t0->body);
  ASSERT_EQ(grid.cols, 2 * 34 + 2);
  EXPECT_EQ(cv::norm(grid(cv::Rect(2, 2, 32, 32)), grid(cv::Rect(36, 2, 32, 32)), cv::NORM_L1), 0.0);
  auto drawn = Get("/api/sample.png?run=tiny&n=1");
  ASSERT_TRUE(drawn);
  std::string seed = drawn->get_header_value("X-Moeforge-Seed");
  ASSERT_FALSE(seed.empty());
  auto again = Get("/api/sample.png?run=tiny&n=1&seed=" + seed);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->body, drawn->body);
}

// The checkpoint is read once; a new checkpoint file (a run trained on) is read again.
TEST_F(StudioTest, TheGeneratorIsLoadedOnceAndAgainWhenItsCheckpointChanges) {
  const std::string path = "/api/sample.png?run=tiny&seed=3&n=1";
  auto first = Get(path);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200);
  const int64_t loads = studio_->model_loads();
  EXPECT_GE(loads, 1);
  for (int i = 0; i < 3; ++i) {
    auto r = Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, first->body);
  }
  EXPECT_EQ(studio_->model_loads(), loads) << "no reload for an unchanged checkpoint";
  json status = GetJson("/api/status");
  EXPECT_EQ(status["model_loads"], loads);
  // Replace the checkpoint as the trainer does (a new file renamed over the old one).
  const std::string ckpt = *root_ + "/runs/tiny/checkpoint.pt";
  fs::copy_file(ckpt, ckpt + ".new");
  fs::last_write_time(ckpt + ".new", fs::last_write_time(ckpt) + std::chrono::seconds(5));
  fs::rename(ckpt + ".new", ckpt);
  (*before_)[ckpt] = {fs::file_size(ckpt), fs::last_write_time(ckpt)};  // the test's write, not the server's
  auto after = Get(path);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
  EXPECT_EQ(after->body, first->body) << "same weights, same image";
  EXPECT_EQ(studio_->model_loads(), loads + 1);
}

TEST_F(StudioTest, ConcurrentGenerationsGetTheGridsOfOneAtATime) {
  std::string path = "/api/sample.png?run=tiny&tags=pink_hair&seed=3&n=2";
  auto serial = Get(path);
  ASSERT_TRUE(serial);
  ASSERT_EQ(serial->status, 200);
  std::vector<std::string> got(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      auto r = Get(path);
      if (r && r->status == 200) got[static_cast<size_t>(i)] = r->body;
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(got[static_cast<size_t>(i)], serial->body) << i;
}

TEST_F(StudioTest, BadParametersAnswer4xxWithAMessage) {
  struct Case {
    std::string path;
    int status;
    const char* message;
  };
  const Case cases[] = {
      {"/api/faces?filter=" + Enc("smile and ("), 400, "column"},
      {"/api/faces?filter=" + Enc("bogus_name > 1"), 400, "unknown name 'bogus_name'"},
      {"/api/faces?filter=" + Enc("'unterminated"), 400, "column"},
      {"/api/histogram?filter=" + Enc("hair_color = "), 400, "column"},
      {"/api/faces?view=nope", 404, "no view named 'nope'"},
      {"/api/faces?sort=bogus", 400, "unknown sort 'bogus'"},
      {"/api/faces?sort=tag:unicorn", 400, "not a tag"},
      {"/api/faces?after=garbage", 400, "malformed page cursor"},
      {"/api/faces?after=1:x", 400, "malformed page cursor"},
      {"/api/faces?limit=0", 400, "'limit' must lie in 1..200"},
      {"/api/faces?limit=201", 400, "'limit' must lie in 1..200"},
      {"/api/face/999999", 404, "no face 999999"},
      {"/api/face/0", 400, "'id' must lie in"},
      {"/files/crop/999999", 404, "no face 999999"},
      {"/files/image/999999", 404, "no face 999999"},
      {"/files/sample/tiny/999", 404, "missing file"},
      {"/files/sample/nope/2", 404, "no run named 'nope'"},
      {"/api/runs/nope/metrics", 404, "no run named 'nope'"},
      {"/api/runs/tiny/metrics?since=-1", 400, "'since' must be a whole number"},
      {"/api/sample.png?run=tiny&tags=purple_unicorn", 400, "unknown tag 'purple_unicorn'"},
      {"/api/sample.png?run=tiny&tags=blonde_hair+black_hair", 400, "both in the exclusive group hair_color"},
      {"/api/sample.png?run=nope&n=1", 404, "no run named 'nope'"},
      {"/api/sample.png?n=1", 400, "missing parameter 'run'"},
      {"/api/sample.png?run=..&n=1", 400, "bad run name"},
      {"/api/sample.png?run=tiny%2F..&n=1", 400, "bad run name"},
      {"/api/sample.png?run=tiny&n=0", 400, "'n' must lie in 1..64"},
      {"/api/sample.png?run=tiny&n=65", 400, "'n' must lie in 1..64"},
      {"/api/sample.png?run=tiny&seed=-1", 400, "'seed' must be a whole number"},
      {"/api/sample.png?run=tiny&seed=99999999999999999999", 400, "'seed' is out of range"},
      {"/api/sample.png?run=tiny&n=1&snapshot=99", 400, "has no snapshot of step 99"},
      {"/api/sample.png?run=tiny&n=1&truncation=3", 400, "truncation must be a number in [0, 2]"},
      {"/api/schema?run=nope", 404, "no run named 'nope'"},
      {"/api/schema", 400, "missing parameter 'run'"},
      {"/no/such/page", 404, "no such page"},
  };
  for (const Case& c : cases) {
    auto r = Get(c.path);
    ASSERT_TRUE(r) << c.path;
    EXPECT_EQ(r->status, c.status) << c.path << ": " << r->body;
    auto j = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << c.path << ": " << r->body;
    EXPECT_NE(j.value("error", std::string()).find(c.message), std::string::npos) << c.path << ": " << r->body;
  }
  EXPECT_EQ(Get("/api/runs")->status, 200);
}

// Nothing outside the workspace's recorded files can be named: traversal in any spelling
// gets a 4xx and never a file's bytes, and the server keeps serving.
TEST_F(StudioTest, PathTraversalGets4xx) {
  const char* paths[] = {
      "/../../../../etc/passwd",
      "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
      "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
      "/static/../../etc/passwd",
      "/static/..%2f..%2f..%2fetc%2fpasswd",
      "/static/%2e%2e%2fstudio.css",
      "//etc/passwd",
      "/files/crop//etc/passwd",
      "/files/crop/../../moeforge.db",
      "/files/crop/%2e%2e%2fmoeforge.db",
      "/files/image/1/../../../../etc/passwd",
      "/files/sample/..%2F..%2F..%2Fetc/1",
      "/files/sample/%2e%2e/1",
      "/files/sample/tiny/..%2f..%2fmoeforge.db",
      "/api/runs/%2e%2e/files",
      "/api/runs/..%2F..%2Fetc/metrics",
      "/api/runs/%2Fetc%2Fpasswd/files",
      "/files/sample/%2Fetc%2Fpasswd/1",
  };
  for (const char* p : paths) {
    auto r = Get(p);
    ASSERT_TRUE(r) << p;
    EXPECT_GE(r->status, 400) << p;
    EXPECT_LT(r->status, 500) << p;
    EXPECT_EQ(r->body.find("root:"), std::string::npos) << p;
    EXPECT_EQ(r->body.find("SQLite format"), std::string::npos) << p;
  }
  // Raw, without the client's normalisation.
  for (const char* target : {"/../../etc/passwd", "/static/../../../etc/passwd", "/etc/passwd",
                             "http://127.0.0.1/../etc/passwd", "/files/crop/1/../../../../etc/passwd"}) {
    int st = RawStatus(studio_->port(), std::string("GET ") + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_GE(st, 400) << target;
    EXPECT_LT(st, 500) << target;
  }
  EXPECT_EQ(Get("/api/runs")->status, 200);
}

TEST_F(StudioTest, OversizedRequestsGet4xxAndTheServerKeepsServing) {
  const int port = studio_->port();
  auto still_serving = [&](const char* after) {
    auto r = Get("/api/faces?limit=1");
    ASSERT_TRUE(r) << after;
    EXPECT_EQ(r->status, 200) << after;
  };
  // A body past max_body (4 KiB): 413, on any route.
  {
    httplib::Client c("127.0.0.1", port);
    std::string big(1 << 20, 'x');
    auto r = c.Post("/api/faces", big, "application/octet-stream");
    if (r) {
      EXPECT_EQ(r->status, 413);
    }
    EXPECT_EQ(RawStatus(port, "POST /api/faces HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n" +
                                  std::string(8192, 'x')),
              413);
    still_serving("body");
  }
  // One header field past the library's 8 KiB line: 400; headers past ours: 431.
  EXPECT_EQ(RawStatus(port, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n"), 400);
  still_serving("long header line");
  std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 100; ++i) many += "X-H" + std::to_string(i) + ": 1\r\n";
  EXPECT_EQ(RawStatus(port, many + "\r\n"), 431);
  still_serving("many headers");
  std::string heavy = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 4; ++i) heavy += "X-H" + std::to_string(i) + ": " + std::string(5000, 'b') + "\r\n";
  EXPECT_EQ(RawStatus(port, heavy + "\r\n"), 431);
  still_serving("heavy headers");
  // A request target past max_target (4 KiB): 414; past the library's 8 KiB line too.
  EXPECT_EQ(RawStatus(port, "GET /api/faces?filter=" + std::string(5000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n"), 414);
  int huge = RawStatus(port, "GET /api/faces?filter=" + std::string(20000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_GE(huge, 400);
  EXPECT_LT(huge, 500);
  still_serving("long target");
  // A batch past max_n and a page past page_max were 400s above; garbage is 400 too.
  EXPECT_EQ(RawStatus(port, "NONSENSE\r\n\r\n"), 400);
  still_serving("garbage");
}

TEST_F(StudioTest, TheWorkspaceIsNeverWritten) {
  // Every route once (CTest runs each test in its own process), then the database and
  // every file are as MakeDemoWorkspace left them.
  for (const char* path : {"/", "/runs", "/generate", "/static/dataset.js", "/api/views", "/api/faces?filter=smile",
                           "/api/histogram", "/api/face/1", "/files/crop/1", "/files/image/1", "/api/runs",
                           "/api/runs/tiny/metrics", "/api/runs/tiny/files", "/files/sample/tiny/2",
                           "/api/schema?run=tiny", "/api/sample.png?run=tiny&n=4&seed=1", "/api/status"}) {
    auto r = Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path << ": " << r->body.substr(0, 200);
  }
  auto after = Listing(*root_);
  EXPECT_EQ(after.size(), before_->size());
  for (const auto& [path, st] : *before_) {
    auto it = after.find(path);
    ASSERT_NE(it, after.end()) << path << " is gone";
    EXPECT_EQ(it->second.first, st.first) << path;
    EXPECT_TRUE(it->second.second == st.second) << path << " was modified";
  }
  EXPECT_FALSE(fs::exists(Workspace(*root_).tmp_dir()) && !fs::is_empty(Workspace(*root_).tmp_dir()));
}

// Sorting by a column of faces takes candidates from `faces` 1024 at a time: with 1500
// faces a page spans rounds, and a filter few faces pass walks every round.
TEST(StudioSortTest, PagesSortedByAFaceColumnSpanCandidateRounds) {
  std::string root = (fs::temp_directory_path() / ("moeforge_studio_sort_" + std::to_string(getpid()))).string();
  fs::remove_all(root);
  studio::DemoWorkspaceOptions d;
  d.faces = 1500;
  d.distinct_crops = 10;
  d.train = false;
  ASSERT_TRUE(studio::MakeDemoWorkspace(root, d).ok());
  studio::StudioOptions o;
  o.port = 0;
  studio::Studio s(Workspace(root), o);
  ASSERT_TRUE(s.Start().ok());
  httplib::Client c("127.0.0.1", s.port());
  auto db = db::Database::Open(Workspace(root).db_path(), db::OpenOptions{false, true});
  ASSERT_TRUE(db.ok());
  struct Case {
    std::string filter, sort, order_sql;
  } cases[] = {
      {"", "score&desc=1", "SELECT id FROM faces ORDER BY score DESC, id DESC"},
      {"smile", "score", "SELECT face_id FROM face_tags WHERE tag = 'smile' AND present = 1 "
                         "ORDER BY (SELECT score FROM faces WHERE id = face_id), face_id"},
      {"face_id <= 3 or face_id = 1499", "sharpness&desc=1",
       "SELECT id FROM faces WHERE id <= 3 OR id = 1499 ORDER BY sharpness DESC, id DESC"},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.filter + " / " + k.sort);
    std::vector<int64_t> want;
    auto st = (*db)->Prepare(k.order_sql);
    ASSERT_TRUE(st.ok());
    while (*st->Step()) want.push_back(st->Int(0));
    std::vector<int64_t> got;
    std::string after;
    for (int page = 0; page < 100; ++page) {
      auto r = c.Get(("/api/faces?limit=200&sort=" + k.sort + "&filter=" + httplib::detail::encode_query_param(k.filter) +
                      "&after=" + httplib::detail::encode_query_param(after))
                         .c_str());
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 200) << r->body;
      json j = json::parse(r->body);
      for (const auto& f : j["faces"]) got.push_back(f["id"].get<int64_t>());
      if (j["next"].is_null()) break;
      after = j["next"].get<std::string>();
    }
    EXPECT_EQ(got, want);
  }
  fs::remove_all(root);
}

// Histograms and view counts are kept between requests, and not one request longer than
// the database stays the same: another process's commit is seen at once.
TEST(StudioCacheTest, AggregatesFollowCommitsByOtherProcesses) {
  std::string root = (fs::temp_directory_path() / ("moeforge_studio_cache_" + std::to_string(getpid()))).string();
  fs::remove_all(root);
  studio::DemoWorkspaceOptions d;
  d.faces = 30;
  d.train = false;
  ASSERT_TRUE(studio::MakeDemoWorkspace(root, d).ok());
  studio::StudioOptions o;
  o.port = 0;
  studio::Studio s(Workspace(root), o);
  ASSERT_TRUE(s.Start().ok());
  httplib::Client c("127.0.0.1", s.port());
  auto get = [&](const std::string& path) {
    auto r = c.Get(path.c_str());
    EXPECT_TRUE(r && r->status == 200) << path;
    return r ? json::parse(r->body, nullptr, false) : json();
  };
  const int64_t smiling = get("/api/histogram?filter=smile")["total"];
  ASSERT_GT(smiling, 1);
  EXPECT_EQ(get("/api/histogram?filter=smile")["total"], smiling);
  EXPECT_EQ(get("/api/views").size(), 2u);
  auto w = db::OpenWorkspace(Workspace(root));
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Exec("UPDATE face_tags SET present = 0 WHERE tag = 'smile' AND face_id = "
                         "(SELECT min(face_id) FROM face_tags WHERE tag = 'smile' AND present = 1)")
                  .ok());
  ASSERT_TRUE(db::CreateView(**w, {"plain", "not smile", "", ""}).ok());
  // Every connection of the server must see it, whichever answers.
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(get("/api/histogram?filter=smile")["total"], smiling - 1) << i;
    EXPECT_EQ(get("/api/histogram?filter=smile")["tags"]["smile"], smiling - 1) << i;
    EXPECT_EQ(get("/api/views").size(), 3u) << i;
  }
  w->reset();
  fs::remove_all(root);
}

// Paths come from the database, which the stages write; one that would leave the workspace
// (a damaged or hostile database) is refused, not read.
TEST(StudioPathTest, ADatabasePathOutsideTheWorkspaceIsRefused) {
  std::string root = (fs::temp_directory_path() / ("moeforge_studio_paths_" + std::to_string(getpid()))).string();
  fs::remove_all(root);
  studio::DemoWorkspaceOptions d;
  d.faces = 3;
  d.train = false;
  ASSERT_TRUE(studio::MakeDemoWorkspace(root, d).ok());
  {
    auto w = db::OpenWorkspace(Workspace(root));
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Exec("UPDATE faces SET crop_path = '../../../../../../etc/passwd' WHERE id = 1; "
                           "UPDATE faces SET crop_path = '/etc/passwd' WHERE id = 2; "
                           "UPDATE images SET blob_path = 'crops/../../../../../../etc/passwd' WHERE sha256 = "
                           "(SELECT image_sha256 FROM faces WHERE id = 3)")
                    .ok());
  }
  studio::StudioOptions o;
  o.port = 0;
  studio::Studio s(Workspace(root), o);
  ASSERT_TRUE(s.Start().ok());
  httplib::Client c("127.0.0.1", s.port());
  for (const char* path : {"/files/crop/1", "/files/crop/2", "/files/image/3"}) {
    auto r = c.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 400) << path << ": " << r->body;
    EXPECT_NE(r->body.find("outside the workspace"), std::string::npos) << path << ": " << r->body;
    EXPECT_EQ(r->body.find("root:"), std::string::npos) << path;
  }
  auto ok = c.Get("/files/crop/3");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  fs::remove_all(root);
}

// With --max-queued 0 a generation asked for while another runs is refused with 503 at
// once, and the server goes on. A 64-image grid of the report's generator is slow enough
// to be seen running; whether the second request met it running is read from /api/status
// before and after it, never guessed from time.
TEST(StudioQueueTest, AGenerationPastTheQueueGets503) {
  std::string root = (fs::temp_directory_path() / ("moeforge_studio_queue_" + std::to_string(getpid()))).string();
  fs::remove_all(root);
  studio::DemoWorkspaceOptions d;
  d.faces = 8;
  d.resolution = 64;
  d.full_size_generator = true;
  d.train_steps = 2;
  ASSERT_TRUE(studio::MakeDemoWorkspace(root, d).ok());
  studio::StudioOptions o;
  o.port = 0;
  o.max_queued = 0;
  studio::Studio s(Workspace(root), o);
  ASSERT_TRUE(s.Start().ok());
  auto generating = [&] {
    httplib::Client c("127.0.0.1", s.port());
    auto r = c.Get("/api/status");
    return r && r->status == 200 && json::parse(r->body)["generating"].get<bool>();
  };
  bool met_running = false;
  for (int attempt = 0; attempt < 5 && !met_running; ++attempt) {
    std::atomic<bool> done{false};
    std::thread slow([&] {
      httplib::Client c("127.0.0.1", s.port());
      c.set_read_timeout(300, 0);
      auto r = c.Get("/api/sample.png?run=tiny&n=64&seed=1");
      EXPECT_TRUE(r && r->status == 200);
      done = true;
    });
    while (!generating() && !done) std::this_thread::yield();
    httplib::Client c("127.0.0.1", s.port());
    auto r = c.Get("/api/sample.png?run=tiny&n=1&seed=2");
    const bool still = generating();
    ASSERT_TRUE(r);
    if (still) {  // the first ran from before the second came until after it answered
      met_running = true;
      EXPECT_EQ(r->status, 503) << r->body;
      EXPECT_EQ(r->get_header_value("Retry-After"), "1");
      EXPECT_NE(r->body.find("busy"), std::string::npos) << r->body;
    }
    slow.join();
  }
  EXPECT_TRUE(met_running) << "a 64-image grid never outlasted one request";
  httplib::Client c("127.0.0.1", s.port());
  auto after = c.Get("/api/sample.png?run=tiny&n=1&seed=2");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
  fs::remove_all(root);
}

TEST(StudioStartTest, RefusesAMissingWorkspaceRunOrATakenPort) {
  std::string root = (fs::temp_directory_path() / ("moeforge_studio_start_" + std::to_string(getpid()))).string();
  fs::remove_all(root);
  studio::StudioOptions o;
  o.port = 0;
  {
    studio::Studio s(Workspace(root), o);
    EXPECT_EQ(s.Start().code(), Status::Code::kNotFound);
  }
  studio::DemoWorkspaceOptions d;
  d.faces = 3;
  d.train = false;
  ASSERT_TRUE(studio::MakeDemoWorkspace(root, d).ok());
  {
    studio::StudioOptions bad = o;
    bad.run = "nope";
    studio::Studio s(Workspace(root), bad);
    Status st = s.Start();
    EXPECT_EQ(st.code(), Status::Code::kNotFound) << st.ToString();
    EXPECT_NE(st.message().find("--run"), std::string::npos) << st.ToString();
  }
  {
    studio::Studio first(Workspace(root), o);
    ASSERT_TRUE(first.Start().ok());
    studio::StudioOptions same = o;
    same.port = first.port();
    studio::Studio second(Workspace(root), same);
    EXPECT_EQ(second.Start().code(), Status::Code::kIoError);
    httplib::Client c("127.0.0.1", first.port());
    auto r = c.Get("/api/runs");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "[]");
  }
  fs::remove_all(root);
}

// The real binary: the first line names the address; SIGTERM stops it with a summary.
TEST(ServeBinaryTest, ListensThenStopsOnSigterm) {
  const char* b = std::getenv("MOEFORGE_BIN");
  std::string bin = b != nullptr ? b : std::string(MOEFORGE_BINARY_DIR) + "/cli/moeforge";
  if (!fs::exists(bin)) GTEST_SKIP() << bin << " is not built";
  std::string root = (fs::temp_directory_path() / ("moeforge_serve_bin_" + std::to_string(getpid()))).string();
  fs::remove_all(root);
  studio::DemoWorkspaceOptions d;
  d.faces = 2;
  d.train = false;
  ASSERT_TRUE(studio::MakeDemoWorkspace(root, d).ok());
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execl(bin.c_str(), bin.c_str(), "serve", "-w", root.c_str(), "--port", "0", "--max-body", "100", "--json",
          static_cast<char*>(nullptr));
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
  auto r = c.Get("/api/faces?limit=2");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["faces"].size(), 2u);
  // --max-body reached the server.
  EXPECT_EQ(RawStatus(port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n" + std::string(101, 'x')), 413);
  kill(pid, SIGTERM);
  std::string rest;
  while (std::fgets(line, sizeof line, f) != nullptr) rest += line;
  std::fclose(f);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  auto summary = json::parse(rest, nullptr, false);
  ASSERT_TRUE(summary.is_object()) << rest;
  EXPECT_EQ(summary["stage"], "serve");
  EXPECT_EQ(summary["done"], 2);
  fs::remove_all(root);
}

}  // namespace
