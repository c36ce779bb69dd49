// moeforge-tag-eval: accuracy figures for the built-in tagger (issue 6, "Must show").
//
//   --demo N     N demo booru posts (demo::RenderPost), faces cut by the detector's
//                CropFace from their true boxes; posts split into train (80%) and
//                held-out test (20%) BY POST; trained on the single-character posts of
//                the train side; scored on every face of the test side, and separately
//                on the faces of its multi-character posts.
//   --mlds DIR   a labelled face folder (labels.csv: file,hair_color,eye_color,...):
//                80% of the files (seeded) to train, the rest to score; confusion tables.
// Prints the report as text and, with --json FILE, writes it as JSON.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <tuple>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <tbb/parallel_for.h>

#include "core/progress.h"
#include "demo/render.h"
#include "detector/detector.h"
#include "tagger/backend.h"
#include "tagger/builtin/train.h"

using namespace moeforge;
using namespace moeforge::tagger;

namespace {

struct Face {
  cv::Mat bgr;
  std::vector<float> truth;
  int64_t post = 0;
  bool single = false;  // from a single-character post
};

std::vector<Face> DemoFaces(uint64_t seed, int n_posts) {
  std::vector<std::vector<Face>> per_post(static_cast<size_t>(n_posts));
  detector::DetectOptions dopts;  // the pipeline's crop: margin 0.35, 128 px
  tbb::parallel_for(0, n_posts, [&](int i) {
    auto ill = demo::RenderPost(seed, i + 1);
    if (ill.plan.kind == demo::PostKind::kMonochrome || ill.plan.kind == demo::PostKind::kDuplicate) return;
    for (const auto& f : ill.faces) {
      auto crop = detector::CropFace(ill.bgr, cv::Rect2d(f.box), dopts);
      if (!crop.ok()) continue;
      Face face;
      face.bgr = crop->images[0];
      face.truth = TagSchema::Default().Encode(f.tags);
      face.post = i + 1;
      face.single = ill.faces.size() == 1;
      per_post[static_cast<size_t>(i)].push_back(face);
    }
  });
  std::vector<Face> out;
  for (auto& v : per_post)
    for (auto& f : v) out.push_back(std::move(f));
  return out;
}

Result<std::vector<Face>> MldsFaces(const std::string& dir) {
  std::ifstream in(dir + "/labels.csv");
  if (!in) return Status::NotFound(dir + "/labels.csv not found");
  std::string line;
  std::getline(in, line);
  std::vector<std::vector<std::string>> rows;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::vector<std::string> cells;
    std::string c;
    while (std::getline(ss, c, ',')) cells.push_back(c);
    if (cells.size() >= 3) rows.push_back(cells);
  }
  std::vector<Face> out(rows.size());
  tbb::parallel_for(size_t{0}, rows.size(), [&](size_t i) {
    out[i].bgr = cv::imread(dir + "/" + rows[i][0], cv::IMREAD_COLOR);
    out[i].truth = TagSchema::Default().Encode({rows[i][1] + "_hair", rows[i][2] + "_eyes"});
    out[i].post = static_cast<int64_t>(i);
  });
  out.erase(std::remove_if(out.begin(), out.end(), [](const Face& f) { return f.bgr.empty(); }), out.end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"moeforge-tag-eval: built-in tagger accuracy on held-out demo or labelled faces"};
  int demo_posts = 0, epochs = 12, input_size = 64, width = 32, threads = 0, batch = 64;
  double lr = 2e-3;
  bool bf16 = false;
  uint64_t seed = 1;
  double test_fraction = 0.2;
  std::string mlds, json_out, model_out, pool = "avgmax";
  app.add_option("--demo", demo_posts, "Demo booru posts to render")->capture_default_str();
  app.add_option("--mlds", mlds, "Labelled face folder (labels.csv)");
  app.add_option("--epochs", epochs, "Training epochs")->capture_default_str();
  app.add_option("--input-size", input_size, "Network input size")->capture_default_str();
  app.add_option("--width", width, "First block's channels")->capture_default_str();
  app.add_option("--pool", pool, "Global pool: avg | avgmax")->check(CLI::IsMember({"avg", "avgmax"}))->capture_default_str();
  app.add_option("--batch", batch, "Batch size")->capture_default_str();
  app.add_option("--lr", lr, "AdamW learning rate")->capture_default_str();
  app.add_flag("--bf16,!--no-bf16", bf16, "bf16 autocast in training (where the CPU has it)")->capture_default_str();
  app.add_option("--threads", threads, "Threads (0 = all cores)")->capture_default_str();
  app.add_option("--seed", seed, "Seed (data, split, training)")->capture_default_str();
  app.add_option("--test-fraction", test_fraction, "Share held out for scoring")->capture_default_str();
  app.add_option("--json", json_out, "Write the report as JSON here");
  app.add_option("--save-model", model_out, "Keep the trained model here");
  CLI11_PARSE(app, argc, argv);
  if ((demo_posts > 0) == !mlds.empty()) {
    std::fprintf(stderr, "moeforge-tag-eval: give exactly one of --demo N or --mlds DIR\n");
    return 2;
  }
  SetTorchThreads(threads);
  Progress clock("tag-eval", 0, 1e9);
  const TagSchema& schema = TagSchema::Default();

