// moeforge-detect-bench: images per second through the detect stage (decode -> detect ->
// crop -> encode -> write crops + rows), against bench/detect_reference.py (Python
// OpenCV, the same steps) and against bare detectMultiScale, all on the same images in
// the same run.
//
//   moeforge-detect-bench [--demo 200 | --images DIR] [--detector cascade|cascade+yunet]
//                         [--seed 1] [--threads 0] [--repeat 3]
//                         [--python /usr/bin/python3] [--reference bench/detect_reference.py]
//
// Figures (best of --repeat, to dampen other load on a shared machine):
//   bare detectMultiScale  grey + equalizeHist + OpenCV's CascadeClassifier::detectMultiScale
//              over pre-decoded images, images in parallel over the same threads (one
//              cascade per thread).
//   bare detector  FaceDetector::Detect (every backend; LBP cascades on our own
//              evaluator) over the pre-decoded images the same way: the floor for the stage.
//   pipeline   moeforge::detector::Detect() on a fresh workspace holding the images.
//   python     the reference script (one process; OpenCV parallelises inside detectMultiScale).
//   overhead = pipeline / bare - 1 (against each bare figure);  speedup = python / pipeline.
//   cpu_s: the same phases in CPU seconds (getrusage), which other load on the machine
//   disturbs less than wall time.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

#include "core/hash.h"
#include "core/models.h"
#include "core/process.h"
#include "db/db.h"
#include "demo_booru/render.h"
#include "detector/detector.h"

namespace fs = std::filesystem;
using namespace moeforge;
using Clock = std::chrono::steady_clock;

namespace {

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<std::string> ListFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

double BareDetect(const std::vector<cv::Mat>& images, const std::string& cascade_path, int* faces) {
  std::mutex mu;
  int n = 0;
  auto t0 = Clock::now();
  tbb::parallel_for(size_t(0), images.size(), [&](size_t i) {
    thread_local cv::CascadeClassifier cc;
    if (cc.empty()) cc.load(cascade_path);
    cv::Mat grey;
    cv::cvtColor(images[i], grey, cv::COLOR_BGR2GRAY);
    cv::equalizeHist(grey, grey);
    std::vector<cv::Rect> objs;
    tbb::this_task_arena::isolate([&] { cc.detectMultiScale(grey, objs, 1.1, 5, 0, cv::Size(24, 24)); });
    std::lock_guard<std::mutex> lock(mu);
    n += static_cast<int>(objs.size());
  });
  *faces = n;
  return Since(t0);
}

double BareDetector(const std::vector<cv::Mat>& images, const detector::DetectOptions& o, int* faces) {
  std::mutex mu;
  int n = 0;
  auto t0 = Clock::now();
  tbb::parallel_for(size_t(0), images.size(), [&](size_t i) {
    thread_local std::unique_ptr<detector::FaceDetector> det;
    if (!det) det = std::move(*detector::FaceDetector::Create(o));
    auto f = tbb::this_task_arena::isolate([&] { return det->Detect(images[i]); });
    std::lock_guard<std::mutex> lock(mu);
    n += f.ok() ? static_cast<int>(f->size()) : 0;
  });
  *faces = n;
  return Since(t0);
}

Result<double> Pipeline(const std::vector<std::string>& files, const std::string& root,
                        const detector::DetectOptions& o, int* faces, double* cpu_setup) {
  double c0 = CpuSeconds(RUSAGE_SELF);
  fs::remove_all(root);
  Workspace ws(root);
  MF_RETURN_IF_ERROR(ws.CreateDirs());
  {
    MF_ASSIGN_OR_RETURN(auto db, db::OpenWorkspace(ws, true));
    MF_RETURN_IF_ERROR(db->Transaction([&]() -> Status {
      for (const auto& f : files) {
        MF_ASSIGN_OR_RETURN(std::string bytes, ReadFile(f));
        std::string sha = Sha256Hex(bytes);
        MF_RETURN_IF_ERROR(WriteFileAtomic(ws.BlobPath(sha), bytes.data(), bytes.size()));
        MF_ASSIGN_OR_RETURN(db::Stmt st, db->Prepare("INSERT OR IGNORE INTO images(sha256, bytes, format, blob_path, "
                                                     "added_at) VALUES(?,?,?,?,?)"));
        st.BindAll(sha, static_cast<int64_t>(bytes.size()), fs::path(f).extension().string().substr(1),
                   ws.BlobPath(sha, true), db::NowIso());
        MF_RETURN_IF_ERROR(st.Run());
      }
      return Status::Ok();
    }));
  }
  *cpu_setup = CpuSeconds(RUSAGE_SELF) - c0;
  auto t0 = Clock::now();
  MF_ASSIGN_OR_RETURN(auto s, detector::Detect(ws, o));
  double secs = Since(t0);
  *faces = s.extra.value("faces", 0);
  std::fprintf(stderr, "pipeline steps (thread-seconds): %s, detectors loaded %d\n", s.extra["step_s"].dump().c_str(),
               s.extra.value("detectors_loaded", 0));
  return secs;
}

}  // namespace

