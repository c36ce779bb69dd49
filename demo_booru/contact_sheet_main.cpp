// moeforge-contact-sheet: an 8x8 sheet of demo-booru faces, each labelled with the
// schema tags it wears, together covering every tag of the default schema. The
// committed docs/demo-faces.png is its output:
//
//   moeforge-contact-sheet [-o docs/demo-faces.png] [--seed S] [--cell PX]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/tag_schema.h"
#include "demo_booru/render.h"

namespace {

// Short labels so that a face's tags fit under it.
std::string Short(const std::string& tag) {
  std::string s = tag;
  for (const char* suffix : {"_hair", "_eyes"}) {
    size_t n = std::string(suffix).size();
    if (s.size() > n && s.compare(s.size() - n, n, suffix) == 0 && s != "long_hair" && s != "short_hair" &&
        s != "drill_hair")
      s = s.substr(0, s.size() - n) + (suffix[1] == 'h' ? " hair" : " eyes");
  }
  for (char& c : s)
    if (c == '_') c = ' ';
  return s;
}

// 64 tag sets: hair colours and eye colours cycle so each appears 4-6 times; the
// hair styles and binary tags come from a seeded stream, each with a fair share.
std::vector<std::vector<std::string>> SheetTags(uint64_t seed) {
  const moeforge::TagSchema& schema = moeforge::TagSchema::Default();
  std::vector<std::string> hair, style, other, eyes;
  for (const moeforge::TagGroup& g : schema.groups()) {
    if (g.name == "hair_color") hair = g.tags;
    else if (g.name == "hair_style") style = g.tags;
    else if (g.name == "eye_color") eyes = g.tags;
    else other.insert(other.end(), g.tags.begin(), g.tags.end());
  }
  std::vector<std::vector<std::string>> out;
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
  auto next = [&] {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  };
  for (int i = 0; i < 64; ++i) {
    std::vector<std::string> t{hair[i % hair.size()]};
    int len = i % 3;  // long, short, neither
    if (len == 0) t.push_back("long_hair");
    if (len == 1) t.push_back("short_hair");
    int tied = (i / 3) % 4;  // twintails, drills, ponytail, none
    if (tied < 3 && !(len == 1 && tied == 2)) t.push_back(style[2 + tied]);
    for (const std::string& o : other)
      if (next() % 100 < 33) t.push_back(o);
    t.push_back(eyes[(i * 7) % eyes.size()]);
    out.push_back(t);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out = "docs/demo-faces.png";
  uint64_t seed = 3;
  int cell = 144;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "-o" || a == "--out") && i + 1 < argc) out = argv[++i];
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--cell" && i + 1 < argc) cell = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [-o OUT.png] [--seed S] [--cell PX]\n", argv[0]);
      return 2;
    }
  }
  if (cell < 64 || cell > 1024) {
    std::fprintf(stderr, "--cell must be 64..1024\n");
    return 2;
  }
  const int label_h = 58, cols = 8, rows = 8;
  cv::Mat sheet(rows * (cell + label_h), cols * cell, CV_8UC3, cv::Scalar(255, 255, 255));
  std::vector<std::vector<std::string>> tags = SheetTags(seed);
  for (const std::string& t : moeforge::TagSchema::Default().tags()) {
    bool used = false;
    for (const auto& face : tags) used = used || std::find(face.begin(), face.end(), t) != face.end();
    if (!used) {
      std::fprintf(stderr, "seed %llu leaves out tag %s: try another --seed\n", static_cast<unsigned long long>(seed), t.c_str());
      return 1;
    }
  }
  for (int i = 0; i < rows * cols; ++i) {
    int x = (i % cols) * cell, y = (i / cols) * (cell + label_h);
    cv::Mat face = moeforge::demo::RenderFace(seed * 1000 + i, tags[i], cell);
    face.copyTo(sheet(cv::Rect(x, y, cell, cell)));
    cv::rectangle(sheet, cv::Rect(x, y, cell, cell + label_h), cv::Scalar(200, 200, 200), 1);
    // Greedy line wrapping of the tag list under the face.
    std::vector<std::string> lines(1);
    for (const std::string& t : tags[i]) {
      std::string word = Short(t);
      std::string trial = lines.back().empty() ? word : lines.back() + ", " + word;
      int base = 0;
      if (cv::getTextSize(trial, cv::FONT_HERSHEY_SIMPLEX, 0.33, 1, &base).width > cell - 6 && !lines.back().empty()) {
        lines.back() += ",";
        lines.push_back(word);
      } else {
        lines.back() = trial;
      }
    }
    for (size_t l = 0; l < lines.size() && l < 5; ++l)
      cv::putText(sheet, lines[l], cv::Point(x + 3, y + cell + 11 + 11 * static_cast<int>(l)), cv::FONT_HERSHEY_SIMPLEX,
                  0.33, cv::Scalar(30, 30, 30), 1, cv::LINE_AA);
  }
  if (!cv::imwrite(out, sheet, {cv::IMWRITE_PNG_COMPRESSION, 9})) {
    std::fprintf(stderr, "cannot write %s\n", out.c_str());
    return 1;
  }
  std::printf("wrote %s (%dx%d, 64 faces)\n", out.c_str(), sheet.cols, sheet.rows);
  return 0;
}
