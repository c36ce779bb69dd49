// Our LBP cascade evaluator against cv::CascadeClassifier (OpenCV 4.6) on lbpcascade_animeface:
// the same rects and neighbour counts, on the real illustrations, demo booru posts, other
// parameters and awkward image sizes, by the AVX2 path and by the scalar one.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <opencv2/core/utility.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

#include "core/models.h"
#include "demo_booru/render.h"
#include "detector/backends.h"
#include "detector/lbp_cascade.h"

namespace fs = std::filesystem;
using namespace moeforge;
using namespace moeforge::detector;

namespace {

const std::string kAssets = std::string(MOEFORGE_SOURCE_DIR) + "/../shared/assets";

struct Params {
  double scale = 1.1;  // the backend's defaults (DetectOptions)
  int neighbours = 5;
  cv::Size min_size{24, 24};
  cv::Size max_size{};
  std::string Name() const {
    std::ostringstream s;
    s << "scale " << scale << " neighbours " << neighbours << " min " << min_size << " max " << max_size;
    return s.str();
  }
};

// (x, y, w, h, count), sorted: detectMultiScale's output as a set.
using Found = std::vector<std::array<int, 5>>;
Found Sorted(const std::vector<cv::Rect>& r, const std::vector<int>& n) {
  Found out;
  for (size_t i = 0; i < r.size(); ++i) out.push_back({r[i].x, r[i].y, r[i].width, r[i].height, n[i]});
  std::sort(out.begin(), out.end());
  return out;
}
std::string Show(const Found& f) {
  std::ostringstream s;
  for (const auto& a : f) s << "(" << a[0] << "," << a[1] << " " << a[2] << "x" << a[3] << " n" << a[4] << ") ";
  return s.str();
}

// The backend's preprocessing: grey, equalised.
cv::Mat Prepare(const cv::Mat& bgr) {
  cv::Mat grey;
  if (bgr.channels() == 1)
    grey = bgr.clone();
  else
    cv::cvtColor(bgr, grey, bgr.channels() == 4 ? cv::COLOR_BGRA2GRAY : cv::COLOR_BGR2GRAY);
  cv::equalizeHist(grey, grey);
  return grey;
}

class LbpCascadeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::getenv("MOEFORGE_MODEL_PATH")) setenv("MOEFORGE_MODEL_PATH", (kAssets + "/models").c_str(), 1);
  }
  void SetUp() override {
    auto path = ResolveModel("lbpcascade_animeface");
    ASSERT_TRUE(path.ok()) << path.status().ToString();
    path_ = *path;
    auto c = LbpCascade::Load(path_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    ours_ = std::make_unique<LbpCascade>(std::move(*c));
    ASSERT_TRUE(opencv_.load(path_));
  }

  Found OpenCv(const cv::Mat& img, const Params& p) {
    std::vector<cv::Rect> r;
    std::vector<int> n;
    opencv_.detectMultiScale(img, r, n, p.scale, p.neighbours, 0, p.min_size, p.max_size);
    return Sorted(r, n);
  }
  Found Ours(const cv::Mat& img, const Params& p, bool scalar) {
    ours_->ForceScalar(scalar);
    auto d = ours_->DetectMultiScale(img, p.scale, p.neighbours, p.min_size, p.max_size);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    if (!d.ok()) return {};
    return Sorted(d->objects, d->num_detections);
  }
  // Both of our paths equal OpenCV on `img`; returns how many objects OpenCV found.
  size_t ExpectSame(const cv::Mat& img, const Params& p, const std::string& what) {
    Found want = OpenCv(img, p);
    Found simd = Ours(img, p, false);
    const std::string isa = ours_->isa_name();
    Found scalar = Ours(img, p, true);
    EXPECT_EQ(simd, want) << what << " " << img.size() << " " << p.Name() << " (" << isa << ")\n ours:   "
                          << Show(simd) << "\n opencv: " << Show(want);
    EXPECT_EQ(scalar, want) << what << " " << img.size() << " " << p.Name() << " (scalar)\n ours:   "
                            << Show(scalar) << "\n opencv: " << Show(want);
    return want.size();
  }

  std::string path_;
  std::unique_ptr<LbpCascade> ours_;
  cv::CascadeClassifier opencv_;
};

