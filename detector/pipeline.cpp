// The detect stage's pipeline: the images this detector has not seen -> decode -> detect
// -> crop -> encode on all cores (oneTBB) -> one BatchWriter, one operation per image so
// that an image's faces and its detections_done row commit together (SIGKILL-safe).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <type_traits>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>
#include <opencv2/imgcodecs.hpp>

#include "codecs/decode.h"
#include "core/shard.h"
#include "core/progress.h"
#include "core/tsan.h"
#include "db/db.h"
#include "detector/detector.h"

namespace moeforge::detector {

namespace {

struct WorkItem {
  std::string sha256;
  std::string blob_path;  // relative to the workspace
  std::string format;     // as the crawler sniffed it (png|jpeg|gif|webp|bmp|avif), may be empty
};

struct CropOut {
  Face face;
  FaceCrop crop;
  std::vector<std::string> paths;  // relative to the workspace, one per crop size
};

struct ImageResult {
  WorkItem item;
  cv::Mat image;
  std::vector<Face> faces;
  std::vector<CropOut> crops;
  int dropped_pad = 0;
  std::string failure;  // reason key when failed ("corrupt_image", ...)
  std::string error;    // the message stored with it
};

// Detectors are not thread-safe: each worker borrows one, creating more on demand.
class DetectorPool {
 public:
  DetectorPool(const DetectOptions& opts, std::unique_ptr<FaceDetector> first) : opts_(opts) {
    free_.push_back(std::move(first));
  }
  Result<std::unique_ptr<FaceDetector>> Take() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        auto d = std::move(free_.back());
        free_.pop_back();
        return d;
      }
    }
    ++created_;
    return FaceDetector::Create(opts_);
  }
  int created() const { return created_; }
  void Give(std::unique_ptr<FaceDetector> d) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(d));
  }

 private:
  DetectOptions opts_;
  std::mutex mu_;
  std::vector<std::unique_ptr<FaceDetector>> free_;
  std::atomic<int> created_{1};
};

// Nanoseconds spent in each step, summed over threads: where the time goes.
struct StepClock {
  std::atomic<int64_t> decode{0}, detect{0}, crop{0}, encode_write{0};
  static int64_t Now() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// The hand-offs of Detect's pipeline that oneTBB guarantees, stated for TSan (core/tsan.h).
// Static, so that stating one reads nothing the pipeline's threads share (a filter's own
// fields are written by the caller); two pipelines at once share them, which only adds order.
struct PipelineEdges {
  char start;      // the caller's writes before the pipeline -> every filter call
  char end;        // every filter call -> the caller after the pipeline
  char serial[2];  // one call of a serial filter -> its next call: [0] input, [1] output
} g_edges;

// Filter k -> filter k+1 of one image: its ImageResult stands for the edge.
const void* TokenEdge(const std::shared_ptr<ImageResult>& r) { return r.get(); }
const void* TokenEdge(const tbb::flow_control&) { return nullptr; }

// `body` as a filter of Detect's pipeline with its hand-offs stated; kSerial: the index of
// its g_edges.serial edge when TBB runs it one call at a time, -1 when in parallel.
template <int kSerial, class Body>
auto Stated(Body body) {
  return [body](auto&& in) {
    const char* serial = kSerial >= 0 ? &g_edges.serial[kSerial] : nullptr;
    tsan::Acquire(&g_edges.start);
    tsan::Acquire(serial);
    tsan::Acquire(TokenEdge(in));
    auto done = [serial](const void* out_token) {
      tsan::Release(out_token);
      tsan::Release(serial);
      tsan::Release(&g_edges.end);
    };
    using In = decltype(in);
    if constexpr (std::is_void_v<std::invoke_result_t<const Body&, In>>) {
      body(std::forward<In>(in));
      done(nullptr);
    } else {
      auto out = body(std::forward<In>(in));
      done(out.get());
      return out;
    }
  };
}

std::string CropRelPath(int64_t detector_id, int size, const std::string& sha, size_t idx) {
  return "crops/d" + std::to_string(detector_id) + "/" + std::to_string(size) + "/" + sha.substr(0, 2) + "/" + sha +
         "_" + std::to_string(idx) + ".png";
}

// Crops are derived data, written many per second: tmp + rename (atomic, so a SIGKILL
// leaves the old file or the new one, never half of one) without core's per-file fsync
// (~7 ms each here, a fifth of the stage's time); the run syncs the file system once at
// its end instead (syncfs), so a finished run is durable.
Status WriteCrop(const std::string& path, const std::vector<uchar>& data) {
  return WriteFileAtomic(path, data.data(), data.size(), /*fsync_file=*/false);
}

void SyncFileSystem(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::syncfs(fd);
  ::close(fd);
}

void Decode(const Workspace& ws, ImageResult& r) {
  std::error_code ec;
  std::string path = ws.Abs(r.item.blob_path);
  auto data = ReadFile(path);
  if (!data.ok()) {
    r.failure = "missing_blob";
    r.error = "cannot read " + r.item.blob_path + ": " + data.status().message();
    return;
  }
  if (data->empty()) {
    r.failure = "empty_file";
    r.error = "the stored image " + r.item.blob_path + " is an empty file";
    return;
  }
  r.image = codecs::Decode(data->data(), data->size(), cv::IMREAD_COLOR);  // GIF: its first frame
  if (std::string missing = codecs::MissingDecoder(r.item.format); r.image.empty() && !missing.empty()) {
    r.failure = "unsupported_format";
    r.error = "cannot decode " + r.item.blob_path + ": " + r.item.format + ", " + missing;
  } else if (r.image.empty()) {
    r.failure = "corrupt_image";
    r.error = "cannot decode " + r.item.blob_path + " (" + std::to_string(data->size()) +
              " bytes): not an image OpenCV reads, or truncated";
  }
}

}  // namespace

