// Tests of the detect stage on real models (../shared/assets/models), real illustrations,
// and the small real-format ONNX fixtures made by scripts/make_detector_fixtures.py.
#include <gtest/gtest.h>

#include <signal.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/hash.h"
#include "db/db.h"
#include "demo_booru/render.h"
#include "detector/backends.h"
#include "detector/detector.h"

namespace fs = std::filesystem;
using namespace moeforge;
using namespace moeforge::detector;

namespace {

const std::string kAssets = std::string(MOEFORGE_SOURCE_DIR) + "/../shared/assets";
const std::string kFixtures = std::string(MOEFORGE_SOURCE_DIR) + "/tests/fixtures/detector";

class DetectorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::getenv("MOEFORGE_MODEL_PATH")) setenv("MOEFORGE_MODEL_PATH", (kAssets + "/models").c_str(), 1);
  }
  static std::string Illustration(const std::string& rel) { return kAssets + "/illustrations/" + rel; }
};

DetectOptions Only(const std::string& backend) {
  DetectOptions o;
  o.detector = backend;
  return o;
}

std::unique_ptr<FaceDetector> MustCreate(const DetectOptions& o) {
  auto d = FaceDetector::Create(o);
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return d.ok() ? std::move(*d) : nullptr;
}

TEST_F(DetectorTest, CascadeFindsTheOneFaceOfEachTalkingHeadPortrait) {
  auto det = MustCreate(Only("cascade"));
  ASSERT_TRUE(det);
  EXPECT_EQ(det->name(), "cascade:lbpcascade_animeface");
  EXPECT_EQ(det->model_sha256(), "9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30");
  for (const char* f : {"crypko_00.png", "crypko_03.png", "crypko_07.png", "lambda_00.png", "lambda_01.png"}) {
    cv::Mat img = cv::imread(Illustration(std::string("talking_head_anime_3/") + f));
    ASSERT_FALSE(img.empty()) << f;
    auto faces = det->Detect(img);
    ASSERT_TRUE(faces.ok()) << f;
    ASSERT_EQ(faces->size(), 1u) << f;
    const auto& b = (*faces)[0].box;
    // One character, face centred in the upper half of a 512 px portrait.
    double cx = b.x + b.width / 2, cy = b.y + b.height / 2;
    EXPECT_NEAR(cx, 256, 60) << f;
    EXPECT_GT(cy, 100) << f;
    EXPECT_LT(cy, 300) << f;
    EXPECT_GT(b.width, 60) << f;
    EXPECT_LT(b.width, 300) << f;
    EXPECT_GT((*faces)[0].score, 0) << f;
    EXPECT_LE((*faces)[0].score, 1) << f;
  }
}

// The counts of the reference run in ../shared/assets/SOURCES.md (README preprocessing).
TEST_F(DetectorTest, CascadeMatchesTheReferenceRunOnCsc420) {
  auto det = MustCreate(Only("cascade"));
  ASSERT_TRUE(det);
  const int expected[8] = {4, 0, 1, 6, 1, 1, 1, 1};
  for (int i = 1; i <= 8; ++i) {
    std::string f = Illustration("csc420_detection/detect_0" + std::to_string(i) + (i == 8 ? ".png" : ".jpg"));
    cv::Mat img = cv::imread(f);
    ASSERT_FALSE(img.empty()) << f;
    auto faces = det->Detect(img);
    ASSERT_TRUE(faces.ok()) << f;
    EXPECT_EQ(static_cast<int>(faces->size()), expected[i - 1]) << f;
  }
}

