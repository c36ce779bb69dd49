// moeforge-tag-bench: faces tagged per second by the built-in tagger (LibTorch), against
// the same network with the same weights in Python PyTorch (bench/tag_reference.py, run
// by this tool in the same run on the same crops).
//
// The crops are demo faces (128 px PNGs, as the detector writes them). Both sides time
// decode-free scoring: resize to the input size, normalise, forward, group softmax; the
// Python side also reports the largest difference from the C++ scores.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "demo_booru/render.h"
#include "tagger/backend.h"
#include "tagger/builtin/builtin_tagger.h"
#include "tagger/builtin/train.h"
#include "tagger/tagger.h"
#include "tagger/testing.h"

using namespace moeforge;
using namespace moeforge::tagger;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  CLI::App app{"moeforge-tag-bench: built-in tagger faces/s, C++ LibTorch vs Python PyTorch"};
  std::string model_path, dir = "/tmp/moeforge-tag-bench", python = "/usr/bin/python3", json_out;
  int n = 512, threads = 2, batch = 64, reps = 3;
  std::string script = std::string(MOEFORGE_SOURCE_DIR_FOR_BENCH) + "/bench/tag_reference.py";
  app.add_option("--model", model_path, "Built-in tagger model (default: a freshly initialised default network)");
  app.add_option("--n", n, "Crops")->capture_default_str();
  app.add_option("--threads", threads, "Threads on both sides")->capture_default_str();
  app.add_option("--batch", batch, "Batch size on both sides")->capture_default_str();
  app.add_option("--reps", reps, "Timed passes over the crops (best is reported)")->capture_default_str();
  app.add_option("--dir", dir, "Scratch folder for crops, model and scores")->capture_default_str();
  app.add_option("--python", python, "Python with torch")->capture_default_str();
  app.add_option("--script", script, "The Python reference")->capture_default_str();
  app.add_option("--json", json_out, "Write the figures here as JSON");
  CLI11_PARSE(app, argc, argv);

  fs::create_directories(dir + "/crops");
  SetTorchThreads(threads);
  if (model_path.empty()) {
    model_path = dir + "/model.pt";
    torch::manual_seed(1);
    // The network `moeforge tag train` makes by default, at its default input size.
    BuiltinTagger fresh(TagSchema::Default(), TaggerNetOptions{}, TagTrainOptions{}.input_size);
    auto s = fresh.Save(model_path);
    if (!s.ok()) return std::fprintf(stderr, "%s\n", s.ToString().c_str()), 1;
  }
  auto loaded = BuiltinTagger::Load(model_path);
  if (!loaded.ok()) return std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str()), 2;
  auto& model = **loaded;

  std::mt19937_64 rng(11);
  std::vector<cv::Mat> crops;
  std::ofstream list(dir + "/crops.txt");
  for (int i = 0; i < n; ++i) {
    cv::Mat m = demo::RenderFace(100 + i, testing::RandomCharacterTags(rng), 128);
    std::string p = dir + "/crops/" + std::to_string(i) + ".png";
    cv::imwrite(p, m);
    crops.push_back(cv::imread(p, cv::IMREAD_COLOR));  // the decoded PNG, as Python reads it
    list << p << "\n";
  }
  list.close();

  double best = 1e9;
  std::vector<std::vector<float>> scores;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    scores = ScoreCrops(model, crops, batch);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  {
    std::ofstream out(dir + "/cpp_scores.json");
    out << nlohmann::json(scores).dump();
  }
  double cpp_fps = n / best;
  std::printf("C++ LibTorch %s: %d faces in %.3f s = %.1f faces/s (threads %d, batch %d, input %d)\n",
              TORCH_VERSION, n, best, cpp_fps, threads, batch, model.input_size());
  std::fflush(stdout);

  std::string cmd = python + " " + script + " --model " + model_path + " --crops " + dir + "/crops.txt" +
                    " --threads " + std::to_string(threads) + " --batch " + std::to_string(batch) + " --reps " +
                    std::to_string(reps) + " --compare " + dir + "/cpp_scores.json --out " + dir + "/py.json";
  int rc = std::system(cmd.c_str());
  nlohmann::json j = {{"n", n}, {"threads", threads}, {"batch", batch}, {"cpp_faces_per_s", cpp_fps},
                      {"cpp_seconds", best}, {"model_sha256", model.sha256()}};
  if (rc == 0) {
    std::ifstream in(dir + "/py.json");
    auto py = nlohmann::json::parse(in);
    j["python"] = py;
    std::printf("Python PyTorch %s: %.1f faces/s; C++/Python %.2fx; max |score difference| %.2e\n",
                py["torch"].get<std::string>().c_str(), py["faces_per_s"].get<double>(),
                cpp_fps / py["faces_per_s"].get<double>(), py["max_abs_diff"].get<double>());
  } else {
    std::printf("Python reference failed (exit %d)\n", rc);
  }
  if (!json_out.empty()) std::ofstream(json_out) << j.dump(1) << "\n";
  return rc == 0 ? 0 : 1;
}