std::vector<std::string> RealIllustrations() {
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(kAssets + "/illustrations")) {
    std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".jpg" || ext == ".png")) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

cv::Mat DemoPost(int id) { return demo::RenderPost(1, id).bgr; }

TEST_F(LbpCascadeTest, LoadsLbpcascadeAnimeface) {
  EXPECT_EQ(ours_->window(), cv::Size(24, 24));
  EXPECT_EQ(ours_->num_stages(), 20);
  EXPECT_EQ(ours_->window(), opencv_.getOriginalWindowSize());
  EXPECT_EQ(opencv_.getFeatureType(), 1);  // cv::FeatureEvaluator::LBP (a private header)
  // Where the CPU lacks AVX2 the scalar path is all there is.
  if (__builtin_cpu_supports("avx2")) {
    EXPECT_EQ(ours_->isa(), LbpCascade::Isa::kAvx2);
  }
}

// The 29 real illustrations (../shared/assets/SOURCES.md), with the backend's parameters,
// and with minNeighbors 0: no grouping, so every raw window that passes the cascade is
// compared (as a multiset), the strictest check of the scan itself. The scalar path,
// which is as slow as OpenCV, is compared on the raw windows only: what it shares with
// the AVX2 path after them (grouping, clipping) is checked by the AVX2 path's runs.
TEST_F(LbpCascadeTest, SameAsOpenCvOnTheRealIllustrations) {
  auto files = RealIllustrations();
  ASSERT_EQ(files.size(), 29u);
  size_t objects = 0, raw = 0;
  Params raw_params;
  raw_params.neighbours = 0;
  for (const auto& f : files) {
    cv::Mat img = cv::imread(f);
    ASSERT_FALSE(img.empty()) << f;
    cv::Mat grey = Prepare(img);
    Found want = OpenCv(grey, Params{}), simd = Ours(grey, Params{}, false);
    EXPECT_EQ(simd, want) << f << " " << ours_->isa_name() << "\n ours:   " << Show(simd)
                          << "\n opencv: " << Show(want);
    objects += want.size();
    raw += ExpectSame(grey, raw_params, f);
  }
  // Not vacuous: the cascade finds faces here (88 with the backend's settings, NOTES.md).
  EXPECT_GT(objects, 50u);
  EXPECT_GT(raw, 1000u);
}

TEST_F(LbpCascadeTest, SameAsOpenCvOnDemoPosts) {
  size_t objects = 0, raw = 0;
  Params raw_params;
  raw_params.neighbours = 0;
  for (int id = 1; id <= 40; ++id) {
    cv::Mat grey = Prepare(DemoPost(id));
    objects += ExpectSame(grey, Params{}, "demo post " + std::to_string(id));
    raw += ExpectSame(grey, raw_params, "demo post " + std::to_string(id));
  }
  EXPECT_GT(objects, 20u);
  EXPECT_GT(raw, 500u);
}

// The AVX2 path sums leaves in float and redoes in double only the sums too close to a
// threshold to call; with the margin widened, every sum is redone, and that path must
// agree with OpenCV as well.
TEST_F(LbpCascadeTest, SameAsOpenCvWhenEveryStageSumIsRedoneInDouble) {
  ours_->ScaleFloatMarginForTest(1e9);
  Params raw;
  raw.neighbours = 0;
  size_t found = 0;
  for (int id = 1; id <= 40; id += 4) {
    cv::Mat grey = Prepare(DemoPost(id));
    found += ExpectSame(grey, Params{}, "demo post " + std::to_string(id));
    found += ExpectSame(grey, raw, "demo post " + std::to_string(id));
  }
  cv::Mat real = Prepare(cv::imread(kAssets + "/illustrations/csc420_detection/detect_04.jpg"));
  found += ExpectSame(real, raw, "detect_04");
  EXPECT_GT(found, 100u);
}