// Every backend's calibrated box means the same face: YuNet's and the Haar cascade's
// boxes land on the cascade's.
TEST_F(DetectorTest, YunetAndHaarBoxesAgreeWithTheCascadeAfterCalibration) {
  auto cascade = MustCreate(Only("cascade"));
  auto yunet = MustCreate(Only("yunet"));
  auto haar = MustCreate(Only("haar"));
  ASSERT_TRUE(cascade && yunet && haar);
  EXPECT_EQ(yunet->model_sha256(), "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0");
  int yunet_agree = 0, haar_agree = 0;
  for (const char* f : {"crypko_00.png", "crypko_01.png", "crypko_02.png", "crypko_03.png", "crypko_04.png"}) {
    cv::Mat img = cv::imread(Illustration(std::string("talking_head_anime_3/") + f));
    auto c = cascade->Detect(img);
    auto y = yunet->Detect(img);
    auto h = haar->Detect(img);
    ASSERT_TRUE(c.ok() && y.ok() && h.ok()) << f;
    ASSERT_EQ(c->size(), 1u) << f;
    if (y->size() == 1 && IoU((*y)[0].box, (*c)[0].box) > 0.5) ++yunet_agree;
    if (h->size() == 1 && IoU((*h)[0].box, (*c)[0].box) > 0.5) ++haar_agree;
  }
  EXPECT_GE(yunet_agree, 4);
  EXPECT_GE(haar_agree, 4);
}

TEST_F(DetectorTest, FusionIsTheDefaultAndKeepsOneBoxPerFace) {
  auto det = MustCreate({});
  ASSERT_TRUE(det);
  EXPECT_EQ(det->name(), "cascade:lbpcascade_animeface+yunet:face_detection_yunet_2026may");
  cv::Mat img = cv::imread(Illustration("talking_head_anime_3/crypko_01.png"));
  auto faces = det->Detect(img);
  ASSERT_TRUE(faces.ok());
  ASSERT_EQ(faces->size(), 1u);
  EXPECT_EQ((*faces)[0].backend, "cascade+yunet");

  // Four children on a beach: the cascade alone finds two, the fusion all four, once each.
  cv::Mat beach = cv::imread(Illustration("anime_head_detector/57032.jpg"));
  auto alone = MustCreate(Only("cascade"))->Detect(beach);
  auto fused = det->Detect(beach);
  ASSERT_TRUE(alone.ok() && fused.ok());
  EXPECT_EQ(alone->size(), 2u);
  ASSERT_EQ(fused->size(), 4u);
  for (size_t i = 0; i < fused->size(); ++i)
    for (size_t j = i + 1; j < fused->size(); ++j) EXPECT_LT(IoU((*fused)[i].box, (*fused)[j].box), 0.1);
}

