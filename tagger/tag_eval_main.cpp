// moeforge-tag-eval: accuracy figures for the built-in tagger (issues 6 and 15), each
// one command. Every figure is the tagger's own decisions: argmax for the exclusive
// groups, its calibrated thresholds for the binary tags.
//
//   --demo N [--test-seed S --test-posts M]
//                N demo booru posts of --seed (demo::RenderPost), faces cut by the
//                detector's CropFace from their true boxes, trained on as `tag train`
//                does (single-character posts' faces, and multi-character posts' faces
//                for what their posts' tags say). With --test-seed, scored on every face
//                of M posts of that other seed (an unseen crawl); without, posts split
//                80/20 by post and scored on the held-out side.
//   --mlds DIR   a labelled face folder (labels.csv: file,hair_color,eye_color,...):
//                80% of the files (seeded) to train, the rest to score; confusion tables.
//   --model FILE --workspace WS --truth FILE
//                no training: scores a model file on the face crops of a workspace,
//                each matched to its true face in the demo booru's --dump-truth file
//                (demo::DetectionMatches); detections of no true face are counted, not
//                scored.
//   --model FILE --mlds DIR
//                no training: scores a model file (saved by an --mlds run's --save-model)
//                on the files that run held out (the same --seed and --test-fraction).
// --score-flip-average on|off scores a --model with the mirror average set so.
// Prints the report as text and, with --json FILE, writes it as JSON.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <tuple>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <tbb/parallel_for.h>

#include "core/progress.h"
#include "db/db.h"
#include "tagger/tagger.h"
#include "demo_booru/render.h"
#include "detector/detector.h"
#include "tagger/backend.h"
#include "tagger/builtin/train.h"

using namespace moeforge;
using namespace moeforge::tagger;

namespace {

struct Face {
  cv::Mat bgr;
  std::vector<float> truth;              // this character's own tags
  std::vector<std::string> post_tags;    // what the post says (a union for several)
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
      face.post_tags = ill.tags;
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

// The demo booru's --dump-truth file: remote_id -> true faces.
Result<std::map<std::string, std::vector<demo::FaceTruth>>> ReadTruth(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("truth file '" + path + "' not found");
  std::map<std::string, std::vector<demo::FaceTruth>> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("remote_id")) return Status::Corrupt("'" + path + "': not demo booru truth");
    auto& faces = out[j["remote_id"].get<std::string>()];
    for (const auto& f : j.value("faces", nlohmann::json::array()))
      faces.push_back({cv::Rect(f["x"].get<int>(), f["y"].get<int>(), f["w"].get<int>(), f["h"].get<int>()),
                       f["tags"].get<std::vector<std::string>>()});
  }
  return out;
}

// The faces of a workspace matched to their truth: for each face crop, the true face it
// matches (the nearest centre when several do). Monochrome posts are left out, as
// training leaves them out: their characters' colours are not in the pixels.
Result<std::vector<Face>> WorkspaceFaces(const std::string& root, const std::string& truth_path, int* unmatched) {
  MF_ASSIGN_OR_RETURN(auto truth, ReadTruth(truth_path));
  Workspace ws(root);
  MF_RETURN_IF_ERROR(ws.CheckExists());
  MF_ASSIGN_OR_RETURN(auto dbp, db::OpenWorkspace(ws));
  MF_ASSIGN_OR_RETURN(db::Stmt q, dbp->Prepare(
      "SELECT remote_id, x, y, w, h, crop_path, post_id, EXISTS(SELECT 1 FROM source_tags st WHERE st.post_id = "
      "v_faces.post_id AND st.tag IN ('monochrome','greyscale','grayscale')) FROM v_faces "
      "WHERE crop_path IS NOT NULL ORDER BY face_id"));
  std::vector<Face> out;
  std::vector<std::string> paths;
  *unmatched = 0;
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    if (q.Int(7)) continue;
    auto it = truth.find(q.Text(0));
    cv::Rect d(static_cast<int>(q.Double(1)), static_cast<int>(q.Double(2)), static_cast<int>(q.Double(3)),
               static_cast<int>(q.Double(4)));
    const demo::FaceTruth* best = nullptr;
    double best_dist = 1e18;
    if (it != truth.end()) {
      for (const auto& f : it->second) {
        if (!demo::DetectionMatches(f.box, d)) continue;
        double dx = (f.box.x + f.box.width / 2.0) - (d.x + d.width / 2.0);
        double dy = (f.box.y + f.box.height / 2.0) - (d.y + d.height / 2.0);
        if (dx * dx + dy * dy < best_dist) best_dist = dx * dx + dy * dy, best = &f;
      }
    }
    if (!best) {
      ++*unmatched;
      continue;
    }
    Face face;
    face.truth = TagSchema::Default().Encode(best->tags);
    face.post = q.Int(6);
    face.single = it->second.size() == 1;
    out.push_back(std::move(face));
    paths.push_back(ws.Abs(q.Text(5)));
  }
  tbb::parallel_for(size_t{0}, out.size(), [&](size_t i) { out[i].bgr = cv::imread(paths[i], cv::IMREAD_COLOR); });
  out.erase(std::remove_if(out.begin(), out.end(), [](const Face& f) { return f.bgr.empty(); }), out.end());
  return out;
}

