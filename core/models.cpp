#include "core/models.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "core/hash.h"

namespace fs = std::filesystem;

namespace moeforge {

const std::vector<ModelInfo>& KnownModels() {
  // Pinned to the commits ../shared/assets/SOURCES.md records; the SHA-256 is checked
  // after every download.
  static const std::vector<ModelInfo> kModels = {
      {"lbpcascade_animeface", "cascade", "lbpcascade_animeface.xml",
       "https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/"
       "4433ab1ae1166ea75acfe99eb0f18709dac329a0/lbpcascade_animeface.xml",
       "9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30", 246945, "MIT",
       "nagadomi's LBP anime face cascade, 24x24 window: the default detector"},
      {"haar_anime_face_detect", "cascade", "haar_anime_face_detect.xml",
       "https://raw.githubusercontent.com/XavierJiezou/anime-face-detection/"
       "5e1a0793fe7f4ff3a16ea176510b392656f363ec/model/haar_anime_face_detect.xml",
       "a844e5faa7b9147cdc17ef707b5ddd3c8d52d7640d7bc168863868cc5d5a3079", 1070357, "none stated",
       "20x20 Haar anime face cascade (old opencv-haar-classifier layout)"},
      {"yunet", "yunet", "face_detection_yunet_2026may.onnx",
       "https://raw.githubusercontent.com/RuDr8A/RealTime-PPE-Compliance/"
       "d876a822bbb20180b9ed7850c1d3229d72883067/face_detection_yunet_2026may.onnx",
       "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0", 229738, "MIT (OpenCV zoo)",
       "YuNet face detector, 12-output layout (cls/obj/bbox/kps at strides 8/16/32)"},
      {"wd14_selected_tags", "tag-table", "wd14_selected_tags_general.csv",
       "https://raw.githubusercontent.com/xiyuanba/wd/"
       "129058cec5a10e18a0adfa0fbbee1c3bbbd3165c/selected_tags.csv",
       "34b85f6fcef7df04de84ff4abe03d5ff08ea443d8b04791d89b8b109d9bd3b01", 191191, "Apache-2.0 (WD 1.4)",
       "WD14 tagger vocabulary (general tags), for wd14:DIR taggers"},
  };
  return kModels;
}

const ModelInfo* FindKnownModel(const std::string& name) {
  for (const auto& m : KnownModels())
    if (m.name == name || m.file == name) return &m;
  return nullptr;
}

std::string ModelCacheDir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x) return std::string(x) + "/moeforge/models";
  if (const char* h = std::getenv("HOME"); h != nullptr && *h) return std::string(h) + "/.cache/moeforge/models";
  return ".moeforge-models";
}

std::vector<std::string> ModelSearchPath() {
  std::vector<std::string> dirs;
  if (const char* p = std::getenv("MOEFORGE_MODEL_PATH"); p != nullptr) {
    std::stringstream ss(p);
    std::string d;
    while (std::getline(ss, d, ':'))
      if (!d.empty()) dirs.push_back(d);
  }
  dirs.push_back(ModelCacheDir());
  return dirs;
}

namespace {

// SHA-256 of a model file, remembered per (path, size, mtime): a stage resolves the same
// model several times, and hashing a megabyte each time is waste.
Result<std::string> ModelSha256(const fs::path& p) {
  static std::mutex mu;
  static std::map<std::string, std::pair<std::string, std::string>> cache;  // path -> (stamp, sha)
  std::error_code ec;
  auto size = fs::file_size(p, ec);
  auto mtime = fs::last_write_time(p, ec);
  std::string stamp = std::to_string(size) + ":" + std::to_string(mtime.time_since_epoch().count());
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(p.string());
    if (!ec && it != cache.end() && it->second.first == stamp) return it->second.second;
  }
  auto sha = Sha256File(p.string());
  if (!sha.ok()) return sha.status();
  std::lock_guard<std::mutex> lock(mu);
  cache[p.string()] = {stamp, *sha};
  return *sha;
}

// Says once per file that a copy was passed over, so a user knows why a later folder's
// copy (or none) was used.
void WarnOnce(const std::string& path, const std::string& message) {
  static std::mutex mu;
  static std::set<std::string> warned;
  std::lock_guard<std::mutex> lock(mu);
  if (warned.insert(path).second) std::fprintf(stderr, "warning: %s\n", message.c_str());
}

}  // namespace

Result<std::string> ResolveModel(const std::string& name_or_path) {
  if (name_or_path.empty()) return Status::InvalidArgument("no model named");
  std::error_code ec;
  if (name_or_path.find('/') != std::string::npos || fs::exists(name_or_path, ec)) {
    if (fs::is_regular_file(name_or_path, ec)) return name_or_path;
    if (name_or_path.find('/') != std::string::npos)
      return Status::NotFound("model file '" + name_or_path + "' does not exist");
  }
  const ModelInfo* known = FindKnownModel(name_or_path);
  std::string file = known ? known->file : name_or_path;
  auto dirs = ModelSearchPath();
  std::string rejected;  // copies of a registry model whose bytes are not the published ones
  for (const auto& d : dirs) {
    fs::path p = fs::path(d) / file;
    if (!fs::is_regular_file(p, ec)) continue;
    if (known == nullptr || known->sha256.empty()) return p.string();
    auto sha = ModelSha256(p);
    std::string why;
    if (!sha.ok())
      why = p.string() + " cannot be read (" + sha.status().message() + ")";
    else if (*sha == known->sha256)
      return p.string();
    else
      why = p.string() + " has sha256 " + *sha + ", not the published " + known->sha256;
    WarnOnce(p.string(), "model '" + known->name + "': " + why + "; not used");
    rejected += (rejected.empty() ? "" : "; ") + why;
  }
  if (!rejected.empty())
    return Status::Corrupt("model '" + known->name + "': " + rejected +
                           ". A model whose hash does not match is never used: run `moeforge models pull --force " +
                           known->name + "`, or replace the file");
  std::string searched;
  for (const auto& d : dirs) searched += (searched.empty() ? "" : ", ") + d;
  std::string hint = known ? "run `moeforge models pull " + known->name + "`, or put " + file +
                                 " in a folder on MOEFORGE_MODEL_PATH"
                           : "give a path, or one of `moeforge models list`";
  return Status::NotFound("model '" + name_or_path + "' not found (searched " + searched + "): " + hint);
}

}  // namespace moeforge