// Other scale factors (other scale lists and roundings, steps of 1 from scale 2 on),
// neighbour thresholds, and size limits (including minSize == maxSize between two scales:
// OpenCV then takes the nearest scale).
TEST_F(LbpCascadeTest, SameAsOpenCvWithOtherParameters) {
  std::vector<Params> variants;
  auto add = [&](double scale, int n, cv::Size mn, cv::Size mx) {
    Params p;
    p.scale = scale, p.neighbours = n, p.min_size = mn, p.max_size = mx;
    variants.push_back(p);
  };
  add(1.05, 5, {24, 24}, {});
  add(1.2, 5, {24, 24}, {});
  add(1.2, 0, {24, 24}, {});
  add(1.1, 3, {24, 24}, {});
  add(1.1, 3, {48, 40}, {200, 220});
  add(1.1, 0, {50, 50}, {50, 50});
  add(1.3, 1, {0, 0}, {});
  add(2.0, 0, {0, 0}, {});  // scale exactly 2: step 1 from the second scale on
  // The real illustrations up to 0.6 Mpx (16 of the 29; the larger ones are slow in
  // OpenCV and the scalar path, and add nothing these do not test), 8 demo posts.
  std::vector<cv::Mat> images;
  for (const auto& f : RealIllustrations()) {
    cv::Mat m = Prepare(cv::imread(f));
    if (m.total() <= 600000) images.push_back(m);
  }
  EXPECT_GE(images.size(), 12u);
  for (int id = 1; id <= 40; id += 5) images.push_back(Prepare(DemoPost(id)));
  size_t found = 0;
  for (const auto& p : variants)
    for (size_t i = 0; i < images.size(); ++i) found += ExpectSame(images[i], p, "image " + std::to_string(i));
  EXPECT_GT(found, 100u);
}

// Sizes around the window (24) and the step/stripe arithmetic: smaller than the window,
// one pixel wide or high, exactly the window, odd sizes; whole images resized and crops
// (a crop is a non-continuous Mat), plus a BGR image given as it is.
TEST_F(LbpCascadeTest, SameAsOpenCvOnAwkwardSizes) {
  cv::Mat src = Prepare(cv::imread(kAssets + "/illustrations/csc420_detection/detect_04.jpg"));
  ASSERT_FALSE(src.empty());
  const cv::Size sizes[] = {{1, 1},   {10, 10},  {23, 23},  {1, 300},  {300, 1},  {23, 300}, {300, 23},
                            {24, 24}, {25, 25},  {24, 300}, {300, 24}, {25, 57},  {57, 25},  {47, 47},
                            {48, 49}, {55, 56},  {56, 55},  {77, 101}, {101, 77}, {129, 33}, {33, 129},
                            {255, 257}, {257, 255}, {331, 199}, {199, 331}, {511, 97}};
  Params raw;
  raw.neighbours = 0;
  Params loose;
  loose.neighbours = 0;
  loose.min_size = {0, 0};
  loose.scale = 1.07;
  size_t found = 0;
  for (const auto& sz : sizes) {
    cv::Mat resized;
    cv::resize(src, resized, sz, 0, 0, cv::INTER_AREA);
    found += ExpectSame(resized, Params{}, "resized");
    found += ExpectSame(resized, raw, "resized");
    found += ExpectSame(resized, loose, "resized");
    if (sz.width <= src.cols && sz.height <= src.rows) {
      cv::Mat crop = src(cv::Rect((src.cols - sz.width) / 3, (src.rows - sz.height) / 2, sz.width, sz.height));
      found += ExpectSame(crop, raw, "crop");
      found += ExpectSame(crop, loose, "crop");
    }
  }
  EXPECT_GT(found, 100u);
  cv::Mat bgr = cv::imread(kAssets + "/illustrations/anime_head_detector/57032.jpg");
  ExpectSame(bgr, Params{}, "bgr");
  ExpectSame(bgr, raw, "bgr");
}

