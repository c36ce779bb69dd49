// moeforge-crawl-bench: images per second crawled from a loopback demo booru (politeness
// limits lifted, as for any loopback host) with everything the crawl stage does: paging,
// posts/tags/frontier rows, fetch, MD5 check, SHA-256, magic-byte sniff, header
// dimensions, decode for the perceptual hash, exact/near dedupe, blob write (unnamed file
// linked in, one syncfs per group of blobs) and batched database commits. In the same run,
// against the same server, the Python reference (bench/crawl_reference.py: thread pool,
// fetch + SHA-256 + write). CPU per image is printed for the whole process, and split into
// the crawl's own threads and the in-process demo booru's.
//
//   moeforge-crawl-bench [--posts 2000] [--concurrency 16] [--rounds 3] [--python /usr/bin/python3]
//
// Profiling only the crawls (not the pre-rendering, which takes far longer):
//   mkfifo ctl ack; perf record -D -1 --control fifo:ctl,ack -g -- \
//     moeforge-crawl-bench --only no-near-dup --perf-control ctl,ack
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/process.h"
#include "core/workspace.h"
#include "crawler/crawler.h"
#include "crawler/near_dup.h"
#include "db/db.h"
#include "demo_booru/server.h"

namespace fs = std::filesystem;
using namespace moeforge;

