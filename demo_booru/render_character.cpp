// One anime character, drawn in a face-local frame: x from -1 (one ear) to 1 (the
// other), y from 0 (top of the hair) down to 2.12 (chin); the frame is scaled, tilted
// and placed onto the image. The proportions follow what lbpcascade_animeface was
// trained on: big low-set eyes under heavy dark upper lashes with highlights, bangs
// down to the brows, a small nose and mouth, a pointed chin and dark outlines.
#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

#include "demo_booru/render_character.h"

namespace moeforge::demo {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kChinY = 2.0 * kFaceHeightRatio;  // 2.12
constexpr double kPivotY = kFaceHeightRatio;       // the face box centre
// Eyes low on the face and a narrow jaw: measured against lbpcascade_animeface, these
// (with an iris filling most of the eye) are what it finds most reliably.
constexpr double kEyeX = 0.42, kEyeY = 1.25, kEyeScale = 0.9, kIrisScale = 1.2, kJaw = 0.7;

using Pts = std::vector<cv::Point2d>;


cv::Scalar Rgb(double r, double g, double b) { return cv::Scalar(b, g, r); }
cv::Scalar Mul(const cv::Scalar& c, double f) {
  return cv::Scalar(std::min(255.0, c[0] * f), std::min(255.0, c[1] * f), std::min(255.0, c[2] * f));
}
cv::Scalar Mix(const cv::Scalar& a, const cv::Scalar& b, double t) {
  return cv::Scalar(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t);
}
const cv::Scalar kWhite = Rgb(255, 255, 255);

// Chosen to stay apart on a 64 px crop: silver is blue-tinted and mid-light, white is
// nearly pure, grey is darker and neutral; aqua is light cyan, blue saturated and dark.
const cv::Scalar kHairRgb[kHairColours] = {
    Rgb(250, 220, 100),  // blonde
    Rgb(120, 72, 38),    // brown
    Rgb(36, 34, 46),     // black
    Rgb(36, 70, 210),    // blue
    Rgb(250, 145, 195),  // pink
    Rgb(125, 55, 180),   // purple
    Rgb(40, 160, 65),    // green
    Rgb(210, 25, 35),    // red
    Rgb(172, 184, 208),  // silver
    Rgb(252, 252, 252),  // white
    Rgb(255, 135, 20),   // orange
    Rgb(70, 228, 228),   // aqua
    Rgb(112, 112, 112),  // grey
};
const char* const kHairTags[kHairColours] = {"blonde_hair", "brown_hair", "black_hair",  "blue_hair",   "pink_hair",
                                             "purple_hair", "green_hair", "red_hair",    "silver_hair", "white_hair",
                                             "orange_hair", "aqua_hair",  "grey_hair"};
const cv::Scalar kEyeRgb[kEyeColours] = {
    Rgb(35, 85, 230),    // blue
    Rgb(215, 20, 30),    // red
    Rgb(135, 75, 35),    // brown
    Rgb(30, 165, 60),    // green
    Rgb(145, 50, 205),   // purple
    Rgb(245, 205, 20),   // yellow
    Rgb(248, 100, 175),  // pink
    Rgb(40, 215, 215),   // aqua
    Rgb(32, 32, 38),     // black
    Rgb(255, 130, 15),   // orange
};
const char* const kEyeTags[kEyeColours] = {"blue_eyes",   "red_eyes",  "brown_eyes", "green_eyes", "purple_eyes",
                                           "yellow_eyes", "pink_eyes", "aqua_eyes",  "black_eyes", "orange_eyes"};

struct HairShades {
  cv::Scalar base, shadow, light, line;
};
HairShades ShadesOf(int hair) {
  HairShades h;
  h.base = kHairRgb[hair];
  h.shadow = Mul(h.base, 0.72);
  h.light = Mix(h.base, kWhite, 0.5);
  h.line = Mul(h.base, 0.42);
  if (hair == 2) {  // black: shade towards blue-grey so strands still show
    h.shadow = Rgb(20, 20, 28);
    h.light = Rgb(90, 92, 120);
    h.line = Rgb(10, 10, 14);
  } else if (hair == 9) {  // white: shadows are cool grey, not darker white
    h.shadow = Rgb(200, 204, 220);
    h.light = Rgb(255, 255, 255);
    h.line = Rgb(80, 82, 100);
  } else if (hair == 8) {  // silver
    h.shadow = Rgb(135, 145, 172);
    h.light = Rgb(230, 236, 250);
    h.line = Rgb(70, 76, 100);
  }
  return h;
}

// Gaussian sigma per px of face width for the softening in DrawCharacter.
constexpr double kSoftness = 0.012;

// Local face frame -> image pixels.
struct Frame {
  double cx, cy, s, c, sn;
  cv::Point2d operator()(double x, double y) const {
    double dy = y - kPivotY;
    return {cx + s * (c * x - sn * dy), cy + s * (sn * x + c * dy)};
  }
};

constexpr int kShift = 4;  // sub-pixel bits for OpenCV drawing

class Pen {
 public:
  Pen(cv::Mat& img, const Frame& f) : img_(img), f_(f) {}
  double scale() const { return f_.s; }

