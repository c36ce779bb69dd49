// moeforge-render-eval: renders demo posts and runs lbpcascade_animeface on them with
// its README parameters, printing recall and precision overall and by face size, and
// optionally saving the pictures with misses or false detections for a look.
//
//   moeforge-render-eval CASCADE.xml [--seed S] [--n N] [--first ID] [--dump DIR] [--save DIR]
//   moeforge-render-eval CASCADE.xml --faces N [--seed S]   (single faces at many scales)
// --dump writes the pictures with a miss or a false detection (boxes drawn: truth
// green, detections red); --save writes every post's file as served.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

#include "core/tag_schema.h"
#include "demo_booru/render.h"

using namespace moeforge::demo;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CASCADE.xml [--seed S] [--n N] [--first ID] [--dump DIR] [--save DIR] [--faces N]\n", argv[0]);
    return 2;
  }
  std::string cascade_path = argv[1], dump, save;
  uint64_t seed = 1;
  int n = 200;
  int64_t first = 1;
  int faces_mode = 0, fsize = 360;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--seed") seed = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--n") n = std::atoi(argv[i + 1]);
    else if (a == "--first") first = std::atoll(argv[i + 1]);
    else if (a == "--dump") dump = argv[i + 1];
    else if (a == "--faces") faces_mode = std::atoi(argv[i + 1]);
    else if (a == "--save") save = argv[i + 1];
    else if (a == "--face-size") fsize = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  cv::CascadeClassifier cascade;
  if (!cascade.load(cascade_path)) {
    std::fprintf(stderr, "cannot load cascade %s\n", cascade_path.c_str());
    return 1;
  }
  if (faces_mode > 0) {
    // Robustness of single faces: the share of scales at which each face is found.
    const auto& groups = moeforge::TagSchema::Default().groups();
    double sum = 0;
    std::map<std::string, std::pair<double, int>> tag_score;
    std::map<int, std::pair<int, double>> per_scale;
    for (int i = 0; i < faces_mode; ++i) {
      uint64_t h = seed * 1000003 + i * 7919 + 17;
      auto next = [&] { h ^= h << 13; h ^= h >> 7; h ^= h << 17; return h; };
      std::vector<std::string> tags;
      for (const auto& g : groups) {
        if (g.exclusive) tags.push_back(g.tags[next() % g.tags.size()]);
        else for (const auto& t : g.tags) if (next() % 100 < 30) tags.push_back(t);
      }
      cv::Mat face = RenderFace(seed + i, tags, fsize);
      int hit = 0, tries = 0;
      for (double sc = 0.22; sc <= 1.0; sc *= 1.17, ++tries) {
        cv::Mat g;
        cv::resize(face, g, cv::Size(), sc, sc, cv::INTER_AREA);
        cv::cvtColor(g, g, cv::COLOR_BGR2GRAY);
        cv::equalizeHist(g, g);
        std::vector<cv::Rect> d;
        cascade.detectMultiScale(g, d, 1.1, 5, 0, cv::Size(24, 24));
        hit += !d.empty();
        per_scale[tries].first += !d.empty();
        per_scale[tries].second = sc * fsize / 2.3;
      }
      double f = double(hit) / tries;
      sum += f;
      for (const auto& t : tags) tag_score[t].first += f, tag_score[t].second++;
    }
    std::printf("face robustness %.4f\n", sum / faces_mode);
    for (const auto& [k, v] : per_scale) std::printf("  face %.0f px: %d/%d\n", v.second, v.first, faces_mode);
    if (!dump.empty()) for (const auto& [t, v] : tag_score) std::printf("  %-14s %.3f\n", t.c_str(), v.first / v.second);
    return 0;
  }
  DetectionScore total;
  std::map<int, DetectionScore> by_size;  // face width bucket (px / 20)
  std::map<std::string, std::pair<int, int>> by_tag;  // found, total
  for (int64_t id = first; id < first + n; ++id) {
    Illustration ill = RenderPost(seed, id);
    if (!save.empty()) {
      std::FILE* f = std::fopen((save + "/post" + std::to_string(id) + "." + ill.plan.file_ext).c_str(), "wb");
      if (f) std::fwrite(ill.encoded.data(), 1, ill.encoded.size(), f), std::fclose(f);
    }
    std::vector<uchar> bytes(ill.encoded.begin(), ill.encoded.end());
    cv::Mat img = cv::imdecode(bytes, cv::IMREAD_COLOR), grey;
    cv::cvtColor(img, grey, cv::COLOR_BGR2GRAY);
    cv::equalizeHist(grey, grey);
    std::vector<cv::Rect> dets;
    cascade.detectMultiScale(grey, dets, 1.1, 5, 0, cv::Size(24, 24));
    DetectionScore s = ScoreDetections(ill.faces, dets);
    total += s;
    bool bad = s.faces_found < s.faces || s.detections_true < s.detections;
    for (const FaceTruth& f : ill.faces) {
      bool found = false;
      for (const cv::Rect& d : dets) found = found || DetectionMatches(f.box, d);
      DetectionScore one;
      one.faces = 1;
      one.faces_found = found;
      by_size[f.box.width / 20] += one;
      for (const std::string& t : f.tags) {
        by_tag[t].first += found;
        by_tag[t].second += 1;
      }
      for (const std::string& t : ill.tags) {
        if (t.find("background") == std::string::npos && t != "outdoors" && t != "indoors" && t != "monochrome" && t != "solo" && t != "multiple_girls") continue;
        by_tag["post:" + t].first += found;
        by_tag["post:" + t].second += 1;
      }
      by_tag[std::string("post:") + ill.plan.file_ext].first += found;
      by_tag[std::string("post:") + ill.plan.file_ext].second += 1;
      if (!found) {
        std::printf("miss post %lld (%s %dx%d) box %d,%d %dx%d tags:", static_cast<long long>(id), PostKindName(ill.plan.kind),
                    ill.plan.width, ill.plan.height, f.box.x, f.box.y, f.box.width, f.box.height);
        for (const std::string& t : f.tags) std::printf(" %s", t.c_str());
        std::printf("\n");
      }
    }
    for (const cv::Rect& d : dets) {
      bool ok = false;
      for (const FaceTruth& f : ill.faces) ok = ok || DetectionMatches(f.box, d);
      if (!ok)
        std::printf("false post %lld (%s) det %d,%d %dx%d\n", static_cast<long long>(id), PostKindName(ill.plan.kind), d.x, d.y,
                    d.width, d.height);
    }
    if (bad && !dump.empty()) {
      for (const FaceTruth& f : ill.faces) cv::rectangle(img, f.box, cv::Scalar(0, 200, 0), 2);
      for (const cv::Rect& d : dets) cv::rectangle(img, d, cv::Scalar(0, 0, 255), 2);
      cv::imwrite(dump + "/post" + std::to_string(id) + ".png", img);
    }
  }
  std::printf("recall %.4f (%d/%d) precision %.4f (%d/%d)\n", total.faces ? double(total.faces_found) / total.faces : 0.0,
              total.faces_found, total.faces, total.detections ? double(total.detections_true) / total.detections : 0.0,
              total.detections_true, total.detections);
  for (const auto& [bucket, s] : by_size)
    std::printf("  width %3d-%3d px: %d/%d\n", bucket * 20, bucket * 20 + 19, s.faces_found, s.faces);
  for (const auto& [tag, c] : by_tag) std::printf("  %-14s %d/%d\n", tag.c_str(), c.first, c.second);
  return 0;
}
