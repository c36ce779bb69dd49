// The html source against a small local site (cpp-httplib on loopback): same-host links to
// the depth limit, <img> sources, robots.txt obeyed by default.
#include <gtest/gtest.h>
#include <httplib.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <thread>

#include "crawler/crawler.h"
#include "crawler/test_util.h"

namespace moeforge::crawler {
namespace {

using testing_util::CheckInvariants;
using testing_util::Env;

std::string Png(int w, int h, int shade) {
  cv::Mat m(h, w, CV_8UC3, cv::Scalar(shade, 255 - shade, (shade * 7) % 255));
  cv::circle(m, cv::Point(w / 3, h / 2), w / 5, cv::Scalar(255 - shade, shade, 40), -1);
  cv::rectangle(m, cv::Rect(w / 2, h / 5, w / 3, h / 2), cv::Scalar(30, (shade * 3) % 255, 200), -1);
  std::vector<uchar> buf;
  cv::imencode(".png", m, buf);
  return std::string(buf.begin(), buf.end());
}

TEST(CrawlHtml, FollowsSameHostLinksToDepthAndObeysRobots) {
  httplib::Server srv;
  std::map<std::string, std::string> images = {
      {"/img/a.png", Png(120, 90, 10)},  {"/img/b.png", Png(90, 120, 120)},
      {"/img/c.png", Png(100, 100, 240)}, {"/private/d.png", Png(64, 64, 60)}};
  srv.Get("/robots.txt", [](const httplib::Request&, httplib::Response& r) {
    r.set_content("User-agent: *\nDisallow: /private/\n", "text/plain");
  });
  srv.Get("/", [](const httplib::Request&, httplib::Response& r) {
    r.set_content("<html><body><a href=\"/p2\">next</a> <a href='http://example.invalid/x'>off</a>"
                  "<img src=\"img/a.png\"><IMG alt=x SRC='/private/d.png'></body></html>",
                  "text/html");
  });
  srv.Get("/p2", [](const httplib::Request&, httplib::Response& r) {
    r.set_content("<a href=\"/p3\">deeper</a><img src=\"/img/b.png?v=1&amp;w=2\">", "text/html");
  });
  srv.Get("/p3", [](const httplib::Request&, httplib::Response& r) {
    r.set_content("<img src=\"/img/c.png\">", "text/html");
  });
  srv.Get(R"(/(img|private)/(.*))", [&](const httplib::Request& req, httplib::Response& r) {
    auto it = images.find(req.path);
    if (it == images.end()) {
      r.status = 404;
      return;
    }
    r.set_content(it->second, "image/png");
  });
  int port = srv.bind_to_any_port("127.0.0.1");
  std::thread t([&] { srv.listen_after_bind(); });
  std::string base = "http://127.0.0.1:" + std::to_string(port);

  Env env("html");
  CrawlOptions o;
  o.source = "html";
  o.url = base + "/";
  o.depth = 1;
  o.quiet = true;
  o.timeout_s = 2;
  auto s = Crawl(env.ws, o);
  srv.stop();
  t.join();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  // Depth 1: / and /p2 are read, /p3 (depth 2) is not; off-host links are not followed.
  EXPECT_EQ(env.Q("SELECT count(*) FROM frontier WHERE kind='page' AND state='done'"), 2);
  EXPECT_EQ(env.Q("SELECT count(*) FROM frontier WHERE url LIKE '%example.invalid%'"), 0);
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE state='stored'"), 2) << s->ToLine();
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE remote_id='" + base + "/img/b.png?v=1&w=2' AND state='stored'"), 1);
  EXPECT_EQ(env.Q("SELECT count(*) FROM posts WHERE remote_id LIKE '%/private/d.png' AND state='skipped' AND "
                  "error='robots'"),
            1);
  CheckInvariants(env);
}

}  // namespace
}  // namespace moeforge::crawler