// Our fused resize + integral against cv::resize(INTER_LINEAR_EXACT) + cv::integral, in
// both scan layouts and both instruction sets, over many size pairs (the scales' sizes
// and some that are not: upscales, one axis unchanged, exact halves).
TEST_F(LbpCascadeTest, ScaledIntegralIsCvResizeThenCvIntegral) {
  cv::Mat src(97, 131, CV_8U);
  cv::randu(src, 0, 256);
  cv::Mat real = Prepare(cv::imread(kAssets + "/illustrations/anime_head_detector/57032.jpg"));
  std::vector<std::pair<cv::Mat, cv::Size>> cases;
  for (const cv::Mat& m : {src, real}) {
    for (double f = 1; f < 40; f *= 1.05) {
      cv::Size s(cvRound(m.cols / static_cast<float>(f)), cvRound(m.rows / static_cast<float>(f)));
      if (s.width >= 1 && s.height >= 1) cases.push_back({m, s});
    }
    for (cv::Size s : {cv::Size(m.cols, m.rows / 2), cv::Size(m.cols / 2, m.rows), cv::Size(m.cols * 2, m.rows + 3),
                       cv::Size(1, 1), cv::Size(1, m.rows), cv::Size(m.cols, 1), cv::Size(m.cols - 1, m.rows - 1)})
      cases.push_back({m, s});
  }
  cv::Mat even = src(cv::Rect(0, 0, 130, 96));  // exact halves: cv::resize goes INTER_AREA
  cases.push_back({even, cv::Size(65, 48)});
  int checked = 0;
  for (const auto& [m, size] : cases) {
    cv::Mat resized, want;
    cv::resize(m, resized, size, 0, 0, cv::INTER_LINEAR_EXACT);
    cv::integral(resized, want, CV_32S);
    for (int step : {1, 2})
      for (auto isa : {LbpCascade::Isa::kScalar, LbpCascade::Isa::kAvx2}) {
        cv::Mat got = LbpCascade::ScaledIntegral(m, size, step, isa), expect = want;
        if (got.type() == CV_16S) {  // the AVX2 path keeps the integral modulo 2^16
          expect = cv::Mat(want.size(), CV_16S);
          for (int y = 0; y < want.rows; ++y)
            for (int x = 0; x < want.cols; ++x)
              expect.at<int16_t>(y, x) = static_cast<int16_t>(static_cast<uint32_t>(want.at<int32_t>(y, x)));
        }
        ASSERT_EQ(got.size(), expect.size());
        ASSERT_EQ(cv::countNonZero(got != expect), 0)
            << m.size() << " -> " << size << " step " << step << (isa == LbpCascade::Isa::kAvx2 ? " avx2" : " scalar");
        ++checked;
      }
  }
  EXPECT_GT(checked, 500);
}