  std::vector<cv::Point> Map(const Pts& local) const {
    std::vector<cv::Point> out;
    out.reserve(local.size());
    for (const cv::Point2d& p : local) {
      cv::Point2d q = f_(p.x, p.y);
      out.emplace_back(static_cast<int>(std::lround(q.x * (1 << kShift))),
                       static_cast<int>(std::lround(q.y * (1 << kShift))));
    }
    return out;
  }
  int Px(double w) const { return std::max(1, static_cast<int>(std::lround(w * f_.s))); }

  void Fill(const Pts& pts, const cv::Scalar& col) {
    std::vector<std::vector<cv::Point>> polys{Map(pts)};
    cv::fillPoly(img_, polys, col, cv::LINE_AA, kShift);
  }
  void Stroke(const Pts& pts, const cv::Scalar& col, double w, bool closed = false) {
    std::vector<std::vector<cv::Point>> polys{Map(pts)};
    cv::polylines(img_, polys, closed, col, Px(w), cv::LINE_AA, kShift);
  }
  void FillStroke(const Pts& pts, const cv::Scalar& fill, const cv::Scalar& line, double w) {
    Fill(pts, fill);
    Stroke(pts, line, w, true);
  }
  // Translucent fill (blush, lens glint): blend a drawn copy of the covered region.
  void FillAlpha(const Pts& pts, const cv::Scalar& col, double alpha) {
    std::vector<cv::Point> q = Map(pts);
    cv::Rect r = cv::boundingRect(q);
    r = cv::Rect(r.x >> kShift, r.y >> kShift, (r.width >> kShift) + 3, (r.height >> kShift) + 3);
    r &= cv::Rect(0, 0, img_.cols, img_.rows);
    if (r.area() <= 0) return;
    cv::Mat roi = img_(r);
    cv::Mat layer = roi.clone();
    for (cv::Point& p : q) p -= cv::Point(r.x << kShift, r.y << kShift);
    std::vector<std::vector<cv::Point>> polys{q};
    cv::fillPoly(layer, polys, col, cv::LINE_AA, kShift);
    cv::addWeighted(layer, alpha, roi, 1.0 - alpha, 0.0, roi);
  }

 private:
  cv::Mat& img_;
  Frame f_;
};

Pts Ellipse(double cx, double cy, double a, double b, double t0 = 0, double t1 = 360, int n = 40) {
  Pts p;
  for (int i = 0; i <= n; ++i) {
    double t = (t0 + (t1 - t0) * i / n) * kPi / 180.0;
    p.emplace_back(cx + a * std::cos(t), cy + b * std::sin(t));
  }
  return p;
}

// Catmull-Rom through `c` (open), `per` samples per segment.
Pts Spline(const Pts& c, int per = 8) {
  Pts out;
  if (c.size() < 2) return c;
  for (size_t i = 0; i + 1 < c.size(); ++i) {
    cv::Point2d p0 = c[i == 0 ? 0 : i - 1], p1 = c[i], p2 = c[i + 1], p3 = c[std::min(i + 2, c.size() - 1)];
    for (int k = 0; k < per; ++k) {
      double t = static_cast<double>(k) / per, t2 = t * t, t3 = t2 * t;
      out.push_back(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2 +
                           (-p0 + 3 * p1 - 3 * p2 + p3) * t3));
    }
  }
  out.push_back(c.back());
  return out;
}

Pts Bezier(cv::Point2d a, cv::Point2d ctrl, cv::Point2d b, int n = 10) {
  Pts p;
  for (int i = 0; i <= n; ++i) {
    double t = static_cast<double>(i) / n;
    p.push_back((1 - t) * (1 - t) * a + 2 * (1 - t) * t * ctrl + t * t * b);
  }
  return p;
}

Pts Mirror(const Pts& p) {
  Pts m;
  for (const cv::Point2d& q : p) m.emplace_back(-q.x, q.y);
  return m;
}
void Append(Pts& a, const Pts& b) { a.insert(a.end(), b.begin(), b.end()); }
Pts Reversed(Pts p) {
  std::reverse(p.begin(), p.end());
  return p;
}

// How far the side locks and the back hair reach (local y).
double SideLockEnd(const Character& c) { return c.long_hair ? 3.35 : (c.short_hair ? 1.78 : 2.25); }
double BackHairEnd(const Character& c) { return c.long_hair ? 4.15 : (c.short_hair ? 1.95 : 2.7); }