// A bright 32 px block on black is the fixture model's "face": exactly its grid cell.
TEST_F(DetectorTest, YoloV5LayoutFixtureDecodesBoxesThroughTheLetterbox) {
  DetectOptions o;
  o.detector = "yolo";
  o.model = kFixtures + "/tiny_yolov5_face.onnx";
  o.input_size = 128;
  o.min_face = 8;
  o.score_threshold = 0.5;
  auto det = MustCreate(o);
  ASSERT_TRUE(det);
  struct Case {
    cv::Size size;
    cv::Rect block;     // drawn white
    cv::Rect2d expect;  // the box in image pixels
  } cases[] = {
      {{128, 128}, {64, 32, 32, 32}, {64, 32, 32, 32}},
      {{256, 256}, {128, 64, 64, 64}, {128, 64, 64, 64}},
      // 256x128 letterboxes to 128x64 at canvas y 32: block (64,0) 64x64 -> cell (1,1).
      {{256, 128}, {64, 0, 64, 64}, {64, 0, 64, 64}},
  };
  for (const auto& c : cases) {
    cv::Mat img(c.size, CV_8UC3, cv::Scalar(0, 0, 0));
    img(c.block).setTo(cv::Scalar(255, 255, 255));
    auto faces = det->Detect(img);
    ASSERT_TRUE(faces.ok()) << faces.status().ToString();
    ASSERT_EQ(faces->size(), 1u) << c.size;
    const auto& b = (*faces)[0].box;
    EXPECT_NEAR(b.x, c.expect.x, 1) << c.size;
    EXPECT_NEAR(b.y, c.expect.y, 1) << c.size;
    EXPECT_NEAR(b.width, c.expect.width, 1) << c.size;
    EXPECT_NEAR(b.height, c.expect.height, 1) << c.size;
    EXPECT_GT((*faces)[0].score, 0.9);
  }
  cv::Mat dark(128, 128, CV_8UC3, cv::Scalar(0, 0, 0));
  auto none = det->Detect(dark);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(DetectorTest, NmsDropsTheWeakerOfOverlappingBoxes) {
  std::vector<RawBox> boxes = {{{0, 0, 10, 10}, 0.5}, {{1, 1, 10, 10}, 0.9}, {{50, 50, 10, 10}, 0.3}};
  auto keep = Nms(boxes, 0.3);
  ASSERT_EQ(keep.size(), 2u);
  EXPECT_EQ(keep[0], 1);
  EXPECT_EQ(keep[1], 2);
}

TEST_F(DetectorTest, ModelErrorsNameTheModelAndWhatToDo) {
  struct Case {
    std::string detector, model;
    Status::Code code;
    std::string must_contain;
  } cases[] = {
      {"cascade", "no_such_cascade.xml", Status::Code::kNotFound, "no_such_cascade.xml"},
      {"yolo", kFixtures + "/layernorm_opset17.onnx", Status::Code::kUnsupported, "layernorm_opset17.onnx"},
      {"yolo", kFixtures + "/layernorm_opset17.onnx", Status::Code::kUnsupported, "LayerNormalization"},
      {"yunet", kAssets + "/models/lbpcascade_animeface.xml", Status::Code::kUnsupported, "lbpcascade_animeface.xml"},
      {"cascade", kFixtures + "/tiny_yolov5_face.onnx", Status::Code::kUnsupported, "not an OpenCV cascade"},
      {"yunet", kFixtures + "/tiny_yolov5_face.onnx", Status::Code::kUnsupported, "not a YuNet"},
      {"yolo", "", Status::Code::kInvalidArgument, "--model"},
  };
  for (const auto& c : cases) {
    DetectOptions o;
    o.detector = c.detector;
    o.model = c.model;
    auto d = FaceDetector::Create(o);
    ASSERT_FALSE(d.ok()) << c.detector << " " << c.model;
    EXPECT_EQ(d.status().code(), c.code) << d.status().ToString();
    EXPECT_NE(d.status().message().find(c.must_contain), std::string::npos) << d.status().ToString();
  }
}

TEST_F(DetectorTest, OptionsAreValidated) {
  struct Case {
    void (*set)(DetectOptions&);
    const char* what;
  } cases[] = {
      {[](DetectOptions& o) { o.detector = "ssd"; }, "unknown backend"},
      {[](DetectOptions& o) { o.detector = "cascade+"; }, "empty fusion part"},
      {[](DetectOptions& o) { o.detector = "cascade+yunet", o.model = "a.xml"; }, "one model for two backends"},
      {[](DetectOptions& o) { o.crop_sizes = {}; }, "no crop size"},
      {[](DetectOptions& o) { o.crop_sizes = {4}; }, "tiny crop"},
      {[](DetectOptions& o) { o.margin = -0.1; }, "negative margin"},
      {[](DetectOptions& o) { o.max_pad = 1.5; }, "max pad above 1"},
      {[](DetectOptions& o) { o.scale_factor = 1.0; }, "scale factor 1"},
      {[](DetectOptions& o) { o.input_size = 100; }, "input size not /32"},
      {[](DetectOptions& o) { o.threads = -1; }, "negative threads"},
  };
  EXPECT_TRUE(ValidateOptions({}).ok());
  for (const auto& c : cases) {
    DetectOptions o;
    c.set(o);
    Status s = ValidateOptions(o);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << c.what;
  }
}

TEST_F(DetectorTest, CropIsASquareWithHairRoomPaddedAndAreaResized) {
  cv::Mat img(400, 400, CV_8UC3);
  cv::randu(img, 0, 255);
  DetectOptions o;
  o.crop_sizes = {64, 128};
  o.margin = 0.5;
  // A face in the middle: no padding, side = 2 x face.
  auto c = CropFace(img, {150, 150, 100, 100}, o);
  ASSERT_TRUE(c.ok());
  EXPECT_DOUBLE_EQ(c->pad_frac, 0);
  EXPECT_NEAR(c->square.width, 200, 1e-9);
  EXPECT_LT(c->square.y + c->square.height / 2, 200);  // raised for the hair
  ASSERT_EQ(c->images.size(), 2u);
  EXPECT_EQ(c->images[0].size(), cv::Size(64, 64));
  EXPECT_EQ(c->images[1].size(), cv::Size(128, 128));
  // A face at the left edge: a quarter of the square lies outside.
  o.max_pad = 0.3;
  auto edge = CropFace(img, {0, 150, 100, 100}, o);
  ASSERT_TRUE(edge.ok());
  EXPECT_NEAR(edge->pad_frac, 0.25, 0.01);
  // In the corner: more padding than the limit allows.
  auto corner = CropFace(img, {0, 0, 100, 100}, o);
  EXPECT_FALSE(corner.ok());
  EXPECT_EQ(corner.status().code(), Status::Code::kInvalidArgument);
}

TEST_F(DetectorTest, WholeTreatsAnAlreadyCroppedFaceAsOneFaceWhoseCropIsTheImage) {
  // A 96 px Getchu-style face and a wide image: the crop is the centred square, unpadded,
  // and at the image's own size it is the same pixels.
  cv::Mat face = cv::imread(kAssets + "/faces/mlds_extra_96/33431.jpg");
  ASSERT_FALSE(face.empty());
  cv::Mat wide(90, 150, CV_8UC3);
  cv::randu(wide, 0, 255);
  for (double margin : {0.0, 0.35, 1.0}) {
    DetectOptions o = Only("whole");
    o.margin = margin;
    o.crop_sizes = {96};
    auto d = MustCreate(o);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->name(), "whole:whole");
    auto faces = d->Detect(face);
    ASSERT_TRUE(faces.ok());
    ASSERT_EQ(faces->size(), 1u);
    auto c = CropFace(face, (*faces)[0].box, o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_NEAR(c->pad_frac, 0, 1e-6) << margin;
    EXPECT_EQ(cv::norm(c->images[0], face, cv::NORM_INF), 0) << margin;

    auto w = d->Detect(wide);
    ASSERT_TRUE(w.ok());
    ASSERT_EQ(w->size(), 1u);
    auto cw = CropFace(wide, (*w)[0].box, o);
    ASSERT_TRUE(cw.ok());
    EXPECT_NEAR(cw->square.x, 30, 1e-6);
    EXPECT_NEAR(cw->square.y, 0, 1e-6);
    EXPECT_NEAR(cw->square.width, 90, 1e-6);
  }
  // It takes no model.
  DetectOptions bad = Only("whole");
  bad.model = "lbpcascade_animeface";
  EXPECT_FALSE(FaceDetector::Create(bad).ok());
}

TEST_F(DetectorTest, QualityColumnsSeparateMonochromeAndBlur) {
  cv::Mat colour = cv::imread(Illustration("talking_head_anime_3/crypko_02.png"));
  ASSERT_FALSE(colour.empty());
  cv::Mat grey, grey3, blurred;
  cv::cvtColor(colour, grey, cv::COLOR_BGR2GRAY);
  cv::cvtColor(grey, grey3, cv::COLOR_GRAY2BGR);
  cv::GaussianBlur(colour, blurred, cv::Size(0, 0), 4);
  cv::Rect2d face(180, 120, 150, 150);
  DetectOptions o;
  auto c = CropFace(colour, face, o), g = CropFace(grey3, face, o), b = CropFace(blurred, face, o);
  ASSERT_TRUE(c.ok() && g.ok() && b.ok());
  EXPECT_GT(g->mono_score, 0.95);
  EXPECT_LT(c->mono_score, 0.5);
  EXPECT_LT(b->sharpness, c->sharpness / 4);
}

// ---- The stage on a workspace ----

class DetectStageTest : public DetectorTest {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("mf_detect_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    ws_ = std::make_unique<Workspace>(root_.string());
    ASSERT_TRUE(ws_->CreateDirs().ok());
    auto db = db::OpenWorkspace(*ws_, true);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(*db);
  }
  void TearDown() override {
    db_.reset();
    fs::remove_all(root_);
  }
  // Stores bytes the way the crawler does: a blob named by its hash plus an images row.
  std::string AddImage(const std::string& bytes, bool write_blob = true) {
    std::string sha = Sha256Hex(bytes);
    if (write_blob) EXPECT_TRUE(WriteFileAtomic(ws_->BlobPath(sha), bytes.data(), bytes.size()).ok());
    auto st = db_->Prepare(
        "INSERT INTO images(sha256, bytes, width, height, format, blob_path, added_at) VALUES(?,?,?,?,?,?,?)");
    EXPECT_TRUE(st.ok());
    st->BindAll(sha, static_cast<int64_t>(bytes.size()), 512, 512, "png", ws_->BlobPath(sha, true),
                "2026-01-01T00:00:00Z");
    EXPECT_TRUE(st->Run().ok());
    return sha;
  }
  std::string FileBytes(const std::string& path) { return *ReadFile(path); }
  int64_t Count(const std::string& sql) { return *db_->QueryInt(sql); }

  fs::path root_;
  std::unique_ptr<Workspace> ws_;
  std::unique_ptr<db::Database> db_;
};

TEST_F(DetectStageTest, CropsEveryFaceRecordsFailuresAndIsIncremental) {
  std::string png = FileBytes(Illustration("talking_head_anime_3/crypko_00.png"));
  AddImage(png);
  AddImage(FileBytes(Illustration("talking_head_anime_3/crypko_05.png")));
  AddImage(FileBytes(Illustration("csc420_detection/detect_04.jpg")));  // 6 faces
  std::string truncated = AddImage(png.substr(0, png.size() / 3).append(64, '\0'));
  AddImage("");                          // an empty file
  AddImage("not stored", /*write_blob=*/false);  // the blob is missing

  DetectOptions o;
  o.crop_sizes = {64, 128};
  o.threads = 2;
  auto s = Detect(*ws_, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->done, 3);
  EXPECT_EQ(s->failed, 3);
  EXPECT_EQ(s->failures.at("corrupt_image") + s->failures.at("empty_file") + s->failures.at("missing_blob"), 3);
  EXPECT_EQ(s->failures.at("empty_file"), 1);
  EXPECT_EQ(s->failures.at("missing_blob"), 1);

  int64_t faces = Count("SELECT count(*) FROM faces");
  EXPECT_GE(faces, 2 + 5);  // one per portrait, most of detect_04's six (edge ones may be dropped)
  EXPECT_EQ(Count("SELECT count(*) FROM face_crops"), 2 * faces);
  EXPECT_EQ(Count("SELECT count(*) FROM v_faces"), faces);
  EXPECT_EQ(Count("SELECT count(*) FROM detections_done WHERE state='failed'"), 3);
  EXPECT_EQ(Count("SELECT count(*) FROM detections_done WHERE state='done'"), 3);
  EXPECT_EQ(Count("SELECT count(*) FROM detections_done WHERE image_sha256='" + truncated +
                  "' AND error LIKE 'corrupt_image%'"),
            1);
  EXPECT_EQ(Count("SELECT count(*) FROM faces WHERE sharpness > 0 AND mono_score BETWEEN 0 AND 1 AND "
                  "pad_frac BETWEEN 0 AND 0.3 AND score > 0 AND w >= 24"),
            faces);
  EXPECT_EQ(Count("SELECT count(*) FROM stage_runs WHERE stage='detect' AND done=3 AND failed=3"), 1);

  // Every crop is a lossless PNG of the requested size.
  auto st = db_->Prepare("SELECT size, path FROM face_crops");
  ASSERT_TRUE(st.ok());
  int checked = 0;
  while (*st->Step()) {
    cv::Mat crop = cv::imread(ws_->Abs(st->Text(1)), cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(crop.empty()) << st->Text(1);
    EXPECT_EQ(crop.cols, st->Int(0));
    EXPECT_EQ(crop.rows, st->Int(0));
    EXPECT_EQ(st->Text(1).substr(st->Text(1).size() - 4), ".png");
    ++checked;
  }
  EXPECT_EQ(checked, 2 * faces);

  // Again: nothing left to do but the image whose blob is still missing (a fault of the
  // workspace, asked for again on each run), nothing duplicated.
  auto again = Detect(*ws_, o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->done, 0);
  EXPECT_EQ(again->failed, 1);
  EXPECT_EQ(again->failures.at("missing_blob"), 1);
  EXPECT_EQ(again->skipped, 5);
  EXPECT_EQ(Count("SELECT count(*) FROM faces"), faces);

  // A second detector adds its own rows beside the first's.
  DetectOptions y = o;
  y.detector = "yunet";
  auto second = Detect(*ws_, y);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->done, 3);
  EXPECT_EQ(Count("SELECT count(*) FROM detectors"), 2);
  EXPECT_GT(Count("SELECT count(*) FROM faces"), faces);
  EXPECT_EQ(Count("SELECT count(DISTINCT detector) FROM v_faces"), 2);
}

TEST_F(DetectStageTest, AMissingModelFailsBeforeTouchingAnything) {
  AddImage(FileBytes(Illustration("talking_head_anime_3/crypko_00.png")));
  DetectOptions o = Only("cascade");
  o.model = "/nonexistent/cascade.xml";
  auto s = Detect(*ws_, o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Status::Code::kNotFound);
  EXPECT_NE(s.status().message().find("/nonexistent/cascade.xml"), std::string::npos);
  EXPECT_EQ(Count("SELECT count(*) FROM detections_done"), 0);
}

// SIGKILL the real binary mid-run, run it again: every image ends up done exactly once,
// every face row has its crop, nothing is duplicated.
TEST_F(DetectStageTest, ResumesAfterSigkillWithoutLosingOrDuplicating) {
  const char* env = std::getenv("MOEFORGE_BIN");
  std::string bin = env ? env : std::string(MOEFORGE_BINARY_DIR) + "/cli/moeforge";
  ASSERT_TRUE(fs::exists(bin)) << "build the moeforge binary first: " << bin;
  const int kImages = 30;
  for (int id = 1; id <= kImages; ++id) AddImage(demo::RenderPost(7, id).encoded);
  int64_t distinct = Count("SELECT count(*) FROM images");
  db_.reset();  // the child writes; we only read from here on

  auto run = [&](bool kill_early) {
    pid_t pid = fork();
    if (pid == 0) {
      int devnull = ::open("/dev/null", O_WRONLY);
      dup2(devnull, 1);
      dup2(devnull, 2);
      execl(bin.c_str(), bin.c_str(), "detect", "-w", root_.c_str(), "--threads", "2", static_cast<char*>(nullptr));
      _exit(127);
    }
    if (kill_early) {
      auto db = db::Database::Open(ws_->db_path());
      for (int i = 0; i < 600; ++i) {
        auto n = (*db)->QueryInt("SELECT count(*) FROM detections_done");
        if (n.ok() && *n >= 3) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      kill(pid, SIGKILL);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
  };
  int killed = run(true);
  EXPECT_TRUE(WIFSIGNALED(killed));
  auto db = db::Database::Open(ws_->db_path());
  ASSERT_TRUE(db.ok());
  int64_t after_kill = *(*db)->QueryInt("SELECT count(*) FROM detections_done");
  EXPECT_LT(after_kill, distinct) << "the run finished before the kill: make the test's workload bigger";
  int finished = run(false);
  ASSERT_TRUE(WIFEXITED(finished));
  EXPECT_EQ(WEXITSTATUS(finished), 0);
  EXPECT_EQ(*(*db)->QueryInt("SELECT count(*) FROM detections_done WHERE state='done'"), distinct);
  EXPECT_EQ(*(*db)->QueryInt("SELECT count(*) FROM (SELECT image_sha256, idx FROM faces GROUP BY 1, 2 HAVING count(*) > 1)"), 0);
  EXPECT_EQ(*(*db)->QueryInt("SELECT coalesce(sum(n_faces), 0) FROM detections_done"),
            *(*db)->QueryInt("SELECT count(*) FROM faces"));
  EXPECT_GT(*(*db)->QueryInt("SELECT count(*) FROM faces"), distinct / 2);
  auto st = (*db)->Prepare("SELECT crop_path FROM faces");
  ASSERT_TRUE(st.ok());
  while (*st->Step()) EXPECT_TRUE(fs::exists(ws_->Abs(st->Text(0)))) << st->Text(0);
  EXPECT_EQ(*(*db)->QueryInt("SELECT count(*) FROM stage_runs WHERE stage='detect' AND finished_at IS NOT NULL"), 1);
}

}  // namespace
