// moeforge-studio-bench: what `moeforge serve` costs on loopback, on a synthetic workspace
// made through the db/ API (studio/demo_workspace.h; no crawl): time to first byte of each
// page, one generation at 64 px with the report's generator, dataset pages of 100 faces,
// and a load test (clients paging the dataset and clients generating at once, for a fixed
// time) with p50/p99 per route and every error counted. Prints figures; asserts nothing
// about time. Exit status 1 when any request of the load test failed.
//
//   moeforge-studio-bench [--faces 50000] [--seconds 30] [--pagers 16] [--generators 4]
//                         [--workspace DIR (reused when it exists)] [--repeat 20] [--json]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "core/workspace.h"
#include "studio/demo_workspace.h"
#include "studio/server.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
using namespace moeforge;

namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string LoadAvg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

json Summary(const std::vector<double>& ms) {
  return {{"n", ms.size()},
          {"p50_ms", Quantile(ms, 0.5)},
          {"p99_ms", Quantile(ms, 0.99)},
          {"max_ms", ms.empty() ? 0 : *std::max_element(ms.begin(), ms.end())}};
}

// Milliseconds from sending a GET to the first byte of its answer, on a fresh connection;
// the whole answer is read before closing. -1 on failure.
double Ttfb(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  auto t0 = Clock::now();
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return -1;
  }
  char buf[65536];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  double ms = Ms(Clock::now() - t0);
  bool ok = n > 12 && std::string(buf, 12) == "HTTP/1.1 200";
  while (n > 0) n = recv(fd, buf, sizeof buf, 0);
  close(fd);
  return ok ? ms : -1;
}