void DrawPonytail(Pen& pen, const Character& c, const HairShades& h, double lw) {
  // Tied high at the back, swinging out to one side and falling past the shoulder.
  double side = (c.detail_seed & 2) ? 1.0 : -1.0;
  Pts tail = Spline({{0.3, 0.2}, {0.8, -0.3}, {1.55, -0.05}, {1.95, 0.8}, {2.0, 1.9}, {1.75, 3.0}, {1.6, 3.3}});
  Append(tail, Spline({{1.6, 3.3}, {1.62, 2.6}, {1.58, 1.7}, {1.42, 0.95}, {1.1, 0.5}, {0.6, 0.45}}));
  Pts strand1 = Spline({{1.0, 0.05}, {1.6, 0.6}, {1.78, 1.7}, {1.7, 2.8}});
  Pts strand2 = Spline({{1.3, 0.1}, {1.82, 0.9}, {1.88, 1.9}});
  if (side < 0) tail = Mirror(tail), strand1 = Mirror(strand1), strand2 = Mirror(strand2);
  pen.FillStroke(tail, h.base, h.line, lw);
  pen.Stroke(strand1, h.shadow, lw * 0.9);
  pen.Stroke(strand2, h.shadow, lw * 0.9);
  // The tie, at the top of the head behind the crown.
  pen.FillStroke(Ellipse(side * 0.8, -0.06, 0.17, 0.13), Mul(c.clothes, 0.8), h.line, lw * 0.8);
}

void DrawTwintailTail(Pen& pen, double side, const HairShades& h, double lw) {
  Pts outer = Spline({{0.78, 0.28}, {1.3, 0.12}, {1.78, 0.85}, {1.86, 1.9}, {1.66, 2.9}, {1.48, 3.45}});
  Pts inner = Spline({{1.48, 3.45}, {1.38, 2.8}, {1.34, 1.8}, {1.18, 1.0}, {0.88, 0.62}});
  Pts tail = outer;
  Append(tail, inner);
  if (side < 0) tail = Mirror(tail);
  pen.FillStroke(tail, h.base, h.line, lw);
  Pts strand = Spline({{1.2, 0.35}, {1.6, 1.1}, {1.62, 2.2}, {1.5, 3.1}});
  pen.Stroke(side < 0 ? Mirror(strand) : strand, h.shadow, lw * 0.9);
}

void DrawBackHair(Pen& pen, const Character& c, const HairShades& h, double lw) {
  double end = BackHairEnd(c);
  double half = c.long_hair ? 1.95 : (c.short_hair ? 1.12 : 1.4);
  Pts p = Ellipse(0, 1.0, 1.17, 1.04, 180, 360, 36);  // left, over the top, to the right
  Append(p, Spline({{1.17, 1.0}, {1.25, 1.9}, {half * 0.92, (1.0 + end) * 0.55 + 0.5}, {half, end}}));
  // A ragged lower edge, right to left.
  int n = 7;
  for (int i = 1; i < 2 * n; ++i) {
    double x = half - 2 * half * i / (2 * n);
    double y = (i % 2) ? end - 0.22 : end - 0.02 * (i % 4);
    p.emplace_back(x * (i % 2 ? 0.97 : 1.0), y);
  }
  Append(p, Reversed(Mirror(Spline({{1.17, 1.0}, {1.25, 1.9}, {half * 0.92, (1.0 + end) * 0.55 + 0.5}, {half, end}}))));
  pen.FillStroke(p, h.shadow, h.line, lw);
}

void DrawBody(Pen& pen, const Character& c, double lw) {
  cv::Scalar skin_line = Mul(c.skin, 0.55);
  pen.FillStroke({{-0.23, 1.8}, {0.23, 1.8}, {0.25, 2.62}, {-0.25, 2.62}}, c.skin, skin_line, lw * 0.8);
  pen.Fill({{-0.24, 1.9}, {0.24, 1.9}, {0.24, 2.2}, {0, 2.32}, {-0.24, 2.2}}, Mul(c.skin, 0.86));
  Pts body = Spline({{-0.24, 2.5}, {-0.8, 2.62}, {-1.28, 2.82}, {-1.5, 3.25}, {-1.56, 4.8}});
  Append(body, Spline({{1.56, 4.8}, {1.5, 3.25}, {1.28, 2.82}, {0.8, 2.62}, {0.24, 2.5}}));
  pen.FillStroke(body, c.clothes, Mul(c.clothes, 0.45), lw);
  // Collar: a sailor collar edge and the V of the neckline.
  Pts collar = {{-0.26, 2.5}, {-0.95, 2.66}, {-0.75, 2.98}, {0, 3.15}, {0.75, 2.98}, {0.95, 2.66}, {0.26, 2.5}, {0, 2.85}};
  // Same cloth, darker: a bright white collar under the chin made the cascade see the
  // whole figure as one big face.
  pen.FillStroke(collar, Mul(c.clothes, 0.8), Mul(c.clothes, 0.45), lw * 0.8);
  pen.Fill({{-0.2, 2.52}, {0.2, 2.52}, {0, 2.8}}, c.skin);
  pen.Stroke({{-0.2, 2.52}, {0, 2.8}, {0.2, 2.52}}, skin_line, lw * 0.7);
  pen.Stroke({{-1.05, 3.4}, {-1.08, 4.6}}, Mul(c.clothes, 0.6), lw * 0.8);
  pen.Stroke({{1.05, 3.4}, {1.08, 4.6}}, Mul(c.clothes, 0.6), lw * 0.8);
}

