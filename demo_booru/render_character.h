// Internals of the demo renderer (render.cpp): the seeded random stream, one anime
// character (which tags it wears, how it is drawn) and the backgrounds. Not a public
// interface; tests and the contact sheet use render.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace moeforge::demo {

// splitmix64: tiny, fast, and the same numbers on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double U() { return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0); }  // [0,1)
  double U(double a, double b) { return a + (b - a) * U(); }
  int I(int a, int b) { return a + static_cast<int>(Next() % static_cast<uint64_t>(b - a + 1)); }  // [a,b]
  bool B(double p) { return U() < p; }

 private:
  uint64_t s_;
};

inline uint64_t MixSeed(uint64_t a, uint64_t b) {
  Rng r(a ^ (b * 0xD1342543DE82EF95ull + 0x632BE59BD9B4E019ull));
  return r.Next();
}

// Face box height / width (top of the hair to the chin / ear to ear).
constexpr double kFaceHeightRatio = 1.06;

// Where a character stands: the centre of its face box in image pixels, the face box
// width (ear to ear) and a slight head tilt.
struct Placement {
  double cx = 0, cy = 0, face_w = 0, tilt_deg = 0;
};
cv::Rect FaceBox(const Placement& p);
// The head with all its hair (hat, twintails), and the body below it: another
// character's head must not fall in either.
cv::Rect HeadRegion(const Placement& p);
cv::Rect BodyRegion(const Placement& p);

// Indices into the schema's groups (TagSchema::Default() order).
constexpr int kHairColours = 13;
constexpr int kEyeColours = 10;

struct Character {
  int hair = 0;  // hair colour index
  int eye = 0;   // eye colour index
  bool long_hair = false, short_hair = false, twintails = false, drill = false, ponytail = false;
  bool blush = false, smile = false, open_mouth = false, hat = false, ribbon = false, glasses = false;
  // Looks that are not tags.
  cv::Scalar skin, clothes, hat_colour, ribbon_colour, glasses_colour;
  double line_weight = 0.035;  // outline thickness in face units (face width = 2)
  int hat_style = 0;           // 0 beret, 1 witch hat, 2 cap
  int bang_strands = 6;
  uint64_t detail_seed = 0;    // strand jitter etc.
};

Character RandomCharacter(Rng& r);
// Exactly the schema tags named (missing exclusive groups are drawn from `r`).
Character CharacterFromTags(Rng& r, const std::vector<std::string>& tags);
std::vector<std::string> CharacterTags(const Character& c);

void DrawCharacter(cv::Mat& img, const Character& c, const Placement& p);

// Fills `img` with a background (plain, outdoors or indoors, always with some clutter);
// returns its tags ("simple_background", "outdoors", ...).
std::vector<std::string> DrawBackground(Rng& r, cv::Mat& img);
// Furniture, plants and shapes for pictures with nobody in them.
void DrawObjects(Rng& r, cv::Mat& img);

}  // namespace moeforge::demo