// OpenCV's CPU path scans rows in nstripes stripes (nstripes from the first scale's
// width) of stripe = ceil((rows / 2) / nstripes) * 2 rows, rows / 2 rounded down: where
// the row count is odd and that division is exact, the last row is never scanned. Crops
// that put a face's window exactly on that row: OpenCV misses the window, and so must we;
// one row taller, the window is on a scanned row and both find it.
TEST_F(LbpCascadeTest, SameAsOpenCvWhereItsStripesSkipTheLastRow) {
  Params raw;
  raw.neighbours = 0;
  int crops = 0, missed = 0;
  auto has = [](const Found& f, const cv::Rect& r) {
    return std::any_of(f.begin(), f.end(), [&](const auto& a) { return a[0] == r.x && a[1] == r.y && a[2] == 24; });
  };
  for (const auto& f : RealIllustrations()) {
    cv::Mat src = Prepare(cv::imread(f));
    auto hits = ours_->DetectNoGrouping(src, 1.1, {24, 24}, {24, 24});  // scale 1 only: no resize
    ASSERT_TRUE(hits.ok());
    for (size_t i = 0; i < hits->size() && i < 8; ++i) {
      const cv::Rect& h = (*hits)[i];
      int t = std::min(h.y, 16) / 2, left = std::max(h.x - 8, 0);
      // 40 wide: 17 window columns, one stripe. 24 + 2t high: 2t + 1 window rows, the hit
      // on the last (even) one.
      cv::Rect crop(left, h.y - 2 * t, std::min(40, src.cols - left), 24 + 2 * t);
      if (crop.width < 24 || crop.y + crop.height + 1 > src.rows) continue;
      cv::Rect in_crop(h.x - crop.x, h.y - crop.y, 24, 24);
      Found exact = OpenCv(src(crop), raw);
      EXPECT_FALSE(has(exact, in_crop)) << "OpenCV scanned the last row of " << crop << " in " << f;
      ExpectSame(src(crop), raw, "crop of " + f);
      cv::Rect taller(crop.x, crop.y, crop.width, crop.height + 1);
      Found more = OpenCv(src(taller), raw);
      EXPECT_TRUE(has(more, in_crop)) << taller << " in " << f;
      ExpectSame(src(taller), raw, "taller crop of " + f);
      ++crops;
      missed += !has(exact, in_crop) && has(more, in_crop);
    }
  }
  EXPECT_GE(crops, 10);
  EXPECT_EQ(missed, crops);
}

TEST_F(LbpCascadeTest, RejectsBadArguments) {
  cv::Mat img(100, 100, CV_8U, cv::Scalar(7));
  EXPECT_EQ(ours_->DetectMultiScale(img, 1.0, 3, {24, 24}).status().code(), Status::Code::kInvalidArgument);
  cv::Mat f32(100, 100, CV_32F, cv::Scalar(7));
  EXPECT_EQ(ours_->DetectMultiScale(f32, 1.1, 3, {24, 24}).status().code(), Status::Code::kInvalidArgument);
  auto empty = ours_->DetectMultiScale(cv::Mat(), 1.1, 3, {24, 24});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->objects.empty());
}

// ---- Loading: only LBP stump cascades; everything else says what it is ----

class LbpCascadeLoadTest : public LbpCascadeTest {
 protected:
  void TearDown() override {
    for (const auto& f : temp_) fs::remove(f);
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string p = (fs::temp_directory_path() / ("mf_lbp_" + std::to_string(::getpid()) + "_" + name)).string();
    std::ofstream(p, std::ios::binary) << text;
    temp_.push_back(p);
    return p;
  }
  std::string Xml() {
    std::ifstream in(path_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static std::string Replace(std::string s, const std::string& from, const std::string& to) {
    size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) s.replace(at, from.size(), to);
    return s;
  }
  std::vector<std::string> temp_;
};

TEST_F(LbpCascadeLoadTest, NonLbpCascadesAreUnsupportedAndSaySo) {
  auto haar = ResolveModel("haar_anime_face_detect");
  ASSERT_TRUE(haar.ok()) << haar.status().ToString();
  auto h = LbpCascade::Load(*haar);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), Status::Code::kUnsupported);
  EXPECT_NE(h.status().message().find("not an LBP cascade"), std::string::npos) << h.status().ToString();
  EXPECT_NE(h.status().message().find("haar_anime_face_detect.xml"), std::string::npos) << h.status().ToString();

  auto nf = LbpCascade::Load(Write("haar.xml", Replace(Xml(), "<featureType>LBP<", "<featureType>HAAR<")));
  ASSERT_FALSE(nf.ok());
  EXPECT_EQ(nf.status().code(), Status::Code::kUnsupported);
  EXPECT_NE(nf.status().message().find("HAAR cascade, not an LBP cascade"), std::string::npos)
      << nf.status().ToString();
}