void DrawFaceSkin(Pen& pen, const Character& c, double lw) {
  const double j = kJaw;
  Pts left = Spline({{-0.88, 0.4}, {-0.93, 1.0}, {-0.89 * (1 - (1 - j) * 0.3), 1.45}, {-0.72 * j, 1.78}, {-0.36 * j, 2.03}, {0, kChinY}});
  Pts face = left;
  Append(face, Reversed(Mirror(left)));
  pen.Fill(face, c.skin);
  Pts jaw;
  for (const cv::Point2d& p : left)
    if (p.y > 0.9) jaw.push_back(p);
  Append(jaw, Reversed(Mirror(jaw)));
  pen.Stroke(jaw, Mul(c.skin, 0.5), lw);
}

// One eye; side -1 is the image-left eye. In eye-local coordinates u points outwards
// (towards the ear) and v down.
void DrawEye(Pen& pen, const Character& c, double side, double lw) {
  double ex = side * kEyeX, ey = kEyeY;
  double k = kEyeScale;
  auto P = [&](double u, double v) { return cv::Point2d(ex + side * u * k, ey + v * k); };
  cv::Scalar iris = kEyeRgb[c.eye];
  cv::Scalar lash = Rgb(28, 18, 24);
  // The white of the eye: a tall almond.
  Pts upper = Spline({P(-0.21, 0.04), P(-0.13, -0.19), P(0.03, -0.26), P(0.18, -0.2), P(0.27, -0.05)});
  Pts lower = Spline({P(0.27, -0.05), P(0.21, 0.15), P(0.05, 0.245), P(-0.11, 0.2), P(-0.21, 0.04)});
  Pts white = upper;
  Append(white, lower);
  pen.Fill(white, Rgb(255, 255, 255));
  // Iris: dark at the top (the lid's shadow), lighter towards the bottom, then pupil.
  double ix = ex + side * 0.025 * k, iy = ey + 0.02 * k;
  double q = k * kIrisScale;
  pen.Fill(Ellipse(ix, iy, 0.15 * q, 0.215 * q), Mul(iris, 0.5));
  pen.Fill(Ellipse(ix, iy + 0.05 * q, 0.125 * q, 0.16 * q), iris);
  pen.Fill(Ellipse(ix, iy + 0.12 * q, 0.09 * q, 0.075 * q), Mix(iris, kWhite, 0.4));
  pen.Fill(Ellipse(ix, iy - 0.01 * q, 0.06 * q, 0.1 * q), Mul(iris, 0.22));
  pen.Stroke(Ellipse(ix, iy, 0.15 * q, 0.215 * q), Mul(iris, 0.3), lw * 0.6, true);
  // Highlights, lit from the image's upper left on both eyes.
  pen.Fill(Ellipse(ix - 0.06 * q, iy - 0.08 * q, 0.058 * q, 0.065 * q), kWhite);
  pen.Fill(Ellipse(ix + 0.06 * q, iy + 0.1 * q, 0.03 * q, 0.03 * q), kWhite);
  // Heavy upper lash: thick along the lid, thickest at the outer corner, with a flick.
  Pts lash_pts = Spline({P(-0.23, 0.05), P(-0.14, -0.2), P(0.03, -0.275), P(0.19, -0.21), P(0.29, -0.06)});
  const double L = 1.0;  // lash thickness
  Pts top = Spline({P(0.29 + 0.07 * L, -0.06 - 0.1 * L), P(0.19 + 0.03 * L, -0.21 - 0.09 * L), P(0.03, -0.275 - 0.085 * L),
                    P(-0.14 - 0.01 * L, -0.2 - 0.085 * L), P(-0.23 - 0.01 * L, 0.05 - 0.05 * L)});
  Pts lash_poly = lash_pts;
  Append(lash_poly, top);
  pen.Fill(lash_poly, lash);
  // Lower lash line on the outer half, and the lid crease above.
  pen.Stroke(Spline({P(0.05, 0.25), P(0.2, 0.16), P(0.27, -0.02)}), lash, lw * 0.8);
  pen.Stroke(Spline({P(-0.06, -0.42), P(0.12, -0.43), P(0.26, -0.33)}), Mul(c.skin, 0.55), lw * 0.6);
  // Brow, thin, mostly under the bangs.
  pen.Stroke(Spline({P(-0.18, -0.55), P(0.02, -0.6), P(0.22, -0.55)}), Mul(kHairRgb[c.hair], 0.5), lw * 0.8);
}

