#include "studio/demo_workspace.h"

#include <filesystem>
#include <fstream>
#include <random>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/hash.h"
#include "core/tag_schema.h"
#include "core/workspace.h"
#include "db/dataset.h"
#include "db/db.h"
#include "trainer/trainer.h"

namespace fs = std::filesystem;

namespace moeforge::studio {

namespace {

struct Look {
  int hair, eyes;
  bool smile, hat;
};

const char* kHair[] = {"blonde_hair", "black_hair", "pink_hair", "blue_hair", "silver_hair"};
const cv::Scalar kHairBgr[] = {{80, 220, 250}, {30, 30, 30}, {200, 150, 250}, {220, 80, 40}, {200, 200, 200}};
const char* kEyes[] = {"blue_eyes", "red_eyes", "green_eyes"};
const cv::Scalar kEyeBgr[] = {{255, 0, 0}, {0, 0, 255}, {0, 200, 0}};

cv::Mat DrawFace(const Look& l, int side) {
  cv::Mat img(side, side, CV_8UC3, cv::Scalar(215, 225, 245));
  const double s = side / 48.0;
  img(cv::Rect(0, 0, side, int(18 * s))).setTo(kHairBgr[l.hair]);
  cv::circle(img, {int(16 * s), int(28 * s)}, int(4 * s), kEyeBgr[l.eyes], -1);
  cv::circle(img, {int(32 * s), int(28 * s)}, int(4 * s), kEyeBgr[l.eyes], -1);
  if (l.smile) cv::ellipse(img, {int(24 * s), int(37 * s)}, {int(7 * s), int(4 * s)}, 0, 0, 180, {0, 0, 140}, 2);
  if (l.hat) img(cv::Rect(int(8 * s), 0, int(32 * s), int(6 * s))).setTo(cv::Scalar(40, 120, 40));
  return img;
}

}  // namespace

Status MakeDemoWorkspace(const std::string& root, const DemoWorkspaceOptions& o) {
  if (o.faces < 1 || o.distinct_crops < 1) return Status::InvalidArgument("faces and distinct_crops must be >= 1");
  Workspace ws(root);
  MF_RETURN_IF_ERROR(ws.CreateDirs());
  MF_ASSIGN_OR_RETURN(auto dbp, db::OpenWorkspace(ws, true));
  db::Database& d = *dbp;
  const TagSchema& schema = TagSchema::Default();
  std::mt19937 rng(17);
  MF_RETURN_IF_ERROR(d.Transaction([&]() -> Status {
    MF_RETURN_IF_ERROR(d.Exec(
        "INSERT INTO sources(id, kind, url) VALUES(1, 'danbooru', 'http://127.0.0.1:1');"
        "INSERT INTO detectors(id, name, model_sha256, params_json, created_at) "
        "VALUES(1, 'cascade:demo', 'de00', '{}', '2026-01-01T00:00:00Z')"));
    MF_ASSIGN_OR_RETURN(db::Stmt tg, d.Prepare("INSERT INTO taggers(id, name, model_sha256, params_json, schema_toml, "
                                               "created_at) VALUES(1, 'builtin:demo', 'ta00', '{}', ?, 'now')"));
    MF_RETURN_IF_ERROR(tg.Bind(1, schema.ToToml()).Run());
    MF_ASSIGN_OR_RETURN(db::Stmt img_row, d.Prepare(
        "INSERT INTO images(sha256, bytes, width, height, format, blob_path, added_at) VALUES(?,?,?,?,'png',?,'now')"));
    MF_ASSIGN_OR_RETURN(db::Stmt post_row, d.Prepare(
        "INSERT INTO posts(id, source_id, remote_id, rating, image_sha256, state, updated_at) "
        "VALUES(?, 1, ?, ?, ?, 'stored', 'now')"));
    MF_ASSIGN_OR_RETURN(db::Stmt src_tag, d.Prepare("INSERT OR IGNORE INTO source_tags(post_id, tag) VALUES(?, ?)"));
    MF_ASSIGN_OR_RETURN(db::Stmt done_row, d.Prepare(
        "INSERT INTO detections_done(detector_id, image_sha256, n_faces, state) VALUES(1, ?, ?, 'done')"));
    MF_ASSIGN_OR_RETURN(db::Stmt face_row, d.Prepare(
        "INSERT INTO faces(id, detector_id, image_sha256, idx, x, y, w, h, score, crop_path, crop_size, pad_frac, "
        "sharpness, mono_score, backend) VALUES(?, 1, ?, ?, ?, ?, ?, ?, ?, ?, 48, 0, ?, ?, 'cascade')"));
    MF_ASSIGN_OR_RETURN(db::Stmt tag_row, d.Prepare(
        "INSERT INTO face_tags(tagger_id, face_id, tag, score, present) VALUES(1, ?, ?, ?, ?)"));
    const char* ratings[] = {"general", "sensitive", "general", "questionable"};
    int64_t face_id = 0, post_id = 0;
    while (face_id < o.faces) {
      const int k = std::min<int64_t>(1 + static_cast<int>(rng() % 3 == 0) + static_cast<int>(rng() % 7 == 0),
                                      o.faces - face_id);
      const int W = 256, H = 192;
      cv::Mat canvas(H, W, CV_8UC3, cv::Scalar(150 + rng() % 100, 150 + rng() % 100, 150 + rng() % 100));
      std::vector<std::pair<Look, cv::Rect>> faces;
      for (int j = 0; j < k; ++j) {
        Look l{static_cast<int>(rng() % 5), static_cast<int>(rng() % 3), rng() % 3 == 0, rng() % 6 == 0};
        int side = 48 + static_cast<int>(rng() % 24);
        cv::Rect box(8 + j * 82 + static_cast<int>(rng() % 8), 10 + static_cast<int>(rng() % (H - side - 20)), side, side);
        DrawFace(l, side).copyTo(canvas(box));
        faces.emplace_back(l, box);
      }
      std::vector<uchar> png;
      cv::imencode(".png", canvas, png);
      const std::string bytes(png.begin(), png.end());
      const std::string sha = Sha256Hex(bytes);
      const std::string blob = ws.BlobPath(sha, true);
      fs::create_directories(fs::path(ws.Abs(blob)).parent_path());
      {
        std::ofstream f(ws.Abs(blob), std::ios::binary);
        f << bytes;
        if (!f) return Status::IoError("cannot write " + ws.Abs(blob));
      }
      MF_RETURN_IF_ERROR(img_row.BindAll(sha, static_cast<int64_t>(bytes.size()), W, H, blob).Run());
      ++post_id;
      MF_RETURN_IF_ERROR(post_row.BindAll(post_id, std::to_string(1000 + post_id), ratings[post_id % 4], sha).Run());
      MF_RETURN_IF_ERROR(src_tag.BindAll(post_id, std::string(k == 1 ? "solo" : std::to_string(k) + "girls")).Run());
      MF_RETURN_IF_ERROR(done_row.BindAll(sha, k).Run());
      for (int j = 0; j < k; ++j) {
        const auto& [l, box] = faces[static_cast<size_t>(j)];
        ++face_id;
        MF_RETURN_IF_ERROR(src_tag.BindAll(post_id, std::string(kHair[l.hair])).Run());
        MF_RETURN_IF_ERROR(src_tag.BindAll(post_id, std::string(kEyes[l.eyes])).Run());
        if (l.smile) MF_RETURN_IF_ERROR(src_tag.BindAll(post_id, std::string("smile")).Run());
        const int64_t crop_no = (face_id - 1) % o.distinct_crops;
        const std::string crop = "crops/demo_" + std::to_string(crop_no) + ".png";
        if (face_id - 1 < o.distinct_crops) {
          cv::Mat c;
          cv::resize(canvas(box), c, cv::Size(48, 48), 0, 0, cv::INTER_AREA);
          if (!cv::imwrite(ws.Abs(crop), c)) return Status::IoError("cannot write " + ws.Abs(crop));
        }
        const double det = 0.5 + 0.5 * (rng() % 1000) / 1000.0;
        MF_RETURN_IF_ERROR(face_row
                               .BindAll(face_id, sha, j, double(box.x), double(box.y), double(box.width),
                                        double(box.height), det, crop, 50.0 + rng() % 300, (rng() % 100) / 500.0)
                               .Run());
        for (const auto& tag : schema.tags()) {
          bool on = tag == kHair[l.hair] || tag == kEyes[l.eyes] || (tag == "smile" && l.smile) ||
                    (tag == "hat" && l.hat) || (tag == "long_hair" && l.hair % 2 == 0);
          double score = on ? 0.7 + (rng() % 300) / 1000.0 : (rng() % 300) / 1000.0;
          MF_RETURN_IF_ERROR(tag_row.BindAll(face_id, tag, score, on ? 1 : 0).Run());
        }
      }
    }
    return Status::Ok();
  }));
  MF_RETURN_IF_ERROR(db::CreateView(d, {"smiling", "smile", "", ""}));
  MF_RETURN_IF_ERROR(db::CreateView(d, {"big_faces", "face_size >= 56 and faces_in_image = 1", "", ""}));
  if (o.train_faces > 0)
    MF_RETURN_IF_ERROR(db::CreateView(d, {"train_subset", "face_id <= " + std::to_string(o.train_faces), "", ""}));
  dbp.reset();
  if (!o.train) return Status::Ok();
  trainer::TrainOptions t;
  t.run = "tiny";
  t.resolution = o.resolution;
  t.steps = o.train_steps;
  t.batch = 4;
  if (o.train_faces > 0) t.view = "train_subset";
  if (!o.full_size_generator) {
    t.z_dim = 16;
    t.g_channels = 8;
    t.g_blocks = 1;
    t.d_channels = 8;
    t.d_blocks = 1;
  }
  t.threads = 1;
  t.checkpoint_every = 2;
  t.snapshot_every = 2;
  t.sample_every = 2;
  auto sum = trainer::Train(ws, t);
  if (!sum.ok()) return sum.status().WithContext("training the demo run");
  // What `moeforge eval --json > WS/runs/tiny/eval.json` leaves, with made-up-free values:
  // only fields that say they are a fixture.
  std::ofstream(ws.runs_dir() + "/tiny/eval.json")
      << R"({"run":"tiny","step":)" << o.train_steps
      << R"(,"note":"fixture written by studio/demo_workspace.cpp, not a measurement","generated":0})";
  return Status::Ok();
}

}  // namespace moeforge::studio