TEST_F(LbpCascadeLoadTest, CorruptFilesAreCorrupt) {
  std::string xml = Xml();
  struct Case {
    std::string name, text, must_contain;
  } cases[] = {
      {"truncated.xml", xml.substr(0, xml.size() / 2), "not an OpenCV XML/YAML file"},
      {"garbage.xml", "this is not xml at all\n", "not an OpenCV XML/YAML file"},
      {"nostages.xml", Replace(Replace(xml, "<stages>", "<stagez>"), "</stages>", "</stagez>"), "no stages"},
      // The first feature's 3x3 grid of 3x1 blocks from x = 20 ends at x = 29.
      {"badrect.xml", Replace(xml, "<rect>\n        0 0 1 1</rect>", "<rect>\n        20 0 3 1</rect>"),
       "3x3 grid leaves the 24x24 window"},
  };
  for (const auto& c : cases) {
    auto r = LbpCascade::Load(Write(c.name, c.text));
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), Status::Code::kCorrupt) << c.name << ": " << r.status().ToString();
    EXPECT_NE(r.status().message().find(c.must_contain), std::string::npos) << r.status().ToString();
  }
  auto missing = LbpCascade::Load("/nonexistent/cascade.xml");
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
}

// ---- The backend: our evaluator for LBP, OpenCV for the rest or when asked ----

class CascadeEngineTest : public LbpCascadeTest {
 protected:
  void TearDown() override { unsetenv("MOEFORGE_CASCADE_ENGINE"); }
  static std::unique_ptr<Backend> Make(const std::string& kind) {
    auto b = CreateBackend(kind, "", DetectOptions{});
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    return b.ok() ? std::move(*b) : nullptr;
  }
};

TEST_F(CascadeEngineTest, BackendUsesOursForLbpAndOpenCvOtherwiseWithTheSameBoxes) {
  auto ours = Make("cascade");
  auto haar = Make("haar");
  setenv("MOEFORGE_CASCADE_ENGINE", "opencv", 1);
  auto forced = Make("cascade");
  ASSERT_TRUE(ours && haar && forced);
  EXPECT_EQ(ours->engine(), "moeforge-lbp");
  EXPECT_EQ(haar->engine(), "opencv");
  EXPECT_EQ(forced->engine(), "opencv");
  // The detector's identity does not change with the engine.
  EXPECT_EQ(ours->params(), forced->params());
  EXPECT_EQ(ours->model_sha256(), forced->model_sha256());
  size_t boxes = 0;
  for (const char* f : {"anime_head_detector/57032.jpg", "csc420_detection/detect_04.jpg",
                        "hysts_anime_face_detector/input.jpg", "talking_head_anime_3/crypko_00.png"}) {
    cv::Mat img = cv::imread(kAssets + "/illustrations/" + f, cv::IMREAD_UNCHANGED);  // crypko: BGRA
    auto a = ours->Run(img), b = forced->Run(img);
    ASSERT_TRUE(a.ok() && b.ok()) << f;
    auto key = [](const std::vector<RawBox>& v) {
      std::vector<std::tuple<double, double, double, double, double>> k;
      for (const auto& r : v) k.emplace_back(r.box.x, r.box.y, r.box.width, r.box.height, r.score);
      std::sort(k.begin(), k.end());
      return k;
    };
    EXPECT_EQ(key(*a), key(*b)) << f;
    boxes += a->size();
  }
  EXPECT_GT(boxes, 40u);  // input.jpg alone has ~30
}

// ---- Timing (run by hand: --gtest_also_run_disabled_tests --gtest_filter='*Timing*') ----
// Single-threaded ms per image, OpenCV vs ours (AVX2, scalar), the backend's parameters,
// rounds interleaved so that load from other jobs hits all three alike; medians of rounds.
}  // namespace