void DrawMouthNoseBlush(Pen& pen, const Character& c, double lw) {
  cv::Scalar line = Rgb(95, 40, 40);
  pen.Stroke({{0.02, 1.6}, {-0.02, 1.65}, {0.015, 1.66}}, Mul(c.skin, 0.62), lw * 0.7);
  if (c.blush) {
    for (double side : {-1.0, 1.0}) {
      pen.FillAlpha(Ellipse(side * 0.56, 1.63, 0.2, 0.08), Rgb(255, 110, 140), 0.55);
      for (int k = -1; k <= 1; ++k) {
        double x = side * 0.56 + k * 0.09;
        pen.Stroke({{x + 0.03, 1.59}, {x - 0.03, 1.67}}, Rgb(225, 70, 95), lw * 0.6);
      }
    }
  }
  if (c.open_mouth) {
    Pts m = c.smile ? Pts{} : Ellipse(0, 1.86, 0.075, 0.065);
    if (c.smile) {  // a wide happy "D"
      m = {{-0.13, 1.81}, {0.13, 1.81}};
      Append(m, Bezier({0.13, 1.81}, {0.0, 2.02}, {-0.13, 1.81}));
    }
    pen.FillStroke(m, Rgb(150, 35, 50), line, lw * 0.7);
    pen.Fill(Ellipse(0, c.smile ? 1.9 : 1.895, c.smile ? 0.065 : 0.045, 0.028), Rgb(245, 120, 130));
  } else if (c.smile) {
    pen.Stroke(Bezier({-0.14, 1.8}, {0, 1.96}, {0.14, 1.8}), line, lw * 1.1);
  } else {
    pen.Stroke({{-0.06, 1.855}, {0.06, 1.855}}, line, lw * 0.8);
  }
}

void DrawFrontHair(Pen& pen, const Character& c, const HairShades& h, double lw) {
  Rng r(c.detail_seed);
  double end = SideLockEnd(c);
  Pts p = Ellipse(0, 1.0, 1.13, 1.0, 180, 360, 40);  // (-1.13,1) over the top to (1.13,1)
  // Right side lock down the cheek and back up its inner edge.
  Append(p, Spline({{1.13, 1.0}, {1.12, 1.5}, {1.08, end - 0.25}, {0.98, end}}));
  Append(p, Spline({{0.98, end}, {0.92, end - 0.45}, {0.86, 1.3}, {0.84, 0.86}}));
  // The fringe, right to left: strands meeting at notches, their tips curling inwards.
  int n = c.bang_strands;
  std::vector<double> notch_x(n + 1);
  for (int i = 0; i <= n; ++i) notch_x[i] = 0.84 - 1.68 * i / n + (i > 0 && i < n ? r.U(-0.05, 0.05) : 0);
  for (int i = 0; i < n; ++i) {
    double x0 = notch_x[i], x1 = notch_x[i + 1];
    double ny = (i == 0) ? 0.86 : r.U(0.5, 0.62);
    double mid = 0.5 * (x0 + x1);
    double tip_y = 0.9 + r.U(-0.03, 0.03) - 0.06 * std::abs(mid);
    double tip_x = mid - 0.05 * (mid > 0 ? 1 : -1) * (std::abs(mid) > 0.15 ? 1 : 0);
    p.emplace_back(x0, ny);
    Append(p, Bezier({x0, ny}, {x0 - 0.02, tip_y - 0.12}, {tip_x, tip_y}, 5));
    Append(p, Bezier({tip_x, tip_y}, {x1 + 0.04, tip_y - 0.2}, {x1, r.U(0.5, 0.62)}, 5));
  }
  // Left side lock, down its inner edge and back up the outside.
  Append(p, Spline({{-0.84, 0.86}, {-0.86, 1.3}, {-0.92, end - 0.45}, {-0.98, end}}));
  Append(p, Spline({{-0.98, end}, {-1.08, end - 0.25}, {-1.12, 1.5}, {-1.13, 1.0}}));
  pen.FillStroke(p, h.base, h.line, lw);
  // Strand lines from the crown, and the shine band across the top of the head.
  for (int i = 1; i < n; ++i) {
    double x = notch_x[i];
    pen.Stroke(Bezier({x, 0.58}, {x * 0.9, 0.35}, {x * 0.55, 0.12}), h.shadow, lw * 0.7);
  }
  for (double side : {-1.0, 1.0}) {
    pen.Stroke(Spline({{side * 0.99, 1.0}, {side * 0.98, 1.6}, {side * 0.97, end - 0.1}}), h.shadow, lw * 0.7);
  }
  for (int k = -2; k <= 2; ++k) {
    double x = k * 0.3;
    double y = 0.32 + 0.05 * k * k;
    pen.Fill({{x - 0.1, y - 0.03}, {x + 0.1, y - 0.05}, {x + 0.02, y + 0.08}}, h.light);
  }
}

void DrawDrills(Pen& pen, const HairShades& h, double lw) {
  for (double side : {-1.0, 1.0}) {
    for (int i = 0; i < 4; ++i) {
      double y0 = 0.95 + i * 0.48, w = 0.27 - i * 0.03;
      double x = side * (1.2 + 0.02 * i);
      // One turn of the curl: a rounded top tapering to a point.
      Pts seg = Ellipse(x, y0 + 0.12, w, 0.14, 180, 360, 16);
      seg.emplace_back(x + side * 0.04, y0 + 0.68);
      pen.FillStroke(seg, h.base, h.line, lw * 0.9);
      pen.Stroke(Bezier({x - w * 0.9, y0 + 0.16}, {x, y0 + 0.4}, {x + w * 0.7, y0 + 0.3}), h.shadow, lw * 0.8);
      pen.Stroke(Bezier({x - w * 0.6, y0 + 0.08}, {x - w * 0.1, y0 + 0.2}, {x + w * 0.5, y0 + 0.05}), h.light, lw * 0.7);
    }
  }
}

