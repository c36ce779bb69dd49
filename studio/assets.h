// The studio's pages, scripts and styles (studio/web/), embedded in the binary at build
// time by embed_assets.cmake: `moeforge serve` needs no files and no network.
#pragma once

#include <cstddef>
#include <string>

namespace moeforge::studio {

struct Asset {
  const char* name;          // the file name under studio/web/, e.g. "dataset.html"
  const char* content_type;
  const char* data;
  size_t size;
};

// The asset of that exact file name, or null. Names come from the build, never a path.
const Asset* FindAsset(const std::string& name);

}  // namespace moeforge::studio
