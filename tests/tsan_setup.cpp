// Linked into every test binary of a TSan build (the top CMakeLists.txt).
// - TSan reads scripts/tsan.supp wherever the binary runs (CTest, by hand, or CMake's test
//   discovery at build time), not only under scripts/test.sh's TSAN_OPTIONS.
// - OpenCV runs its own parallel loops on the calling thread. They run on oneTBB inside
//   libopencv and libtbb, neither instrumented, so TSan cannot see their hand-offs and
//   reports each buffer an OpenCV worker filled as a race with the thread that reads it.
// - OpenCV's lazily built singletons (the codec registry, MatExpr's operators) are built
//   before main(), before any thread starts: built on first use by one of our threads,
//   behind OpenCV's uninstrumented locks, they read as races to every other thread.
// Every report that involves OpenCV is then about threads of ours (the detector's
// pipeline, the crawler's workers, the demo booru's server), which still run in parallel.
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

extern "C" const char* __tsan_default_options() {
  return "suppressions=" MOEFORGE_SOURCE_DIR "/scripts/tsan.supp";
}

namespace {

bool PrepareOpenCvForTsan() {
  cv::setNumThreads(0);
  cv::Mat bgr = cv::Mat::zeros(8, 8, CV_8UC3), grey, small;
  cv::cvtColor(bgr, grey, cv::COLOR_BGR2GRAY);
  cv::resize(bgr, small, cv::Size(4, 4), 0, 0, cv::INTER_AREA);
  for (const char* ext : {".png", ".jpg", ".webp", ".bmp"}) {
    std::vector<uchar> buf;
    if (cv::imencode(ext, bgr, buf)) (void)cv::imdecode(buf, cv::IMREAD_UNCHANGED);
  }
  return true;
}

const bool kPrepared = PrepareOpenCvForTsan();

}  // namespace