void DrawRibbon(Pen& pen, const Character& c, double lw) {
  double side = (c.detail_seed & 1) ? 1.0 : -1.0;
  double x = side * 0.92, y = c.hat ? 0.62 : 0.3;
  cv::Scalar col = c.ribbon_colour, line = Mul(c.ribbon_colour, 0.45);
  pen.FillStroke({{x, y}, {x - 0.36, y - 0.2}, {x - 0.38, y + 0.18}}, col, line, lw * 0.8);
  pen.FillStroke({{x, y}, {x + 0.36, y - 0.2}, {x + 0.38, y + 0.18}}, col, line, lw * 0.8);
  pen.FillStroke({{x - 0.04, y + 0.02}, {x - 0.14, y + 0.36}, {x - 0.07, y + 0.38}}, col, line, lw * 0.7);
  pen.FillStroke({{x + 0.04, y + 0.02}, {x + 0.14, y + 0.36}, {x + 0.07, y + 0.38}}, col, line, lw * 0.7);
  pen.FillStroke(Ellipse(x, y, 0.08, 0.08), Mul(col, 0.85), line, lw * 0.7);
}

void DrawHat(Pen& pen, const Character& c, double lw) {
  cv::Scalar col = c.hat_colour, line = Mul(col, 0.4), band = Mix(col, kWhite, 0.55);
  if (c.hat_style == 1) {  // witch hat
    Pts cone = Spline({{-0.72, 0.25}, {-0.35, -0.5}, {0.15, -1.05}, {0.62, -1.28}});
    Append(cone, Spline({{0.62, -1.28}, {0.45, -0.8}, {0.62, -0.2}, {0.74, 0.25}}));
    pen.FillStroke(cone, col, line, lw);
    pen.FillStroke({{-0.7, 0.12}, {0.72, 0.12}, {0.74, 0.27}, {-0.72, 0.27}}, band, line, lw * 0.7);
    pen.FillStroke(Ellipse(0, 0.33, 1.55, 0.2), col, line, lw);
    pen.FillStroke({{-0.72, 0.27}, {0.74, 0.27}, {0.74, 0.32}, {-0.72, 0.32}}, col, line, lw * 0.5);
  } else if (c.hat_style == 2) {  // round cap with a brim
    pen.FillStroke(Ellipse(0, 0.36, 1.0, 0.72, 180, 360), col, line, lw);
    pen.FillStroke({{-1.0, 0.24}, {1.0, 0.24}, {1.0, 0.36}, {-1.0, 0.36}}, band, line, lw * 0.7);
    pen.FillStroke(Ellipse(0, 0.38, 1.32, 0.12), col, line, lw);
  } else {  // beret, worn at an angle
    pen.FillStroke(Ellipse(0.12, 0.12, 1.12, 0.38), col, line, lw);
    pen.FillStroke(Ellipse(0.05, 0.36, 0.92, 0.1), Mul(col, 0.8), line, lw * 0.8);
    pen.FillStroke({{0.05, -0.26}, {0.12, -0.42}, {0.18, -0.26}}, col, line, lw * 0.7);
  }
}

void DrawGlasses(Pen& pen, const Character& c, double lw) {
  cv::Scalar col = c.glasses_colour;
  for (double side : {-1.0, 1.0}) {
    double x = side * 0.43, y = 1.33;
    Pts rim = Spline({{x - 0.3, y - 0.2}, {x, y - 0.23}, {x + 0.3, y - 0.2}, {x + 0.31, y + 0.12}, {x + 0.2, y + 0.25},
                      {x - 0.2, y + 0.25}, {x - 0.31, y + 0.12}, {x - 0.3, y - 0.2}},
                     6);
    pen.FillAlpha(rim, Rgb(200, 225, 255), 0.18);
    pen.Stroke({{x + side * 0.05 - 0.12, y + 0.18}, {x + side * 0.05 + 0.02, y + 0.04}}, kWhite, lw * 0.6);
    // Thin rims: heavy frames across the eyes hide them from the detector.
    pen.Stroke(rim, col, lw * 0.45, true);
    pen.Stroke({{side * 0.73, y - 0.16}, {side * 0.93, y - 0.22}}, col, lw * 0.9);
  }
  pen.Stroke(Bezier({-0.13, 1.18}, {0, 1.12}, {0.13, 1.18}), col, lw * 0.9);
}

Frame MakeFrame(const Placement& p) {
  double t = p.tilt_deg * kPi / 180.0;
  return Frame{p.cx, p.cy, p.face_w / 2.0, std::cos(t), std::sin(t)};
}

