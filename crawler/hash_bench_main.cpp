// moeforge-hash-bench: CPU per image of the crawl's perceptual hash (DHashOfEncoded) on
// demo booru illustrations, PNG and JPEG apart, so a change to the hash's decode paths
// can be measured without a whole crawl. Thread CPU time, best of five passes: a busy
// machine slows the wall clock more than it does this.
//
//   moeforge-hash-bench [--posts 60] [--seed 5]
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "crawler/near_dup.h"
#include "demo_booru/render.h"

using namespace moeforge;

namespace {

double ThreadCpuUs() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

// Best-of-five CPU microseconds per file of hashing `files`.
double HashUs(const std::vector<std::string>& files) {
  double best = 1e30;
  for (int pass = 0; pass < 5; ++pass) {
    double t0 = ThreadCpuUs();
    for (const auto& f : files) {
      if (!crawler::DHashOfEncoded(f).ok()) std::fprintf(stderr, "a demo file did not decode\n");
    }
    best = std::min(best, (ThreadCpuUs() - t0) / static_cast<double>(files.size()));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CPU per image of the crawl's perceptual hash on demo illustrations"};
  int posts = 60;
  uint64_t seed = 5;
  app.add_option("--posts", posts, "Demo posts to render")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "Demo booru seed (the crawl bench uses 5)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::vector<std::string> png, jpg;
  for (int id = 1; id <= posts; ++id) {
    demo::Illustration ill = demo::RenderPost(seed, id);
    (ill.plan.file_ext == "png" ? png : jpg).emplace_back(ill.encoded.begin(), ill.encoded.end());
  }
  if (!png.empty()) std::printf("png  (%zu files): %.0f us per file\n", png.size(), HashUs(png));
  if (!jpg.empty()) std::printf("jpeg (%zu files): %.0f us per file\n", jpg.size(), HashUs(jpg));
  return 0;
}