// Latencies of one GET repeated `n` times on a keep-alive client (the body read whole).
std::vector<double> Repeat(httplib::Client& c, const std::string& path, int n, int* errors) {
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    auto r = c.Get(path.c_str());
    double t = Ms(Clock::now() - t0);
    if (!r || r->status != 200) {
      ++*errors;
      continue;
    }
    ms.push_back(t);
  }
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"moeforge serve on loopback: page TTFB, generation latency, dataset pages, a load test"};
  int faces = 50000, seconds = 30, pagers = 16, generators = 4, repeat = 20;
  std::string dir;
  bool as_json = false;
  app.add_option("--faces", faces, "Faces in the synthetic workspace")->capture_default_str();
  app.add_option("--seconds", seconds, "Load test duration")->capture_default_str();
  app.add_option("--pagers", pagers, "Load test clients paging the dataset")->capture_default_str();
  app.add_option("--generators", generators, "Load test clients generating at 64 px")->capture_default_str();
  app.add_option("--repeat", repeat, "Repetitions of each single measurement")->capture_default_str();
  app.add_option("--workspace", dir, "Workspace folder (made when missing, reused when present)");
  app.add_flag("--json", as_json, "One JSON object instead of text");
  CLI11_PARSE(app, argc, argv);
  const bool own_dir = dir.empty();
  if (own_dir) dir = (fs::temp_directory_path() / ("mf_studio_bench_" + std::to_string(getpid()))).string();

  json out = {{"faces", faces}, {"loadavg_start", LoadAvg()}, {"cores", std::thread::hardware_concurrency()}};
  if (!fs::exists(dir + "/moeforge.db")) {
    studio::DemoWorkspaceOptions d;
    d.faces = faces;
    d.distinct_crops = std::min(faces, 256);
    d.resolution = 64;
    d.full_size_generator = true;
    d.train_faces = 256;
    d.train_steps = 2;
    auto t0 = Clock::now();
    Status s = studio::MakeDemoWorkspace(dir, d);
    if (!s.ok()) {
      std::fprintf(stderr, "studio-bench: %s\n", s.ToString().c_str());
      return 1;
    }
    out["workspace_seconds"] = Ms(Clock::now() - t0) / 1000;
  }
  studio::StudioOptions so;
  so.port = 0;
  so.http_threads = pagers + generators + 4;
  so.max_queued = generators;  // every generator client may wait: a 503 would be an error here
  studio::Studio srv(Workspace(dir), so);
  if (Status s = srv.Start(); !s.ok()) {
    std::fprintf(stderr, "studio-bench: %s\n", s.ToString().c_str());
    return 1;
  }
  const int port = srv.port();
  int errors = 0;

  // Time to first byte of each page (fresh connections).
  json ttfb = json::object();
  for (const char* page : {"/", "/runs", "/generate"}) {
    std::vector<double> ms;
    for (int i = 0; i < repeat; ++i) {
      double t = Ttfb(port, page);
      if (t < 0) ++errors; else ms.push_back(t);
    }
    ttfb[page] = Summary(ms);
  }
  out["page_ttfb"] = ttfb;

  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120, 0);
  // One generation at 64 px: the first (reads the checkpoint) and then warm.
  {
    auto t0 = Clock::now();
    auto r = c.Get("/api/sample.png?run=tiny&n=1&seed=1");
    double first = Ms(Clock::now() - t0);
    if (!r || r->status != 200) ++errors;
    out["generate_64px"] = {{"first_ms_with_load", first},
                            {"warm", Summary(Repeat(c, "/api/sample.png?run=tiny&n=1&seed=2", repeat, &errors))},
                            {"warm_grid16", Summary(Repeat(c, "/api/sample.png?run=tiny&n=16&seed=2", 5, &errors))}};
  }
  // Dataset pages of 100 faces.
  {
    // A deep cursor: 200 pages in.
    std::string after;
    for (int p = 0; p < 200 && faces > 20000; ++p) {
      auto r = c.Get(("/api/faces?limit=100&after=" + httplib::detail::encode_query_param(after)).c_str());
      if (!r || r->status != 200) break;
      json j = json::parse(r->body);
      if (j["next"].is_null()) break;
      after = j["next"];
    }
    json pages = json::object();
    const std::pair<const char*, std::string> cases[] = {
        {"first page, face_id", "/api/faces?limit=100"},
        {"page 201, face_id", "/api/faces?limit=100&after=" + httplib::detail::encode_query_param(after)},
        {"filter smile", "/api/faces?limit=100&filter=smile"},
        {"filter hair_color = blonde and face_size >= 56",
         "/api/faces?limit=100&filter=" + httplib::detail::encode_query_param("hair_color = blonde and face_size >= 56")},
        {"view smiling", "/api/faces?limit=100&view=smiling"},
        {"sort score desc", "/api/faces?limit=100&sort=score&desc=1"},
        {"sort tag:smile desc", "/api/faces?limit=100&sort=tag:smile&desc=1"},
        {"histogram, all faces", "/api/histogram"},
        {"histogram, filter smile", "/api/histogram?filter=smile"},
        {"views with counts", "/api/views"},
    };
    for (const auto& [name, path] : cases) {
      if (after.empty() && std::string(name).rfind("page 201", 0) == 0) continue;  // fewer than 200 pages
      // The first request of each is cold: histograms and view counts are then kept until
      // the database changes, so the repeats measure the cache for those two.
      std::vector<double> ms = Repeat(c, path, std::max(3, repeat / 2), &errors);
      json sum = Summary(ms);
      sum["first_ms"] = ms.empty() ? 0.0 : ms.front();
      pages[name] = sum;
    }
    out["dataset_100"] = pages;
  }
  out["errors_before_load"] = errors;

  // The load test.
  std::mutex mu;
  std::map<std::string, std::vector<double>> by_route;
  std::map<std::string, int> failures;
  std::atomic<bool> stop{false};
  auto record = [&](const std::string& route, double ms, bool ok, const std::string& why) {
    std::lock_guard<std::mutex> lock(mu);
    if (ok) by_route[route].push_back(ms); else ++failures[route + " " + why];
  };
  auto timed_get = [&](httplib::Client& cl, const std::string& route, const std::string& path) -> httplib::Result {
    auto t0 = Clock::now();
    auto r = cl.Get(path.c_str());
    double ms = Ms(Clock::now() - t0);
    record(route, ms, r && r->status == 200, r ? std::to_string(r->status) : httplib::to_string(r.error()));
    return r;
  };
  const std::string filters[] = {"", "smile", "hair_color = blonde", "face_size >= 56", "not hat and eye_color = blue"};
  const std::string sorts[] = {"face_id", "face_id&desc=1", "score&desc=1"};
  std::vector<std::thread> threads;
  for (int i = 0; i < pagers; ++i)
    threads.emplace_back([&, i] {
      httplib::Client cl("127.0.0.1", port);
      cl.set_read_timeout(120, 0);
      std::mt19937 rng(static_cast<unsigned>(i));
      std::string after, filter = filters[i % 5], sort = sorts[i % 3];
      int pages = 0;
      while (!stop) {
        auto r = timed_get(cl, "GET /api/faces (100)",
                           "/api/faces?limit=100&filter=" + httplib::detail::encode_query_param(filter) +
                               "&sort=" + sort + "&after=" + httplib::detail::encode_query_param(after));
        if (!r || r->status != 200) continue;
        json j = json::parse(r->body, nullptr, false);
        const auto& list = j["faces"];
        for (int k = 0; k < 4 && !list.empty(); ++k)
          timed_get(cl, "GET /files/crop/ID", list[rng() % list.size()]["crop"].get<std::string>());
        after = j["next"].is_null() ? "" : j["next"].get<std::string>();
        if (++pages % 10 == 0)
          timed_get(cl, "GET /api/histogram", "/api/histogram?filter=" + httplib::detail::encode_query_param(filter));
        if (after.empty()) {
          filter = filters[rng() % 5];
          sort = sorts[rng() % 3];
        }
      }
    });
  for (int i = 0; i < generators; ++i)
    threads.emplace_back([&, i] {
      httplib::Client cl("127.0.0.1", port);
      cl.set_read_timeout(120, 0);
      std::mt19937 rng(static_cast<unsigned>(100 + i));
      const char* tags[] = {"blonde_hair", "pink_hair+smile", "black_hair+blue_eyes", ""};
      while (!stop)
        timed_get(cl, "GET /api/sample.png (64 px, n=1)",
                  "/api/sample.png?run=tiny&n=1&seed=" + std::to_string(rng()) + "&tags=" + tags[rng() % 4]);
    });
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double wall = Ms(Clock::now() - t0) / 1000;
  json load = {{"seconds", wall}, {"pagers", pagers}, {"generators", generators}, {"routes", json::object()}};
  int load_errors = 0;
  for (const auto& [route, ms] : by_route) {
    json s = Summary(ms);
    s["per_s"] = static_cast<double>(ms.size()) / wall;
    load["routes"][route] = s;
  }
  for (const auto& [what, n] : failures) load_errors += n;
  load["errors"] = failures;
  out["load"] = load;
  out["loadavg_end"] = LoadAvg();
  out["model_loads"] = srv.model_loads();
  srv.Stop();
  if (own_dir) fs::remove_all(dir);

  if (as_json) {
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("studio bench: %d faces, %u cores, load average %s at start, %s at the end\n", faces,
                std::thread::hardware_concurrency(), out["loadavg_start"].get<std::string>().c_str(),
                out["loadavg_end"].get<std::string>().c_str());
    for (auto& [page, s] : out["page_ttfb"].items())
      std::printf("  TTFB %-10s p50 %7.2f ms  p99 %7.2f ms  (n=%d)\n", page.c_str(), s["p50_ms"].get<double>(),
                  s["p99_ms"].get<double>(), s["n"].get<int>());
    const auto& g = out["generate_64px"];
    std::printf("  generate 64 px n=1: first %.1f ms (with checkpoint load), warm p50 %.1f ms p99 %.1f ms; "
                "n=16 grid p50 %.1f ms\n",
                g["first_ms_with_load"].get<double>(), g["warm"]["p50_ms"].get<double>(),
                g["warm"]["p99_ms"].get<double>(), g["warm_grid16"]["p50_ms"].get<double>());
    for (auto& [name, s] : out["dataset_100"].items())
      std::printf("  dataset %-48s first %8.2f ms  then p50 %8.2f ms  p99 %8.2f ms\n", name.c_str(),
                  s["first_ms"].get<double>(), s["p50_ms"].get<double>(), s["p99_ms"].get<double>());
    std::printf("  load test %.1f s, %d pagers + %d generators:\n", wall, pagers, generators);
    for (auto& [route, s] : out["load"]["routes"].items())
      std::printf("    %-36s n %6d (%6.1f/s)  p50 %8.2f ms  p99 %8.2f ms  max %8.2f ms\n", route.c_str(),
                  s["n"].get<int>(), s["per_s"].get<double>(), s["p50_ms"].get<double>(), s["p99_ms"].get<double>(),
                  s["max_ms"].get<double>());
    std::printf("  errors: %d before the load test, %d during it%s\n", errors, load_errors,
                failures.empty() ? "" : (" " + json(failures).dump()).c_str());
  }
  return errors + load_errors == 0 ? 0 : 1;
}