// The bounding box of a local rectangle after placement.
cv::Rect PlacedRect(const Placement& p, double x0, double y0, double x1, double y1) {
  Frame f = MakeFrame(p);
  cv::Point2d q[4] = {f(x0, y0), f(x1, y0), f(x0, y1), f(x1, y1)};
  double lx = q[0].x, hx = q[0].x, ly = q[0].y, hy = q[0].y;
  for (const cv::Point2d& v : q) lx = std::min(lx, v.x), hx = std::max(hx, v.x), ly = std::min(ly, v.y), hy = std::max(hy, v.y);
  return cv::Rect(cv::Point(static_cast<int>(std::floor(lx)), static_cast<int>(std::floor(ly))),
                  cv::Point(static_cast<int>(std::ceil(hx)), static_cast<int>(std::ceil(hy))));
}

const cv::Scalar kSkins[] = {Rgb(255, 232, 218), Rgb(255, 224, 205), Rgb(250, 215, 190), Rgb(244, 205, 175),
                             Rgb(236, 190, 155), Rgb(255, 238, 228)};
const cv::Scalar kClothes[] = {Rgb(40, 50, 110), Rgb(200, 60, 70),  Rgb(240, 240, 245), Rgb(60, 60, 70),
                               Rgb(90, 150, 210), Rgb(120, 80, 150), Rgb(230, 180, 60), Rgb(70, 130, 90)};
const cv::Scalar kAccessory[] = {Rgb(225, 30, 60),  Rgb(250, 120, 170), Rgb(40, 80, 200), Rgb(30, 30, 35),
                                 Rgb(250, 250, 250), Rgb(140, 60, 180),  Rgb(40, 150, 80), Rgb(250, 190, 40)};
const cv::Scalar kGlasses[] = {Rgb(25, 25, 30), Rgb(150, 30, 40), Rgb(90, 55, 30), Rgb(30, 40, 110)};

void ChooseLooks(Rng& r, Character& c) {
  c.skin = kSkins[r.I(0, 5)];
  c.clothes = kClothes[r.I(0, 7)];
  c.hat_colour = kAccessory[r.I(0, 7)];
  c.ribbon_colour = kAccessory[r.I(0, 7)];
  // A ribbon must show against the hair it sits on.
  if (cv::norm(c.ribbon_colour - kHairRgb[c.hair]) < 120) c.ribbon_colour = kAccessory[(r.I(0, 7) + 3) % 8];
  if (cv::norm(c.ribbon_colour - kHairRgb[c.hair]) < 120) c.ribbon_colour = Rgb(225, 30, 60);
  if (cv::norm(c.ribbon_colour - kHairRgb[c.hair]) < 120) c.ribbon_colour = Rgb(40, 80, 200);
  if (cv::norm(c.hat_colour - kHairRgb[c.hair]) < 100) c.hat_colour = kAccessory[(r.I(0, 7) + 2) % 8];
  c.glasses_colour = kGlasses[r.I(0, 3)];
  c.line_weight = r.U(0.025, 0.05);
  c.hat_style = r.I(0, 2);
  c.bang_strands = r.I(5, 7);
  c.detail_seed = r.Next();
}

}  // namespace

cv::Rect FaceBox(const Placement& p) {
  Frame f = MakeFrame(p);
  f.c = 1, f.sn = 0;
  cv::Point2d top = f(0, 0), chin = f(0, kChinY);
  double w = p.face_w, h = chin.y - top.y;
  int x0 = static_cast<int>(std::lround(p.cx - w / 2)), y0 = static_cast<int>(std::lround(top.y));
  return cv::Rect(x0, y0, static_cast<int>(std::lround(w)), static_cast<int>(std::lround(h)));
}
cv::Rect HeadRegion(const Placement& p) { return PlacedRect(p, -2.0, -1.4, 2.0, 2.5); }
cv::Rect BodyRegion(const Placement& p) { return PlacedRect(p, -2.0, 2.5, 2.0, 4.8); }

Character RandomCharacter(Rng& r) {
  Character c;
  c.hair = r.I(0, kHairColours - 1);
  c.eye = r.I(0, kEyeColours - 1);
  double len = r.U();
  c.long_hair = len < 0.4;
  c.short_hair = len >= 0.4 && len < 0.7;
  double style = r.U();  // at most one tied style
  c.twintails = style < 0.25;
  c.drill = style >= 0.25 && style < 0.45;
  c.ponytail = style >= 0.45 && style < 0.65;
  c.blush = r.B(0.3);
  c.smile = r.B(0.4);
  c.open_mouth = r.B(0.3);
  c.hat = r.B(0.25);
  c.ribbon = r.B(0.3);
  c.glasses = r.B(0.2);
  ChooseLooks(r, c);
  return c;
}