// Scores `faces` with `model` (its own thresholds) and prints the report, then again
// for the faces of single- and of multi-character posts.
nlohmann::json ScoreAndPrint(BuiltinTagger& model, const std::vector<Face>& faces, bool binaries, const char* title) {
  const TagSchema& schema = model.schema();
  std::vector<cv::Mat> all_m, solo_m, multi_m;
  std::vector<std::vector<float>> all_t, solo_t, multi_t;
  for (const auto& f : faces) {
    all_m.push_back(f.bgr), all_t.push_back(f.truth);
    (f.single ? solo_m : multi_m).push_back(f.bgr);
    (f.single ? solo_t : multi_t).push_back(f.truth);
  }
  auto scores = ScoreCrops(model, all_m);
  auto report = Evaluate(schema, scores, all_t, model.thresholds(), binaries);
  std::printf("== %s: %zu faces ==\n%s", title, all_m.size(), report.ToText(schema).c_str());
  nlohmann::json j = {{"test", all_m.size()}, {"test_report", report.ToJson()}};
  if (!binaries) return j;
  // What the scores could give at the best threshold for each tag, chosen on these very
  // faces: an upper bound that tells a weak ranking from a poorly calibrated threshold.
  auto oracle = Evaluate(schema, scores, all_t, CalibrateThresholds(schema, scores, all_t), true);
  std::printf("binary F1 at the best threshold for each tag (chosen on these faces, an upper bound):");
  for (const auto& t : oracle.tags) std::printf(" %s %.3f", t.tag.c_str(), t.f1());
  std::printf("\n");
  j["best_threshold_report"] = oracle.ToJson();
  // A solo post's face is framed alone; a multi-character post's may show a
  // neighbour's hair.
  for (auto [name, key, m, t] : {std::make_tuple("single-character", "single_character_report", &solo_m, &solo_t),
                                 std::make_tuple("multi-character", "multi_character_report", &multi_m, &multi_t)}) {
    if (m->empty()) continue;
    auto r = Evaluate(schema, ScoreCrops(model, *m), *t, model.thresholds(), true);
    std::printf("== of these, %zu faces of %s posts (their own tags) ==\n%s", m->size(), name, r.ToText(schema).c_str());
    j[key] = r.ToJson();
  }
  return j;
}

