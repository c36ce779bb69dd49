#include "core/models.h"

#include <cstdlib>
#include <filesystem>
#include <sstream>

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
  for (const auto& d : dirs) {
    fs::path p = fs::path(d) / file;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  std::string searched;
  for (const auto& d : dirs) searched += (searched.empty() ? "" : ", ") + d;
  std::string hint = known ? "run `moeforge models pull " + known->name + "`, or put " + file +
                                 " in a folder on MOEFORGE_MODEL_PATH"
                           : "give a path, or one of `moeforge models list`";
  return Status::NotFound("model '" + name_or_path + "' not found (searched " + searched + "): " + hint);
}

}  // namespace moeforge
