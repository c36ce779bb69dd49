// moeforge-server-bench: how fast the demo booru renders and serves, so a crawl benchmark
// can tell whether the server is its bottleneck. Starts the server in-process, renders
// every post (timed), then C keep-alive clients crawl it like a booru crawler would
// (a page of /posts.json, then that page's originals) for S seconds.
//
//   moeforge-server-bench [POSTS=200] [CLIENTS=4] [SECONDS=5] [SEED=1]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "demo_booru/server.h"

int main(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  auto arg = [&](int i, long dflt) { return argc > i ? std::atol(argv[i]) : dflt; };
  moeforge::demo::DemoBooru::Options o;
  o.posts = static_cast<int>(arg(1, 200));
  int clients = static_cast<int>(arg(2, 4));
  double seconds = static_cast<double>(arg(3, 5));
  o.seed = static_cast<uint64_t>(arg(4, 1));
  o.threads = clients + 2;
  o.prerender = true;
  moeforge::demo::DemoBooru booru(o);
  auto t0 = Clock::now();
  moeforge::Status s = booru.Start();
  if (!s.ok()) {
    std::fprintf(stderr, "server-bench: %s\n", s.ToString().c_str());
    return 1;
  }
  double render_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("rendered %d posts in %.2f s (%.1f posts/s, %u hardware threads)\n", o.posts, render_s,
              o.posts / render_s, std::thread::hardware_concurrency());

  std::atomic<int64_t> api{0}, images{0}, bytes{0}, errors{0};
  auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  int pages = (o.posts + 19) / 20;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client cli("127.0.0.1", booru.port());
      cli.set_keep_alive(true);
      for (int page = 1 + c % pages; Clock::now() < deadline; page = page % pages + 1) {
        auto res = cli.Get(("/posts.json?limit=20&page=" + std::to_string(page)).c_str());
        if (!res || res->status != 200) {
          ++errors;
          continue;
        }
        ++api;
        for (const auto& p : nlohmann::json::parse(res->body)) {
          std::string url = p["file_url"];
          auto img = cli.Get(url.substr(url.find('/', 7)).c_str());
          if (!img || img->status != 200) {
            ++errors;
            continue;
          }
          ++images;
          bytes += static_cast<int64_t>(img->body.size());
          if (Clock::now() >= deadline) break;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  booru.Stop();
  std::printf("%d clients, %.0f s: %.1f pages/s, %.1f images/s, %.1f MB/s, %lld errors\n", clients, seconds,
              api / seconds, images / seconds, bytes / seconds / 1e6, static_cast<long long>(errors.load()));
  return errors == 0 ? 0 : 1;
}