// Moves a seeded test_fraction of the posts (of the files, for a face folder) from
// *faces to *test. The same seed and fraction give the same split, so a model saved by a
// training run can be scored again on its held-out faces.
void SplitByPost(uint64_t seed, double test_fraction, std::vector<Face>* faces, std::vector<Face>* test) {
  std::set<int64_t> posts;
  for (const auto& f : *faces) posts.insert(f.post);
  std::vector<int64_t> order(posts.begin(), posts.end());
  std::mt19937_64 rng(seed ^ 0x5EED);
  std::shuffle(order.begin(), order.end(), rng);
  std::set<int64_t> held(order.begin(), order.begin() + static_cast<long>(test_fraction * order.size()));
  std::vector<Face> keep;
  for (auto& f : *faces) (held.count(f.post) ? *test : keep).push_back(std::move(f));
  *faces = std::move(keep);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"moeforge-tag-eval: built-in tagger accuracy on held-out demo or labelled faces"};
  // Training defaults are `tag train`'s, so a figure here is what the product does.
  TagTrainOptions d;
  int demo_posts = 0, test_posts = 300, threads = 0;
  int64_t test_seed = -1;
  uint64_t seed = d.seed;
  double test_fraction = 0.2;
  std::string mlds, json_out, model_out, model_in, workspace, truth;
  app.add_option("--demo", demo_posts, "Demo booru posts to render and train on")->capture_default_str();
  app.add_option("--test-seed", test_seed, "Score on posts of this other demo seed (an unseen crawl)");
  app.add_option("--test-posts", test_posts, "Posts of --test-seed to score")->capture_default_str();
  app.add_option("--mlds", mlds, "Labelled face folder (labels.csv)");
  app.add_option("--model", model_in,
                 "Score this model file (no training): with --workspace and --truth, or with --mlds (its "
                 "held-out files by --seed and --test-fraction)");
  app.add_option("--workspace", workspace, "Workspace whose face crops --model scores");
  app.add_option("--truth", truth, "The demo booru's --dump-truth file for --workspace");
  app.add_option("--epochs", d.epochs, "The most training epochs")->capture_default_str();
  app.add_option("--patience", d.patience, "Early stopping: epochs without a better validation score")
      ->capture_default_str();
  app.add_option("--input-size", d.input_size, "Network input size")->capture_default_str();
  app.add_option("--width", d.width, "First block's channels")->capture_default_str();
  app.add_option("--blocks", d.blocks, "Conv blocks")->capture_default_str();
  app.add_option("--pool", d.pool, "Global pool: avg | avgmax")->check(CLI::IsMember({"avg", "avgmax"}))->capture_default_str();
  app.add_option("--batch", d.batch, "Batch size")->capture_default_str();
  app.add_option("--lr", d.lr, "AdamW learning rate")->capture_default_str();
  app.add_flag("--bf16,!--no-bf16", d.bf16, "bf16 autocast in training (where the CPU has it)")->capture_default_str();
  app.add_flag("--multi-character,!--no-multi-character", d.multi_character,
               "Train on multi-character posts' faces too")->capture_default_str();
  app.add_flag("--augment,!--no-augment", d.augment, "Flip, zoom and shift training crops")->capture_default_str();
  app.add_option("--label-smoothing", d.label_smoothing, "Binary targets pulled towards 0.5")->capture_default_str();
  app.add_option("--multi-instance", d.multi_instance,
                 "Tags present on multi-character posts: none | noisy-or | max (as tag train)")
      ->check(CLI::IsMember({"none", "noisy-or", "max"}))
      ->capture_default_str();
  app.add_flag("--flip-average,!--no-flip-average", d.flip_average,
               "Average each crop's logits with its mirror's (as tag train)")->capture_default_str();
  std::string flip_override;
  app.add_option("--score-flip-average", flip_override,
                 "With --model: score with the mirror average on or off, whatever the file says (its "
                 "thresholds were calibrated as the file says: compare the best-threshold line)")
      ->check(CLI::IsMember({"on", "off"}));
  app.add_option("--val-fraction", d.val_fraction, "Share of training posts held out to validate")->capture_default_str();
  app.add_option("--threads", threads, "Threads (0 = all cores)")->capture_default_str();
  app.add_option("--seed", seed, "Seed (data, split, training)")->capture_default_str();
  app.add_option("--test-fraction", test_fraction, "Without --test-seed: share held out for scoring")->capture_default_str();
  app.add_option("--json", json_out, "Write the report as JSON here");
  app.add_option("--save-model", model_out, "Keep the trained model here");
  CLI11_PARSE(app, argc, argv);
  // --model with --mlds scores the file on the held-out files of that --seed and
  // --test-fraction (a model a training run saved with --save-model).
  const bool model_on_workspace = !model_in.empty() && mlds.empty();
  int modes = (demo_posts > 0) + !mlds.empty() + model_on_workspace;
  if (modes != 1 || (model_on_workspace && (workspace.empty() || truth.empty()))) {
    std::fprintf(stderr, "moeforge-tag-eval: give exactly one of --demo N, --mlds DIR or --model FILE "
                         "(with --workspace WS --truth FILE, or with --mlds DIR)\n");
    return 2;
  }
  SetTorchThreads(threads);
  Progress clock("tag-eval", 0, 1e9);
  const TagSchema& schema = TagSchema::Default();

  if (model_on_workspace) {
    auto model = BuiltinTagger::Load(model_in);
    int unmatched = 0;
    auto faces = model.ok() ? WorkspaceFaces(workspace, truth, &unmatched) : Result<std::vector<Face>>(model.status());
    if (!faces.ok()) {
      std::fprintf(stderr, "moeforge-tag-eval: %s\n", faces.status().ToString().c_str());
      return 2;
    }
    if (!flip_override.empty()) (*model)->set_flip_average(flip_override == "on");
    std::printf("%zu face crops of %s matched to their truth; %d detections of no true face left out\n",
                faces->size(), workspace.c_str(), unmatched);
    auto j = ScoreAndPrint(**model, *faces, true, "workspace faces, the model's own decisions");
    j["model"] = model_in, j["model_sha256"] = (*model)->sha256(), j["workspace"] = workspace, j["unmatched"] = unmatched;
    j["flip_average"] = (*model)->flip_average();
    if (!json_out.empty()) std::ofstream(json_out) << j.dump(1) << "\n";
    return 0;
  }

  std::vector<Face> faces, test_faces;
  if (demo_posts > 0) {
    faces = DemoFaces(seed, demo_posts);
    if (test_seed >= 0) test_faces = DemoFaces(static_cast<uint64_t>(test_seed), test_posts);
  } else {
    auto r = MldsFaces(mlds);
    if (!r.ok()) {
      std::fprintf(stderr, "moeforge-tag-eval: %s\n", r.status().ToString().c_str());
      return 2;
    }
    faces = std::move(*r);
    if (!model_in.empty()) {
      auto model = BuiltinTagger::Load(model_in);
      if (!model.ok()) {
        std::fprintf(stderr, "moeforge-tag-eval: %s\n", model.status().ToString().c_str());
        return 2;
      }
      if (!flip_override.empty()) (*model)->set_flip_average(flip_override == "on");
      SplitByPost(seed, test_fraction, &faces, &test_faces);
      auto j = ScoreAndPrint(**model, test_faces, false, "held-out test");
      j["model"] = model_in, j["model_sha256"] = (*model)->sha256(), j["seed"] = seed;
      j["flip_average"] = (*model)->flip_average();
      if (!json_out.empty()) std::ofstream(json_out) << j.dump(1) << "\n";
      return 0;
    }
  }
  double t_data = clock.elapsed_s();
  if (test_seed < 0) SplitByPost(seed, test_fraction, &faces, &test_faces);
  std::vector<LabeledCrop> train;
  int n_multi = 0;
  for (const auto& f : faces) {
    LabeledCrop c;
    if (demo_posts > 0) {
      if (!f.single && !d.multi_character) continue;
      c = LabelFromPostTags(schema, f.post_tags, f.single, true);
      n_multi += !f.single;
    } else {
      c = LabelFromPostTags(schema, {}, true, false);
      c.target = f.truth;
    }
    c.bgr = f.bgr;
    c.split_key = std::to_string(f.post);
    train.push_back(std::move(c));
  }
  std::printf("training faces: %zu (%d of multi-character posts); test faces: %zu%s; data in %.1f s\n", train.size(),
              n_multi, test_faces.size(), test_seed >= 0 ? " (another seed)" : " (held-out posts)", t_data);
  std::fflush(stdout);

  TrainCoreOptions o = CoreOptions(d);
  o.seed = seed;
  double t0 = clock.elapsed_s();
  auto res = TrainOnCrops(schema, train, o);
  if (!res.ok()) {
    std::fprintf(stderr, "moeforge-tag-eval: %s\n", res.status().ToString().c_str());
    return 1;
  }
  double t_train = clock.elapsed_s() - t0;
  auto& model = *res->model;
  if (!model_out.empty()) {
    auto st = model.Save(model_out);
    if (!st.ok()) std::fprintf(stderr, "saving: %s\n", st.ToString().c_str());
  }
  std::printf("trained in %.1f s (%d train, %d validation faces; %d epochs run, best %d)\n", t_train, res->n_train,
              res->n_val, res->epochs_run, res->best_epoch);
  auto j = ScoreAndPrint(model, test_faces, demo_posts > 0, test_seed >= 0 ? "another seed" : "held-out test");
  j.update({{"faces", faces.size() + test_faces.size()}, {"train", res->n_train}, {"train_multi_character", n_multi},
            {"validation", res->n_val}, {"train_seconds", t_train}, {"epochs", d.epochs}, {"patience", d.patience},
            {"epochs_run", res->epochs_run}, {"best_epoch", res->best_epoch}, {"val_curve", res->val_curve},
            {"input_size", d.input_size}, {"width", d.width}, {"blocks", d.blocks}, {"pool", d.pool}, {"seed", seed},
            {"test_seed", test_seed}, {"batch", d.batch}, {"lr", d.lr}, {"bf16", res->bf16},
            {"multi_character", d.multi_character}, {"augment", d.augment}, {"label_smoothing", d.label_smoothing},
            {"multi_instance", d.multi_instance}, {"flip_average", d.flip_average}});
  if (!json_out.empty()) std::ofstream(json_out) << j.dump(1) << "\n";
  return 0;
}
