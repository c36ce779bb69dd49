// The studio end to end in headless Chromium (Debian's `chromium`, scripts/debian-packages.txt),
// driven over the DevTools protocol on a pipe (--remote-debugging-pipe: no websocket, no
// port): against a demo workspace it opens each page, filters the dataset, clicks a tag,
// opens a face, toggles tags and generates, checking the DOM after each step against the
// API, decoding the generated image, and saving a screenshot of each page. Without a
// chromium binary the test is skipped, visibly; a chromium that is there but fails is a
// failure.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "core/workspace.h"
#include "db/db.h"
#include "studio/demo_workspace.h"
#include "studio/server.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace moeforge;

namespace {

std::string FindChromium() {
  if (const char* env = std::getenv("MOEFORGE_CHROMIUM")) return env;
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

std::string Base64Decode(const std::string& in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (char c : in) {
    int v = val(c);
    if (v < 0) continue;  // '=' padding, line breaks
    buf = (buf << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xFF));
    }
  }
  return out;
}

// One headless Chromium and one page in it, spoken to over the DevTools pipe: JSON
// messages ending in NUL, ours on fd 3, its on fd 4.
class Browser {
 public:
  bool Start(const std::string& exe, const std::string& profile, std::string* error) {
    int to_browser[2], from_browser[2];
    if (pipe(to_browser) != 0 || pipe(from_browser) != 0) return Fail(error, "pipe failed");
    pid_ = fork();
    if (pid_ < 0) return Fail(error, "fork failed");
    if (pid_ == 0) {
      // Child: fd 3 reads our commands, fd 4 writes its answers.
      dup2(to_browser[0], 3);
      dup2(from_browser[1], 4);
      for (int fd : {to_browser[0], to_browser[1], from_browser[0], from_browser[1]})
        if (fd > 4) close(fd);
      int devnull = open("/dev/null", O_WRONLY);
      if (devnull >= 0) {
        dup2(devnull, 1);
        dup2(devnull, 2);
      }
      std::string user_data = "--user-data-dir=" + profile;
      execl(exe.c_str(), exe.c_str(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
            "--remote-debugging-pipe", user_data.c_str(), "about:blank", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(to_browser[0]);
    close(from_browser[1]);
    out_ = to_browser[1];
    in_ = from_browser[0];
    signal(SIGPIPE, SIG_IGN);
    json target = Call("Target.createTarget", {{"url", "about:blank"}}, "", error);
    if (!error->empty()) return false;
    json attached = Call("Target.attachToTarget", {{"targetId", target["targetId"]}, {"flatten", true}}, "", error);
    if (!error->empty()) return false;
    session_ = attached["sessionId"].get<std::string>();
    Page("Page.enable", json::object(), error);
    Page("Emulation.setDeviceMetricsOverride",
         {{"width", 1280}, {"height", 860}, {"deviceScaleFactor", 1}, {"mobile", false}}, error);
    return error->empty();
  }

  ~Browser() {
    if (out_ >= 0) close(out_);
    if (in_ >= 0) close(in_);
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }

  json Page(const std::string& method, const json& params, std::string* error) {
    return Call(method, params, session_, error);
  }

  // Navigates and waits for the load event.
  void Navigate(const std::string& url, std::string* error) {
    Page("Page.navigate", {{"url", url}}, error);
  }

  // Evaluates `js` (an expression; a promise is awaited) and returns its value.
  json Eval(const std::string& js, std::string* error) {
    json r = Page("Runtime.evaluate", {{"expression", js}, {"awaitPromise", true}, {"returnByValue", true}}, error);
    if (!error->empty()) return json();
    if (r.contains("exceptionDetails")) {
      *error = "script threw: " + r["exceptionDetails"].dump().substr(0, 600);
      return json();
    }
    return r["result"].value("value", json());
  }

  // Polls `predicate` (a JS expression) in the page every 50 ms until it is true; false
  // after `seconds`.
  bool WaitFor(const std::string& predicate, double seconds, std::string* error) {
    std::string js = "(async () => { const t0 = Date.now(); while (Date.now() - t0 < " +
                     std::to_string(static_cast<int>(seconds * 1000)) +
                     ") { try { if (" + predicate +
                     ") return true; } catch (e) {} await new Promise(r => setTimeout(r, 50)); } return false; })()";
    json v = Eval(js, error);
    return error->empty() && v.is_boolean() && v.get<bool>();
  }

  std::string Screenshot(std::string* error) {
    json r = Page("Page.captureScreenshot", {{"format", "png"}, {"captureBeyondViewport", false}}, error);
    if (!error->empty()) return "";
    return Base64Decode(r.value("data", std::string()));
  }

 private:
  static bool Fail(std::string* error, const std::string& what) {
    *error = what;
    return false;
  }

  json Call(const std::string& method, const json& params, const std::string& session, std::string* error) {
    if (!error->empty()) return json();
    json msg = {{"id", ++next_id_}, {"method", method}, {"params", params}};
    if (!session.empty()) msg["sessionId"] = session;
    std::string text = msg.dump();
    text.push_back('\0');
    for (size_t sent = 0; sent < text.size();) {
      ssize_t n = write(out_, text.data() + sent, text.size() - sent);
      if (n <= 0) return Fail(error, "chromium closed its DevTools pipe (did it start?)"), json();
      sent += static_cast<size_t>(n);
    }
    const int id = next_id_;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    while (true) {
      // Complete messages already read.
      size_t nul;
      while ((nul = buffer_.find('\0')) != std::string::npos) {
        json m = json::parse(buffer_.substr(0, nul), nullptr, false);
        buffer_.erase(0, nul + 1);
        if (!m.is_object() || !m.contains("id") || m["id"] != id) continue;  // events, other answers
        if (m.contains("error")) return Fail(error, method + ": " + m["error"].dump()), json();
        return m.value("result", json::object());
      }
      int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
      if (left <= 0) return Fail(error, method + ": no answer from chromium in 90 s"), json();
      pollfd p{in_, POLLIN, 0};
      if (poll(&p, 1, left) <= 0) continue;
      char buf[65536];
      ssize_t n = read(in_, buf, sizeof buf);
      if (n <= 0) return Fail(error, method + ": chromium exited"), json();
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

  pid_t pid_ = -1;
  int out_ = -1, in_ = -1;
  int next_id_ = 0;
  std::string session_;
  std::string buffer_;
};

class StudioBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    chromium_ = FindChromium();
    if (chromium_.empty())
      GTEST_SKIP() << "SKIPPED, NOT PASSED: no chromium binary (install Debian's `chromium`, "
                      "scripts/debian-packages.txt, or set MOEFORGE_CHROMIUM)";
    root_ = (fs::temp_directory_path() / ("moeforge_studio_browser_" + std::to_string(getpid()))).string();
    fs::remove_all(root_);
    studio::DemoWorkspaceOptions d;
    d.faces = 48;
    ASSERT_TRUE(studio::MakeDemoWorkspace(root_ + "/ws", d).ok());
    studio::StudioOptions so;
    so.port = 0;
    so.sample_threads = 1;
    studio_ = std::make_unique<studio::Studio>(Workspace(root_ + "/ws"), so);
    ASSERT_TRUE(studio_->Start().ok());
    const char* shots = std::getenv("MOEFORGE_STUDIO_SCREENSHOTS");
    shots_ = shots != nullptr ? shots : std::string(MOEFORGE_BINARY_DIR) + "/studio/screenshots";
    fs::create_directories(shots_);
  }
  void TearDown() override {
    studio_.reset();
    if (!root_.empty()) fs::remove_all(root_);
  }

  json Api(const std::string& path) {
    httplib::Client c("127.0.0.1", studio_->port());
    auto r = c.Get(path.c_str());
    EXPECT_TRUE(r && r->status == 200) << path;
    return r ? json::parse(r->body, nullptr, false) : json();
  }
  void Shot(Browser& b, const std::string& name) {
    std::string err;
    std::string png = b.Screenshot(&err);
    ASSERT_TRUE(err.empty()) << err;
    cv::Mat img = cv::imdecode(std::vector<uchar>(png.begin(), png.end()), cv::IMREAD_COLOR);
    ASSERT_FALSE(img.empty()) << name << ": the screenshot does not decode";
    EXPECT_EQ(img.cols, 1280) << name;
    std::ofstream(shots_ + "/" + name, std::ios::binary) << png;
  }

  std::string chromium_, root_, shots_;
  std::unique_ptr<studio::Studio> studio_;
};

#define STEP(what) SCOPED_TRACE(what)
#define OK_OR_FAIL(err) ASSERT_TRUE((err).empty()) << (err)

TEST_F(StudioBrowserTest, EachPageWorksInABrowser) {
  Browser b;
  std::string err;
  ASSERT_TRUE(b.Start(chromium_, root_ + "/profile", &err)) << "chromium is installed but did not start: " << err;
  const std::string base = studio_->base_url();

  {
    STEP("dataset: the first page of faces, the views and the histogram");
    b.Navigate(base + "/", &err);
    OK_OR_FAIL(err);
    ASSERT_TRUE(b.WaitFor("document.querySelectorAll('#grid .face img').length == 48 && "
                          "[...document.querySelectorAll('#grid .face img')].every(i => i.complete && i.naturalWidth == 48) && "
                          "document.querySelectorAll('#views li').length == 3 && "
                          "document.querySelectorAll('#histogram li[data-tag]').length == 34",
                          20, &err))
        << err;
    json views = b.Eval("[...document.querySelectorAll('#views li')].map(li => li.textContent)", &err);
    OK_OR_FAIL(err);
    EXPECT_EQ(views.size(), 3u) << views.dump();
    Shot(b, "dataset.png");
  }
  {
    STEP("dataset: a filter in the language");
    const size_t want = Api("/api/histogram?filter=smile")["total"].get<size_t>();
    ASSERT_GT(want, 0u);
    ASSERT_LT(want, 48u);
    b.Eval("document.body.dataset.loaded = ''; document.getElementById('filter').value = 'smile'; "
           "document.getElementById('apply').click(); true",
           &err);
    OK_OR_FAIL(err);
    ASSERT_TRUE(b.WaitFor("document.body.dataset.loaded && document.querySelectorAll('#grid .face').length == " +
                              std::to_string(want),
                          20, &err))
        << err;
    json every = b.Eval("[...document.querySelectorAll('#grid .face')].every(f => f.querySelector('.chip[data-tag=smile]'))",
                        &err);
    EXPECT_EQ(every, true);
    json total = b.Eval("document.getElementById('total').textContent", &err);
    EXPECT_NE(total.get<std::string>().find(std::to_string(want) + " faces"), std::string::npos) << total;
    EXPECT_NE(b.Eval("location.search", &err).get<std::string>().find("filter=smile"), std::string::npos);
  }
  {
    STEP("dataset: a click on a tag of the histogram narrows the filter");
    const size_t want = Api("/api/histogram?filter=" + httplib::detail::encode_query_param("(smile) and blonde_hair"))["total"]
                            .get<size_t>();
    b.Eval("document.body.dataset.loaded = ''; document.querySelector('#histogram li[data-tag=blonde_hair]').click(); true",
           &err);
    OK_OR_FAIL(err);
    ASSERT_TRUE(b.WaitFor("document.body.dataset.loaded && document.getElementById('filter').value == '(smile) and blonde_hair'"
                          " && document.querySelectorAll('#grid .face').length == " + std::to_string(want),
                          20, &err))
        << err;
    Shot(b, "dataset-filtered.png");
  }
  {
    STEP("dataset: a face opens its source illustration with boxes and source tags");
    b.Eval("document.body.dataset.loaded = ''; document.getElementById('filter').value = 'faces_in_image >= 2'; "
           "document.getElementById('apply').click(); true",
           &err);
    ASSERT_TRUE(b.WaitFor("document.body.dataset.loaded && document.querySelectorAll('#grid .face').length > 0", 20, &err))
        << err;
    json id = b.Eval("(() => { const f = document.querySelector('#grid .face'); f.click(); return f.dataset.id; })()", &err);
    OK_OR_FAIL(err);
    ASSERT_TRUE(b.WaitFor("document.getElementById('detail').classList.contains('open') && "
                          "document.getElementById('srcimg') && document.getElementById('srcimg').complete && "
                          "document.getElementById('srcimg').naturalWidth == 256",
                          20, &err))
        << err;
    json face = Api("/api/face/" + id.get<std::string>());
    std::string src_tags = b.Eval("document.querySelector('.source-tags').textContent", &err).get<std::string>();
    EXPECT_EQ(src_tags, face["posts"][0]["source_tags"].get<std::string>());
    EXPECT_NE(src_tags.find("girls"), std::string::npos) << src_tags;
    Shot(b, "face.png");
  }
  {
    STEP("runs: the run, its curves, its sample grids and eval");
    b.Navigate(base + "/runs", &err);
    OK_OR_FAIL(err);
    ASSERT_TRUE(b.WaitFor("document.body.dataset.loaded && document.querySelector('#runs tr[data-run=tiny]') && "
                          "document.getElementById('chart').dataset.points == '8' && "
                          "document.querySelectorAll('#strip img').length == 2 && "
                          "[...document.querySelectorAll('#strip img')].every(i => i.complete && i.naturalWidth > 0) && "
                          "document.querySelectorAll('#eval td').length > 0",
                          20, &err))
        << err << " "
        << b.Eval("JSON.stringify({loaded: document.body.dataset.loaded, points: document.getElementById('chart')"
                  ".dataset.points, imgs: [...document.querySelectorAll('#strip img')].map(i => [i.complete, "
                  "i.naturalWidth]), eval: document.querySelectorAll('#eval td').length, error: "
                  "document.getElementById('error').textContent})",
                  &err);
    EXPECT_EQ(b.Eval("document.querySelector('#runs tr[data-run=tiny] td:nth-child(2)').textContent", &err), "done");
    // The canvas has been drawn on: some pixel is not blank.
    json inked = b.Eval("(() => { const c = document.getElementById('chart'); const d = c.getContext('2d')"
                        ".getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) "
                        "if (d[i] > 0) n++; return n; })()",
                        &err);
    EXPECT_GT(inked.get<int>(), 1000);
    // Toggle a key: one more series.
    b.Eval("document.querySelector('#keys input[data-key=gp]').click(); true", &err);
    EXPECT_EQ(b.Eval("document.getElementById('chart').dataset.series", &err), "3");
    Shot(b, "runs.png");
  }
  {
    STEP("runs: a run that trains is followed live");
    // Played by the test: the run's row says running and two more steps' metrics arrive.
    auto w = db::OpenWorkspace(Workspace(root_ + "/ws"));
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Exec("UPDATE runs SET state = 'running' WHERE name = 'tiny'").ok());
    b.Navigate(base + "/runs", &err);
    OK_OR_FAIL(err);
    ASSERT_TRUE(b.WaitFor("document.getElementById('chart').dataset.points == '8' && "
                          "document.getElementById('live').textContent.includes('live')",
                          20, &err))
        << err;
    ASSERT_TRUE((*w)->Exec("INSERT INTO metrics(run_id, step, key, value) SELECT id, 5, 'd_loss', 1.5 FROM runs; "
                           "INSERT INTO metrics(run_id, step, key, value) SELECT id, 5, 'g_loss', 2.5 FROM runs; "
                           "UPDATE runs SET step = 5")
                    .ok());
    EXPECT_TRUE(b.WaitFor("document.getElementById('chart').dataset.points == '10' && "
                          "document.querySelector('#runs tr[data-run=tiny] td:nth-child(3)').textContent.startsWith('5')",
                          20, &err))
        << err;
    ASSERT_TRUE((*w)->Exec("UPDATE runs SET state = 'done'").ok());
    EXPECT_TRUE(b.WaitFor("document.getElementById('live').textContent == ''", 20, &err)) << err;
  }
  {
    STEP("generate: toggle tags, a grid, generate, the image decodes");
    b.Navigate(base + "/generate", &err);
    OK_OR_FAIL(err);
    ASSERT_TRUE(b.WaitFor("document.body.dataset.loaded && document.querySelectorAll('#groups input[data-tag]').length == 34",
                          20, &err))
        << err;
    b.Eval("document.querySelector('#groups input[data-tag=blonde_hair]').click(); "
           "document.querySelector('#groups input[data-tag=smile]').click(); "
           "document.querySelector('#groups input[data-tag=smile]').click(); "
           "document.querySelector('#groups input[data-tag=hat]').click(); "
           "document.getElementById('grid').checked = true; document.getElementById('n').value = '4'; "
           "document.getElementById('generate').click(); true",
           &err);
    OK_OR_FAIL(err);
    ASSERT_TRUE(b.WaitFor("document.body.dataset.generated == '1' && document.getElementById('out').naturalWidth > 0", 60,
                          &err))
        << err << " " << b.Eval("document.getElementById('error').textContent", &err);
    std::string info = b.Eval("document.getElementById('info').textContent", &err);
    EXPECT_NE(info.find("tags: blonde_hair hat"), std::string::npos) << info;  // smile toggled on and off again
    // The bytes the page shows and offers for download, decoded here.
    json b64 = b.Eval("(async () => { const r = await fetch(document.getElementById('download').href); "
                      "const a = new Uint8Array(await r.arrayBuffer()); let s = ''; "
                      "for (const x of a) s += String.fromCharCode(x); return btoa(s); })()",
                      &err);
    OK_OR_FAIL(err);
    std::string png = Base64Decode(b64.get<std::string>());
    cv::Mat img = cv::imdecode(std::vector<uchar>(png.begin(), png.end()), cv::IMREAD_COLOR);
    ASSERT_FALSE(img.empty()) << "the generated image does not decode";
    EXPECT_EQ(img.cols, 2 * (32 + 2) + 2);
    EXPECT_EQ(img.rows, 2 * (32 + 2) + 2);
    std::string name = b.Eval("document.getElementById('download').download", &err);
    EXPECT_EQ(name.rfind("moeforge-tiny-", 0), 0u) << name;
    // Keep the noise, change a tag: a second image with the same seed.
    std::string seed = b.Eval("document.getElementById('seed').value", &err);
    b.Eval("document.getElementById('keep').checked = true; "
           "document.querySelector('#groups input[data-tag=black_hair]').click(); "
           "document.getElementById('generate').click(); true",
           &err);
    ASSERT_TRUE(b.WaitFor("document.body.dataset.generated == '2'", 60, &err)) << err;
    EXPECT_EQ(b.Eval("document.getElementById('seed').value", &err), seed);
    EXPECT_EQ(b.Eval("document.getElementById('error').textContent", &err), "");
    Shot(b, "generate.png");
  }
}

}  // namespace
