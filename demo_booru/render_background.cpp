// Backgrounds for the demo illustrations: plain or gradient fills, outdoor scenes and
// rooms, always with some clutter (lines, shapes) so that a detector has something
// other than faces to reject.
#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

#include "demo_booru/render_character.h"

namespace moeforge::demo {

namespace {

cv::Scalar RandomColour(Rng& r, double lo, double hi) { return cv::Scalar(r.U(lo, hi), r.U(lo, hi), r.U(lo, hi)); }

cv::Point RandomPoint(Rng& r, const cv::Mat& img) { return cv::Point(r.I(0, img.cols - 1), r.I(0, img.rows - 1)); }

void VerticalGradient(cv::Mat& img, int y0, int y1, const cv::Scalar& top, const cv::Scalar& bottom) {
  y0 = std::max(0, y0);
  y1 = std::min(img.rows, y1);
  for (int y = y0; y < y1; ++y) {
    double t = y1 - y0 > 1 ? static_cast<double>(y - y0) / (y1 - y0 - 1) : 0.0;
    img.row(y).setTo(top * (1.0 - t) + bottom * t);
  }
}

void Star(cv::Mat& img, cv::Point c, int r, const cv::Scalar& col) {
  std::vector<cv::Point> p;
  for (int i = 0; i < 10; ++i) {
    double a = -3.14159265358979 / 2 + i * 3.14159265358979 / 5;
    double rr = (i % 2) ? r * 0.45 : r;
    p.emplace_back(c.x + static_cast<int>(std::lround(rr * std::cos(a))), c.y + static_cast<int>(std::lround(rr * std::sin(a))));
  }
  cv::fillPoly(img, std::vector<std::vector<cv::Point>>{p}, col, cv::LINE_AA);
}

// Lines, rectangles, circles and stars scattered over everything.
void Clutter(Rng& r, cv::Mat& img, int n) {
  int scale = std::max(img.cols, img.rows);
  for (int i = 0; i < n; ++i) {
    cv::Scalar col = RandomColour(r, 60, 250);
    int kind = r.I(0, 4);
    int th = r.I(1, 4);
    if (kind == 0) {
      cv::line(img, RandomPoint(r, img), RandomPoint(r, img), col, th, cv::LINE_AA);
    } else if (kind == 1) {
      cv::Point a = RandomPoint(r, img);
      cv::Point b = a + cv::Point(r.I(10, scale / 5), r.I(10, scale / 5));
      cv::rectangle(img, a, b, col, r.B(0.5) ? cv::FILLED : th, cv::LINE_AA);
    } else if (kind == 2) {
      cv::circle(img, RandomPoint(r, img), r.I(4, scale / 12), col, r.B(0.5) ? cv::FILLED : th, cv::LINE_AA);
    } else if (kind == 3) {
      Star(img, RandomPoint(r, img), r.I(5, scale / 20), col);
    } else {
      std::vector<cv::Point> p;
      cv::Point a = RandomPoint(r, img);
      for (int k = 0; k < 5; ++k) p.push_back(a + cv::Point(r.I(-scale / 8, scale / 8), r.I(-scale / 8, scale / 8)));
      cv::polylines(img, std::vector<std::vector<cv::Point>>{p}, false, col, th, cv::LINE_AA);
    }
  }
}

void Cloud(Rng& r, cv::Mat& img, cv::Point c, int s) {
  for (int k = 0; k < 5; ++k) {
    cv::Point o = c + cv::Point(r.I(-s, s), r.I(-s / 3, s / 3));
    cv::ellipse(img, o, cv::Size(s / 2 + r.I(0, s / 2), s / 3 + r.I(0, s / 4)), 0, 0, 360, cv::Scalar(252, 250, 248),
                cv::FILLED, cv::LINE_AA);
  }
}

void Tree(Rng& r, cv::Mat& img, cv::Point base, int s) {
  cv::rectangle(img, base + cv::Point(-s / 8, -s), base + cv::Point(s / 8, 0), cv::Scalar(40, 70, 110), cv::FILLED);
  cv::Scalar leaf(r.U(40, 80), r.U(120, 170), r.U(40, 90));
  for (int k = 0; k < 4; ++k)
    cv::circle(img, base + cv::Point(r.I(-s / 3, s / 3), -s - r.I(0, s / 2)), s / 3 + r.I(0, s / 4), leaf, cv::FILLED,
               cv::LINE_AA);
}

}  // namespace

std::vector<std::string> DrawBackground(Rng& r, cv::Mat& img) {
  std::vector<std::string> tags;
  int w = img.cols, h = img.rows;
  int kind = r.I(0, 2);
  if (kind == 0) {
    tags.push_back("simple_background");
    double u = r.U();
    if (u < 0.3) {
      img.setTo(cv::Scalar(255, 255, 255));
      tags.push_back("white_background");
    } else if (u < 0.65) {
      img.setTo(RandomColour(r, 170, 250));
    } else {
      VerticalGradient(img, 0, h, RandomColour(r, 150, 255), RandomColour(r, 150, 255));
      tags.push_back("gradient_background");
    }
    // Polka dots or scattered stars, as simple backgrounds often have.
    int n = r.I(0, 25);
    cv::Scalar col = RandomColour(r, 180, 255);
    for (int i = 0; i < n; ++i) {
      if (r.B(0.5)) cv::circle(img, RandomPoint(r, img), r.I(3, 18), col, cv::FILLED, cv::LINE_AA);
      else Star(img, RandomPoint(r, img), r.I(4, 20), col);
    }
    Clutter(r, img, r.I(2, 8));
  } else if (kind == 1) {
    tags.push_back("outdoors");
    tags.push_back("sky");
    int horizon = static_cast<int>(h * r.U(0.5, 0.8));
    VerticalGradient(img, 0, horizon, cv::Scalar(235, 160, 80), cv::Scalar(250, 225, 200));
    VerticalGradient(img, horizon, h, r.B(0.7) ? cv::Scalar(80, 170, 100) : cv::Scalar(150, 200, 225),
                     cv::Scalar(50, 120, 70));
    if (r.B(0.5)) cv::circle(img, cv::Point(r.I(0, w), r.I(0, horizon / 3)), r.I(15, 40), cv::Scalar(120, 230, 255), cv::FILLED, cv::LINE_AA);
    int clouds = r.I(0, 4);
    if (clouds > 0) tags.push_back("cloud");
    for (int i = 0; i < clouds; ++i) Cloud(r, img, cv::Point(r.I(0, w), r.I(0, std::max(1, horizon / 2))), r.I(20, 60));
    int trees = r.I(0, 5);
    if (trees > 0) tags.push_back("tree");
    for (int i = 0; i < trees; ++i) Tree(r, img, cv::Point(r.I(0, w), horizon + r.I(0, std::max(1, (h - horizon) / 2))), r.I(30, 90));
    Clutter(r, img, r.I(3, 12));
  } else {
    tags.push_back("indoors");
    int floor = static_cast<int>(h * r.U(0.6, 0.85));
    cv::Scalar wall = RandomColour(r, 170, 240);
    img.setTo(wall);
    VerticalGradient(img, floor, h, cv::Scalar(90, 130, 170), cv::Scalar(60, 95, 130));
    cv::line(img, cv::Point(0, floor), cv::Point(w, floor), cv::Scalar(40, 60, 80), 2, cv::LINE_AA);
    if (r.B(0.7)) {
      tags.push_back("window");
      int ww = r.I(w / 6, w / 3), wh = r.I(h / 6, h / 3);
      cv::Point a(r.I(0, std::max(1, w - ww)), r.I(0, std::max(1, floor - wh)));
      cv::Rect win(a, cv::Size(ww, wh));
      cv::Mat roi = img(win & cv::Rect(0, 0, w, h));
      VerticalGradient(roi, 0, roi.rows, cv::Scalar(240, 190, 120), cv::Scalar(250, 230, 210));
      cv::rectangle(img, win, cv::Scalar(230, 235, 240), 6);
      cv::line(img, a + cv::Point(ww / 2, 0), a + cv::Point(ww / 2, wh), cv::Scalar(230, 235, 240), 4);
    }
    // A shelf of books.
    if (r.B(0.6)) {
      int y = r.I(h / 6, std::max(h / 6 + 1, floor - 40)), x = r.I(0, w - 1);
      cv::line(img, cv::Point(x - 10, y), cv::Point(x + r.I(80, 200), y), cv::Scalar(40, 70, 110), 5);
      for (int b = 0; b < r.I(4, 12); ++b) {
        int bw = r.I(8, 16), bh = r.I(30, 55);
        cv::rectangle(img, cv::Point(x, y - bh), cv::Point(x + bw, y - 1), RandomColour(r, 40, 220), cv::FILLED);
        x += bw + 1;
      }
    }
    Clutter(r, img, r.I(3, 12));
  }
  return tags;
}

void DrawObjects(Rng& r, cv::Mat& img) {
  int scale = std::min(img.cols, img.rows);
  for (int i = 0; i < r.I(2, 6); ++i) {
    cv::Point c = RandomPoint(r, img);
    int s = r.I(scale / 12, scale / 4);
    switch (r.I(0, 2)) {
      case 0:  // a potted plant
        cv::rectangle(img, c + cv::Point(-s / 4, 0), c + cv::Point(s / 4, s / 2), cv::Scalar(50, 90, 170), cv::FILLED, cv::LINE_AA);
        for (int k = 0; k < 5; ++k)
          cv::ellipse(img, c + cv::Point(r.I(-s / 3, s / 3), -r.I(0, s / 2)), cv::Size(s / 8, s / 3), r.I(0, 180), 0, 360,
                      cv::Scalar(60, 150, 70), cv::FILLED, cv::LINE_AA);
        break;
      case 1:  // a cup
        cv::rectangle(img, c, c + cv::Point(s / 2, s / 2), RandomColour(r, 120, 250), cv::FILLED, cv::LINE_AA);
        cv::ellipse(img, c + cv::Point(s / 2, s / 4), cv::Size(s / 8, s / 8), 0, -90, 90, cv::Scalar(60, 60, 60), 2, cv::LINE_AA);
        break;
      default:  // a ball
        cv::circle(img, c, s / 3, RandomColour(r, 60, 250), cv::FILLED, cv::LINE_AA);
        cv::circle(img, c, s / 3, cv::Scalar(40, 40, 40), 2, cv::LINE_AA);
        break;
    }
  }
  Clutter(r, img, r.I(4, 12));
}

}  // namespace moeforge::demo