Result<db::StageSummary> Detect(const Workspace& ws, const DetectOptions& opts) {
  MF_RETURN_IF_ERROR(ValidateOptions(opts));
  MF_RETURN_IF_ERROR(ws.CheckExists());
  MF_ASSIGN_OR_RETURN(auto dbp, db::OpenWorkspace(ws));
  db::Database& db = *dbp;
  MF_ASSIGN_OR_RETURN(auto first, FaceDetector::Create(opts));

  nlohmann::json params = first->params();
  params["crop"] = {{"sizes", opts.crop_sizes}, {"margin", opts.margin}, {"max_pad", opts.max_pad}};
  std::string params_json = params.dump();
  std::string name = first->name(), model_sha = first->model_sha256();

  int64_t detector_id = 0;
  {
    MF_ASSIGN_OR_RETURN(db::Stmt ins, db.Prepare(
        "INSERT OR IGNORE INTO detectors(name, model_sha256, params_json, created_at) VALUES(?,?,?,?)"));
    ins.BindAll(name, model_sha, params_json, db::NowIso());
    MF_RETURN_IF_ERROR(ins.Run());
    MF_ASSIGN_OR_RETURN(db::Stmt q,
                        db.Prepare("SELECT id FROM detectors WHERE name=? AND model_sha256=? AND params_json=?"));
    q.BindAll(name, model_sha, params_json);
    MF_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return Status::Internal("detectors row vanished");
    detector_id = q.Int(0);
  }

  nlohmann::json run_params = {{"detector", name}, {"detector_id", detector_id}, {"model_sha256", model_sha},
                               {"params", params}, {"threads", opts.threads}};
  MF_ASSIGN_OR_RETURN(int64_t run_id, db::BeginStageRun(db, "detect", run_params));

  db::StageSummary summary;
  summary.stage = "detect";
  summary.params = run_params;

  // The work: stored originals (not near duplicates) this detector has not recorded. A
  // missing blob or a crop that could not be written (a full or read-only disk) is a fault
  // of the workspace, not of the image: asked for again on every run until it is cleared
  // (other failures only with retry_failed).
  std::vector<WorkItem> work;
  {
    std::string seen = opts.retry_failed ? "AND d.state = 'done'"
                                         : "AND NOT (d.state = 'failed' AND (d.error LIKE 'missing_blob%' OR "
                                           "d.error LIKE 'crop_write_error%'))";
    MF_ASSIGN_OR_RETURN(
        db::Stmt q,
        db.Prepare("SELECT i.sha256, i.blob_path, coalesce(i.format, '') FROM images i WHERE i.blob_path IS NOT NULL AND i.near_dup_of IS NULL "
                   "AND NOT EXISTS (SELECT 1 FROM detections_done d WHERE d.detector_id = ?1 AND d.image_sha256 = "
                   "i.sha256 " + seen + ") ORDER BY i.rowid"));
    q.Bind(1, detector_id);
    MF_ASSIGN_OR_RETURN(const Shard shard, Shard::Parse(opts.shard));
    while (true) {
      MF_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      if (!shard.Owns(q.Text(0))) continue;  // --shard i/N: another machine's image
      work.push_back({q.Text(0), q.Text(1), q.Text(2)});
      if (opts.limit > 0 && static_cast<int64_t>(work.size()) >= opts.limit) break;
    }
    MF_ASSIGN_OR_RETURN(int64_t total, db.QueryInt("SELECT count(*) FROM images"));
    summary.skipped = total - static_cast<int64_t>(work.size());
  }

  int threads = opts.threads > 0 ? opts.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
  DetectorPool pool(opts, std::move(first));
  StepClock steps;
  Progress progress("detect", static_cast<int64_t>(work.size()));
  std::atomic<int64_t> faces_total{0}, dropped_pad{0}, with_faces{0};
  Status fatal;  // a detector that cannot be created on a worker, or a writer failure
  std::mutex fatal_mu;
  auto set_fatal = [&](const Status& s) {
    std::lock_guard<std::mutex> lock(fatal_mu);
    if (fatal.ok()) fatal = s;
  };

  auto t0 = std::chrono::steady_clock::now();
  {
    db::BatchWriter writer(db);
    size_t next = 0;
    tbb::filter<void, void> filters =
        tbb::make_filter<void, std::shared_ptr<ImageResult>>(
            tbb::filter_mode::serial_in_order,
            Stated<0>([&](tbb::flow_control& fc) -> std::shared_ptr<ImageResult> {
              bool stop;
              {
                std::lock_guard<std::mutex> lock(fatal_mu);
                stop = !fatal.ok();
              }
              if (stop || next >= work.size()) {
                fc.stop();
                return nullptr;
              }
              auto r = std::make_shared<ImageResult>();
              r->item = work[next++];
              return r;
            })) &
            tbb::make_filter<std::shared_ptr<ImageResult>, std::shared_ptr<ImageResult>>(
                tbb::filter_mode::parallel,
                Stated<-1>([&](std::shared_ptr<ImageResult> r) {
                  int64_t t = StepClock::Now();
                  Decode(ws, *r);
                  steps.decode += StepClock::Now() - t;
                  return r;
                })) &
            tbb::make_filter<std::shared_ptr<ImageResult>, std::shared_ptr<ImageResult>>(
                tbb::filter_mode::parallel,
                Stated<-1>([&](std::shared_ptr<ImageResult> r) {
                  if (!r->failure.empty()) return r;
                  auto det = pool.Take();
                  if (!det.ok()) {
                    set_fatal(det.status());
                    r->failure = "detector_error";
                    r->error = det.status().message();
                    return r;
                  }
                  int64_t t = StepClock::Now();
                  // OpenCV runs detectMultiScale's own parallel loops on this TBB; isolated,
                  // a waiting thread does not pick up another image's detection meanwhile
                  // (which would nest detections on one stack and load more detectors).
                  Result<std::vector<Face>> faces =
                      tbb::this_task_arena::isolate([&] { return (*det)->Detect(r->image); });
                  steps.detect += StepClock::Now() - t;
                  pool.Give(std::move(*det));
                  if (!faces.ok()) {
                    r->failure = "detect_error";
                    r->error = faces.status().message();
                  } else {
                    r->faces = std::move(*faces);
                  }
                  return r;
                })) &
            tbb::make_filter<std::shared_ptr<ImageResult>, std::shared_ptr<ImageResult>>(
                tbb::filter_mode::parallel,
                Stated<-1>([&](std::shared_ptr<ImageResult> r) {
                  if (!r->failure.empty()) return r;
                  int64_t t = StepClock::Now();
                  for (const auto& f : r->faces) {
                    auto c = CropFace(r->image, f.box, opts);
                    if (!c.ok()) {
                      ++r->dropped_pad;
                      continue;
                    }
                    r->crops.push_back({f, std::move(*c), {}});
                  }
                  r->image.release();
                  int64_t t2 = StepClock::Now();
                  steps.crop += t2 - t;
                  // Encode + write: PNG, lossless.
                  for (size_t i = 0; i < r->crops.size(); ++i) {
                    auto& co = r->crops[i];
                    for (size_t s = 0; s < opts.crop_sizes.size(); ++s) {
                      std::vector<uchar> png;
                      cv::imencode(".png", co.crop.images[s], png, {cv::IMWRITE_PNG_COMPRESSION, 3});
                      std::string rel = CropRelPath(detector_id, opts.crop_sizes[s], r->item.sha256, i);
                      Status ws_ok = WriteCrop(ws.Abs(rel), png);
                      if (!ws_ok.ok()) {
                        r->failure = "crop_write_error";
                        r->error = ws_ok.message();
                        return r;
                      }
                      co.paths.push_back(rel);
                    }
                    co.crop.images.clear();
                  }
                  steps.encode_write += StepClock::Now() - t2;
                  return r;
                })) &
            tbb::make_filter<std::shared_ptr<ImageResult>, void>(
                tbb::filter_mode::serial_out_of_order, Stated<1>([&](std::shared_ptr<ImageResult> r) {
                  if (!r->failure.empty()) {
                    summary.Fail(r->failure);
                  } else {
                    ++summary.done;
                    faces_total += static_cast<int64_t>(r->crops.size());
                    dropped_pad += r->dropped_pad;
                    if (!r->crops.empty()) ++with_faces;
                  }
                  Status s = writer.Submit([r, detector_id, &opts](db::Database& d) -> Status {
                    MF_ASSIGN_OR_RETURN(db::Stmt * done, d.Cached(
                        "INSERT OR REPLACE INTO detections_done(detector_id, image_sha256, n_faces, state, error) "
                        "VALUES(?,?,?,?,?)"));
                    done->Bind(1, detector_id).Bind(2, r->item.sha256).Bind(3, static_cast<int64_t>(r->crops.size()));
                    if (r->failure.empty())
                      done->Bind(4, "done").Bind(5, nullptr);
                    else
                      done->Bind(4, "failed").Bind(5, r->failure + ": " + r->error);
                    MF_RETURN_IF_ERROR(done->Run());
                    if (!r->failure.empty()) return Status::Ok();
                    MF_ASSIGN_OR_RETURN(db::Stmt * face, d.Cached(
                        "INSERT INTO faces(detector_id, image_sha256, idx, x, y, w, h, score, crop_x, crop_y, "
                        "crop_side, crop_path, crop_size, pad_frac, sharpness, mono_score, backend) "
                        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
                    MF_ASSIGN_OR_RETURN(db::Stmt * crop, d.Cached(
                        "INSERT OR REPLACE INTO face_crops(face_id, size, path) VALUES(?,?,?)"));
                    for (size_t i = 0; i < r->crops.size(); ++i) {
                      const auto& c = r->crops[i];
                      face->BindAll(detector_id, r->item.sha256, static_cast<int64_t>(i), c.face.box.x, c.face.box.y,
                                    c.face.box.width, c.face.box.height, c.face.score, c.crop.square.x,
                                    c.crop.square.y, c.crop.square.width, c.paths[0], opts.crop_sizes[0],
                                    c.crop.pad_frac, c.crop.sharpness, c.crop.mono_score, c.face.backend);
                      MF_RETURN_IF_ERROR(face->Run());
                      int64_t face_id = d.LastInsertRowid();
                      for (size_t s = 0; s < c.paths.size(); ++s) {
                        crop->BindAll(face_id, opts.crop_sizes[s], c.paths[s]);
                        MF_RETURN_IF_ERROR(crop->Run());
                      }
                    }
                    return Status::Ok();
                  });
                  if (!s.ok()) set_fatal(s);
                  progress.Advance(1, std::to_string(faces_total.load()) + " faces " +
                                          std::to_string(summary.failed) + " failed");
                }));
    tsan::Release(&g_edges.start);  // after the filters are built: TBB's threads read them
    tbb::parallel_pipeline(static_cast<size_t>(threads) * 2 + 1, filters);
    tsan::Acquire(&g_edges.end);
    Status fs = writer.Flush();
    if (!fs.ok()) set_fatal(fs);
  }
  if (faces_total.load() > 0) SyncFileSystem(ws.crops_dir());
  progress.Finish();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  summary.extra = {{"detector", name},
                   {"detector_id", detector_id},
                   {"faces", faces_total.load()},
                   {"images_with_faces", with_faces.load()},
                   {"faces_dropped_padding", dropped_pad.load()},
                   {"faces_per_s", summary.seconds > 0 ? faces_total.load() / summary.seconds : 0.0},
                   {"threads", threads},
                   {"detectors_loaded", pool.created()},
                   {"step_s", {{"decode", steps.decode / 1e9}, {"detect", steps.detect / 1e9},
                               {"crop", steps.crop / 1e9}, {"encode_write", steps.encode_write / 1e9}}}};
  if (!fatal.ok()) {
    summary.Fail("aborted");
    (void)db::FinishStageRun(db, run_id, summary);
    return fatal;
  }
  MF_RETURN_IF_ERROR(db::FinishStageRun(db, run_id, summary));
  return summary;
}

}  // namespace moeforge::detector