  std::vector<Face> faces;
  if (demo_posts > 0) {
    faces = DemoFaces(seed, demo_posts);
  } else {
    auto r = MldsFaces(mlds);
    if (!r.ok()) {
      std::fprintf(stderr, "moeforge-tag-eval: %s\n", r.status().ToString().c_str());
      return 2;
    }
    faces = std::move(*r);
  }
  double t_data = clock.elapsed_s();
  // Split by post (by file for a face folder), seeded.
  std::set<int64_t> posts;
  for (const auto& f : faces) posts.insert(f.post);
  std::vector<int64_t> order(posts.begin(), posts.end());
  std::mt19937_64 rng(seed ^ 0x5EED);
  std::shuffle(order.begin(), order.end(), rng);
  std::set<int64_t> test(order.begin(), order.begin() + static_cast<long>(test_fraction * order.size()));

  std::vector<LabeledCrop> train;
  std::vector<cv::Mat> test_m, multi_m, solo_m;
  std::vector<std::vector<float>> test_t, multi_t, solo_t;
  for (const auto& f : faces) {
    if (test.count(f.post)) {
      test_m.push_back(f.bgr);
      test_t.push_back(f.truth);
      if (demo_posts > 0 && !f.single) multi_m.push_back(f.bgr), multi_t.push_back(f.truth);
      if (demo_posts > 0 && f.single) solo_m.push_back(f.bgr), solo_t.push_back(f.truth);
    } else if (demo_posts == 0 || f.single) {
      train.push_back({f.bgr, f.truth, std::to_string(f.post), demo_posts > 0});
    }
  }
  std::printf("faces: %zu (%zu posts); train %zu single-character faces, test %zu faces of %zu held-out posts "
              "(%zu from multi-character posts); data in %.1f s\n",
              faces.size(), posts.size(), train.size(), test_m.size(), test.size(), multi_m.size(), t_data);
  std::fflush(stdout);

  TrainCoreOptions o;
  o.epochs = epochs;
  o.input_size = input_size;
  o.width = width;
  o.pool = pool;
  o.seed = seed;
  o.batch = batch;
  o.lr = lr;
  o.bf16 = bf16;
  o.val_fraction = 0.1;
  auto res = TrainOnCrops(schema, train, o);
  if (!res.ok()) {
    std::fprintf(stderr, "moeforge-tag-eval: %s\n", res.status().ToString().c_str());
    return 1;
  }
  double t_train = clock.elapsed_s() - t_data;
  auto& model = *res->model;
  if (!model_out.empty()) {
    auto s = model.Save(model_out);
    if (!s.ok()) std::fprintf(stderr, "saving: %s\n", s.ToString().c_str());
  }
  auto report = Evaluate(schema, ScoreCrops(model, test_m), test_t, model.thresholds(), demo_posts > 0);
  std::printf("trained in %.1f s (%d train, %d calibration faces)\n== held-out test ==\n%s", t_train, res->n_train,
              res->n_val, report.ToText(schema).c_str());
  nlohmann::json j = {{"faces", faces.size()}, {"train", res->n_train}, {"calibration", res->n_val},
                      {"test", test_m.size()}, {"train_seconds", t_train}, {"test_report", report.ToJson()},
                      {"epochs", epochs}, {"input_size", input_size}, {"width", width}, {"pool", pool}, {"seed", seed},
                      {"batch", batch}, {"lr", lr}, {"bf16", res->bf16}};
  // The held-out faces again, split by the kind of post they came from: a solo post's
  // face is framed alone, a multi-character post's may show a neighbour's hair.
  for (auto [name, key, m, t] : {std::make_tuple("single-character", "single_character_report", &solo_m, &solo_t),
                                 std::make_tuple("multi-character", "multi_character_report", &multi_m, &multi_t)}) {
    if (m->empty()) continue;
    auto r = Evaluate(schema, ScoreCrops(model, *m), *t, model.thresholds(), true);
    std::printf("== held-out faces of %s posts (their own tags) ==\n%s", name, r.ToText(schema).c_str());
    j[key] = r.ToJson();
  }
  if (!json_out.empty()) std::ofstream(json_out) << j.dump(1) << "\n";
  return 0;
}