int main(int argc, char** argv) {
  CLI::App app{"Crawl throughput against the loopback demo booru, vs the Python reference"};
  int posts = 2000, concurrency = 16, threads = 16, rounds = 3;
  std::string python = "/usr/bin/python3";
  std::string reference = (fs::path(MOEFORGE_SOURCE_DIR) / "bench" / "crawl_reference.py").string();
  std::string dir = (fs::temp_directory_path() / ("mf_crawl_bench_" + std::to_string(::getpid()))).string();
  bool skip_python = false;
  std::string only, perf_control;
  app.add_option("--posts", posts, "Posts on the demo booru")->capture_default_str();
  app.add_option("--concurrency", concurrency, "moeforge crawl --concurrency")->capture_default_str();
  app.add_option("--rounds", rounds, "Rounds of (full, no near-dup, python); medians are reported")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "Python reference thread pool size")->capture_default_str();
  app.add_option("--python", python, "Python interpreter for the reference")->capture_default_str();
  app.add_option("--reference", reference, "The reference script")->capture_default_str();
  app.add_option("--dir", dir, "Scratch folder (removed afterwards)")->capture_default_str();
  app.add_flag("--no-python", skip_python, "Only the moeforge crawl");
  app.add_option("--only", only, "Run one moeforge crawl: full or no-near-dup (for profiling)")
      ->check(CLI::IsMember({"full", "no-near-dup"}));
  app.add_option("--perf-control", perf_control,
                 "CTL[,ACK]: the fifos of `perf record -D -1 --control fifo:CTL,ACK`; perf is enabled for each timed "
                 "crawl only");
  CLI11_PARSE(app, argc, argv);
  // perf's control fifos: "enable" before each timed crawl, "disable" after it, each
  // waiting for perf's "ack" when an ack fifo is named.
  int perf_ctl = -1, perf_ack = -1;
  if (!perf_control.empty()) {
    auto comma = perf_control.find(',');
    perf_ctl = ::open(perf_control.substr(0, comma).c_str(), O_WRONLY | O_CLOEXEC);
    if (comma != std::string::npos) perf_ack = ::open(perf_control.substr(comma + 1).c_str(), O_RDONLY | O_CLOEXEC);
    if (perf_ctl < 0) {
      std::fprintf(stderr, "cannot open the perf control fifo %s\n", perf_control.c_str());
      return 1;
    }
  }
  auto perf = [&](const char* cmd) {
    if (perf_ctl < 0) return;
    std::string line = std::string(cmd) + "\n";
    if (::write(perf_ctl, line.data(), line.size()) < 0) return;
    char ack[16];
    if (perf_ack >= 0 && ::read(perf_ack, ack, sizeof ack) < 0) return;
  };

  demo::DemoBooru::Options bo;
  bo.posts = posts;
  bo.seed = 5;
  bo.prerender = true;  // drawing is not what is measured
  bo.threads = 96;  // more than the reference's threads: an idle keep-alive connection holds one
  demo::DemoBooru booru(bo);
  Status s = booru.Start();
  if (!s.ok()) {
    std::fprintf(stderr, "demo booru: %s\n", s.ToString().c_str());
    return 1;
  }
  fs::remove_all(dir);
  // Two moeforge runs per round: the full pipeline, and near-duplicate detection off (no
  // decode: MD5-verified files are not decoded), which is the Python reference's work
  // list. Each run crawls into a fresh workspace. Rounds interleave the three runs and
  // the figures are medians, because a one-second run on a shared 2-core machine is noisy.
  // Nothing is deleted until the end: ext4 skips inodes freed in the last minutes when it
  // allocates new ones, so deleting one run's thousands of files slows the next run's
  // file creation (both sides alike) by up to 2x. For the same reason, leave a few
  // minutes between bench invocations on the same file system.
  // Each timed run starts from a clean page cache (sync(), untimed): otherwise a run's
  // flushes also write back the run before it, and the figures depend on the order.
  int round_no = 0;
  auto run = [&](const std::string& name, int near_dup) -> double {
    ::sync();
    Workspace ws(dir + "/" + name + "-" + std::to_string(round_no));
    if (!ws.CreateDirs().ok() || !db::OpenWorkspace(ws, true).ok()) return -1;
    crawler::CrawlOptions o;
    o.source = "danbooru";
    o.url = booru.base_url();
    o.concurrency = concurrency;
    o.near_dup_threshold = near_dup;
    o.quiet = true;
    perf("enable");
    std::map<int, double> threads0 = ThreadCpuSeconds();
    double cpu0 = CpuSeconds(RUSAGE_SELF);
    auto r = crawler::Crawl(ws, o);
    double cpu = CpuSeconds(RUSAGE_SELF) - cpu0;
    std::map<int, double> threads1 = ThreadCpuSeconds();
    perf("disable");
    // The demo booru's share: the threads alive before and after the crawl, other than
    // this one (the crawl's own threads are made and joined inside Crawl()). TBB's workers
    // count there too: the server renders with them, and OpenCV may lend them to a decode.
    double server = 0;
    for (const auto& [tid, c] : threads1) {
      auto before = threads0.find(tid);
      if (tid != ::getpid() && before != threads0.end()) server += c - before->second;
    }
    if (!r.ok()) {
      std::fprintf(stderr, "crawl: %s\n", r.status().ToString().c_str());
      return -1;
    }
    int64_t handled = r->done + r->skipped + r->failed;
    double rate = handled / r->seconds;
    // CPU: this process, so the in-process demo booru's serving is counted too.
    std::printf("round %d: moeforge crawl (%s): %lld posts (%lld stored, %lld duplicates, %lld failed) in %.2f s = %.0f images/s"
                " (CPU %.2f s incl. the server: %.0f us/image, %.0f%% of 2 cores; the crawl's threads %.0f us/image, "
                "the demo booru %.0f)\n",
                round_no, name.c_str(), static_cast<long long>(handled), static_cast<long long>(r->done),
                static_cast<long long>(r->skipped), static_cast<long long>(r->failed), r->seconds, rate, cpu,
                cpu * 1e6 / static_cast<double>(handled), 100 * cpu / (2 * r->seconds),
                (cpu - server) * 1e6 / static_cast<double>(handled), server * 1e6 / static_cast<double>(handled));
    std::fflush(stdout);
    return rate;
  };
  auto python_run = [&]() -> double {
    ::sync();
    std::string out_dir = dir + "/py-" + std::to_string(round_no);
    std::string cmd = python + " " + reference + " --url " + booru.base_url() + " --out " + out_dir + " --threads " +
                      std::to_string(threads);
    double self0 = CpuSeconds(RUSAGE_SELF), child0 = CpuSeconds(RUSAGE_CHILDREN);
    CommandResult res = RunCommand(cmd);
    double server_cpu = CpuSeconds(RUSAGE_SELF) - self0, python_cpu = CpuSeconds(RUSAGE_CHILDREN) - child0;
    auto j = nlohmann::json::parse(res.output, nullptr, false);
    if (res.status != 0 || j.is_discarded()) {
      std::fprintf(stderr, "python reference failed (%d): %s\n", res.status, res.output.c_str());
      return -1;
    }
    double ref = j["images_per_s"].get<double>();
    double n = static_cast<double>(j["images"].get<int64_t>());
    std::printf("round %d: python reference (%d threads): %.0f images in %.2f s = %.0f images/s (CPU: python %.0f us/image"
                " incl. its start, the demo booru %.0f us/image)\n",
                round_no, threads, n, j["seconds"].get<double>(), ref, python_cpu * 1e6 / n, server_cpu * 1e6 / n);
    std::fflush(stdout);
    return ref;
  };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  std::vector<double> full_rates, like_rates, py_rates;
  for (round_no = 0; round_no < rounds; ++round_no) {
    if (only.empty() || only == "full") {
      full_rates.push_back(run("full", 4));
      if (full_rates.back() < 0) return 1;
    }
    if (only.empty() || only == "no-near-dup") {
      like_rates.push_back(run("no-near-dup", -1));
      if (like_rates.back() < 0) return 1;
    }
    if (only.empty() && !skip_python) {
      py_rates.push_back(python_run());
      if (py_rates.back() < 0) return 1;
    }
  }
  if (!only.empty()) {
    fs::remove_all(dir);
    return 0;
  }
  double ours = median(full_rates), ours_nodecode = median(like_rates);

  // The near-duplicate index at a million images: build and query time.
  {
    crawler::NearDupIndex idx;
    std::mt19937_64 rng(1);
    auto t0 = std::chrono::steady_clock::now();
    std::vector<uint64_t> hs;
    for (int i = 0; i < 1000000; ++i) {
      hs.push_back(rng());
      idx.Add(hs.back(), std::to_string(i));
    }
    auto t1 = std::chrono::steady_clock::now();
    int found = 0;
    for (int q = 0; q < 10000; ++q) {
      uint64_t h = hs[static_cast<size_t>(rng() % hs.size())] ^ (1ull << (q % 64)) ^ (1ull << ((q * 7) % 64));
      found += idx.Find(h, 7).has_value();
    }
    auto t2 = std::chrono::steady_clock::now();
    std::printf("near-dup index: 1M hashes added in %.2f s; 10k queries (threshold 7) in %.3f s = %.1f us/query, %d found\n",
                std::chrono::duration<double>(t1 - t0).count(), std::chrono::duration<double>(t2 - t1).count(),
                std::chrono::duration<double>(t2 - t1).count() * 1e6 / 10000, found);
  }
  nlohmann::json out = {{"posts", posts}, {"moeforge_images_per_s", ours},
                        {"moeforge_no_near_dup_images_per_s", ours_nodecode}};
  out["rounds"] = rounds;
  if (!py_rates.empty()) {
    double ref = median(py_rates);
    std::printf("medians of %d rounds: moeforge full %.0f, no near-dup %.0f, python %.0f images/s\n", rounds, ours,
                ours_nodecode, ref);
    std::printf("ratio: %.2fx full pipeline, %.2fx like for like (no decode)\n", ours / ref, ours_nodecode / ref);
    out["python_images_per_s"] = ref;
    out["ratio_full"] = ours / ref;
    out["ratio_like_for_like"] = ours_nodecode / ref;
  }
  std::printf("%s\n", out.dump().c_str());
  fs::remove_all(dir);
  return 0;
}