int main(int argc, char** argv) {
  int demo_n = 200, threads = 0, repeat = 3;
  std::string detector_name = "cascade";
  uint64_t seed = 1;
  std::string images_dir, python = "/usr/bin/python3",
                          reference = std::string(MOEFORGE_BENCH_SOURCE_DIR) + "/bench/detect_reference.py";
  CLI::App app{"Images per second through the detect stage vs the Python OpenCV reference and bare detection"};
  app.add_option("--demo", demo_n, "Demo booru posts to bench on")->capture_default_str();
  app.add_option("--images", images_dir, "A folder of images instead of demo posts");
  app.add_option("--detector", detector_name, "cascade or cascade+yunet (what the reference does)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cascade", "cascade+yunet"}));
  app.add_option("--seed", seed, "Demo booru seed")->capture_default_str();
  app.add_option("--threads", threads, "Stage threads (0: all cores)")->capture_default_str();
  app.add_option("--repeat", repeat, "Rounds; the best of them is reported")->capture_default_str()->check(
      CLI::PositiveNumber);
  app.add_option("--python", python, "Python interpreter for the reference")->capture_default_str();
  app.add_option("--reference", reference, "The reference script")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  detector::DetectOptions opts;
  opts.detector = detector_name;
  opts.threads = threads;
  auto cascade = ResolveModel("lbpcascade_animeface");
  if (!cascade.ok()) {
    std::fprintf(stderr, "%s\n", cascade.status().ToString().c_str());
    return 2;
  }
  if (auto d = detector::FaceDetector::Create(opts); !d.ok()) {
    std::fprintf(stderr, "%s\n", d.status().ToString().c_str());
    return 2;
  }
  std::string models_dir = fs::path(*cascade).parent_path().string();
  std::string tmp = fs::temp_directory_path() / ("moeforge_detect_bench_" + std::to_string(getpid()));
  fs::create_directories(tmp);
  if (images_dir.empty()) {
    images_dir = tmp + "/images";
    fs::create_directories(images_dir);
    tbb::parallel_for(int64_t(1), int64_t(demo_n) + 1, [&](int64_t id) {
      demo::Illustration ill = demo::RenderPost(seed, id);
      std::ofstream(images_dir + "/post_" + std::to_string(id) + "." + ill.plan.file_ext, std::ios::binary)
          << ill.encoded;
    });
  }
  std::vector<std::string> files = ListFiles(images_dir);
  std::vector<cv::Mat> decoded;
  int64_t pixels = 0;
  for (const auto& f : files) {
    decoded.push_back(cv::imread(f, cv::IMREAD_COLOR));
    pixels += static_cast<int64_t>(decoded.back().total());
  }
  int nthreads = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(nthreads));
  std::fprintf(stderr, "%zu images (%.2f Mpx mean) from %s, %d threads, best of %d\n", files.size(),
               pixels / 1e6 / std::max<size_t>(1, files.size()), images_dir.c_str(), nthreads, repeat);

  double best_bare = 1e30, best_det = 1e30, best_pipe = 1e30, best_py = 1e30;
  double cpu_bare = 1e30, cpu_det = 1e30, cpu_pipe = 1e30, cpu_py = 1e30;
  int bare_faces = 0, det_faces = 0, pipe_faces = 0, py_faces = 0;
  for (int r = 0; r < repeat; ++r) {
    // Python first, then ours, each round, so drifting load hits all alike.
    std::string out = tmp + "/py_out";
    fs::remove_all(out);
    std::string cmd = python + " " + reference + " --images " + images_dir + " --out " + out + " --models " + models_dir +
                      " --detector " + detector_name;
    double c0 = CpuSeconds(RUSAGE_CHILDREN);
    CommandResult res = RunCommand(cmd);
    cpu_py = std::min(cpu_py, CpuSeconds(RUSAGE_CHILDREN) - c0);
    // The summary is the last JSON line; an output without one (a crash) is a failure.
    size_t brace = res.output.rfind('{');
    auto js = brace == std::string::npos ? nlohmann::json(nlohmann::json::value_t::discarded)
                                         : nlohmann::json::parse(res.output.substr(brace), nullptr, false);
    if (res.status != 0 || js.is_discarded()) {
      std::fprintf(stderr, "reference failed (exit %d): %s\n", res.status, res.output.c_str());
      return 1;
    }
    best_py = std::min(best_py, js["seconds"].get<double>());
    py_faces = js["faces"].get<int>();
    c0 = CpuSeconds(RUSAGE_SELF);
    best_bare = std::min(best_bare, BareDetect(decoded, *cascade, &bare_faces));
    double c1 = CpuSeconds(RUSAGE_SELF);
    best_det = std::min(best_det, BareDetector(decoded, opts, &det_faces));
    double c2 = CpuSeconds(RUSAGE_SELF);
    cpu_bare = std::min(cpu_bare, c1 - c0);
    cpu_det = std::min(cpu_det, c2 - c1);
    double cpu_setup = 0;  // the workspace setup inside Pipeline() is not part of the stage
    auto pipe = Pipeline(files, tmp + "/ws", opts, &pipe_faces, &cpu_setup);
    cpu_pipe = std::min(cpu_pipe, CpuSeconds(RUSAGE_SELF) - c2 - cpu_setup);
    if (!pipe.ok()) {
      std::fprintf(stderr, "pipeline: %s\n", pipe.status().ToString().c_str());
      return 1;
    }
    best_pipe = std::min(best_pipe, *pipe);
    std::fprintf(stderr, "round %d: python %.3f s, bare detectMultiScale %.3f s, bare detector %.3f s, pipeline %.3f s\n",
                 r + 1, js["seconds"].get<double>(), best_bare, best_det, *pipe);
  }
  double n = static_cast<double>(files.size());
  nlohmann::json res = {{"images", files.size()},
                        {"detector", detector_name},
                        {"threads", nthreads},
                        {"python_img_s", n / best_py},
                        {"bare_detectmultiscale_img_s", n / best_bare},
                        {"bare_detector_img_s", n / best_det},
                        {"pipeline_img_s", n / best_pipe},
                        {"speedup_vs_python", best_py / best_pipe},
                        {"overhead_vs_bare_detector", best_pipe / best_det - 1},
                        {"cpu_s", {{"python", cpu_py}, {"bare_detectmultiscale", cpu_bare},
                                   {"bare_detector", cpu_det}, {"pipeline", cpu_pipe}}},
                        {"cpu_overhead_vs_bare_detector", cpu_pipe / cpu_det - 1},
                        {"cpu_ratio_python_over_pipeline", cpu_py / cpu_pipe},
                        {"overhead_vs_bare_detectmultiscale", best_pipe / best_bare - 1},
                        {"faces", {{"python", py_faces}, {"bare_detectmultiscale_raw", bare_faces},
                                   {"bare_detector", det_faces}, {"pipeline", pipe_faces}}}};
  std::printf("%s\n", res.dump().c_str());
  fs::remove_all(tmp);
  return 0;
}