Character CharacterFromTags(Rng& r, const std::vector<std::string>& tags) {
  Character c;
  c.hair = -1;
  c.eye = -1;
  auto has = [&](const char* t) { return std::find(tags.begin(), tags.end(), t) != tags.end(); };
  for (int i = 0; i < kHairColours; ++i)
    if (has(kHairTags[i])) c.hair = i;
  for (int i = 0; i < kEyeColours; ++i)
    if (has(kEyeTags[i])) c.eye = i;
  if (c.hair < 0) c.hair = r.I(0, kHairColours - 1);
  if (c.eye < 0) c.eye = r.I(0, kEyeColours - 1);
  c.long_hair = has("long_hair");
  c.short_hair = has("short_hair") && !c.long_hair;
  c.twintails = has("twintails");
  c.drill = has("drill_hair");
  c.ponytail = has("ponytail");
  c.blush = has("blush");
  c.smile = has("smile");
  c.open_mouth = has("open_mouth");
  c.hat = has("hat");
  c.ribbon = has("ribbon");
  c.glasses = has("glasses");
  ChooseLooks(r, c);
  return c;
}

std::vector<std::string> CharacterTags(const Character& c) {
  std::vector<std::string> t{kHairTags[c.hair]};
  if (c.long_hair) t.push_back("long_hair");
  if (c.short_hair) t.push_back("short_hair");
  if (c.twintails) t.push_back("twintails");
  if (c.drill) t.push_back("drill_hair");
  if (c.ponytail) t.push_back("ponytail");
  if (c.blush) t.push_back("blush");
  if (c.smile) t.push_back("smile");
  if (c.open_mouth) t.push_back("open_mouth");
  if (c.hat) t.push_back("hat");
  if (c.ribbon) t.push_back("ribbon");
  if (c.glasses) t.push_back("glasses");
  t.push_back(kEyeTags[c.eye]);
  return t;
}

namespace {
void DrawCharacterCrisp(cv::Mat& img, const Character& c, const Placement& p) {
  Pen pen(img, MakeFrame(p));
  HairShades h = ShadesOf(c.hair);
  double lw = c.line_weight;
  if (c.twintails) {
    DrawTwintailTail(pen, -1, h, lw);
    DrawTwintailTail(pen, 1, h, lw);
  }
  DrawBackHair(pen, c, h, lw);
  if (c.ponytail) DrawPonytail(pen, c, h, lw);  // over the back hair, so long hair cannot hide it
  DrawBody(pen, c, lw);
  DrawFaceSkin(pen, c, lw);
  DrawEye(pen, c, -1, lw);
  DrawEye(pen, c, 1, lw);
  DrawMouthNoseBlush(pen, c, lw);
  DrawFrontHair(pen, c, h, lw);
  if (c.twintails) {
    for (double side : {-1.0, 1.0}) pen.FillStroke(Ellipse(side * 0.98, 0.33, 0.13, 0.13), Mul(c.clothes, 0.9), h.line, lw * 0.8);
  }
  if (c.drill) DrawDrills(pen, h, lw);
  if (c.hat) DrawHat(pen, c, lw);
  if (c.ribbon) DrawRibbon(pen, c, lw);
  if (c.glasses) DrawGlasses(pen, c, lw);
}

}  // namespace

void DrawCharacter(cv::Mat& img, const Character& c, const Placement& p) {
  // Drawn on black and on white to recover coverage (alpha) along with colour, then
  // softened in proportion to the face size before compositing. Crisp one-pixel
  // vector edges alias when the cascade shrinks a big face to its 24 px window; a
  // slight softness, as in any resampled illustration, is what it was trained on.
  cv::Rect roi = (HeadRegion(p) | BodyRegion(p));
  int pad = static_cast<int>(p.face_w * 0.1) + 4;
  roi = cv::Rect(roi.x - pad, roi.y - pad, roi.width + 2 * pad, roi.height + 2 * pad) & cv::Rect(0, 0, img.cols, img.rows);
  if (roi.area() <= 0) return;
  Placement local = p;
  local.cx -= roi.x;
  local.cy -= roi.y;
  cv::Mat on_black = cv::Mat::zeros(roi.size(), CV_8UC3), on_white(roi.size(), CV_8UC3, cv::Scalar::all(255));
  DrawCharacterCrisp(on_black, c, local);
  DrawCharacterCrisp(on_white, c, local);
  cv::Mat premul, alpha, diff;
  on_black.convertTo(premul, CV_32FC3, 1.0 / 255);
  cv::Mat w32;
  on_white.convertTo(w32, CV_32FC3, 1.0 / 255);
  cv::Mat uncovered = w32 - premul;  // 1 - alpha, per channel
  cv::cvtColor(uncovered, alpha, cv::COLOR_BGR2GRAY);
  alpha = 1.0 - alpha;
  double sigma = p.face_w * kSoftness;
  if (sigma > 0.3) {
    cv::GaussianBlur(premul, premul, cv::Size(), sigma);
    cv::GaussianBlur(alpha, alpha, cv::Size(), sigma);
  }
  cv::Mat bg, a3, out;
  img(roi).convertTo(bg, CV_32FC3, 1.0 / 255);
  cv::cvtColor(alpha, a3, cv::COLOR_GRAY2BGR);
  out = premul + bg.mul(cv::Scalar::all(1.0) - a3);
  out.convertTo(img(roi), CV_8UC3, 255.0);
}

}  // namespace moeforge::demo
