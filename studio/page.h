// The page `moeforge serve` answers at / (private to studio/): one self-contained HTML
// document, rendered on the server for one run so that it works without fetching the
// schema; its script only switches runs, draws seeds and asks /api/sample.png.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tag_schema.h"

namespace moeforge::server {

struct PageRun {
  std::string name;
  std::string state;  // running|done|failed
  int64_t step = 0;
  std::string updated_at;
  int resolution = 0;
  bool has_checkpoint = false;
};

struct PageModel {
  std::vector<PageRun> runs;
  std::string run;        // the run shown ("" when the workspace has none)
  const TagSchema* schema = nullptr;  // its schema; null when `error` says why not
  std::string error;
  int max_n = 64;
  int default_n = 16;
};

std::string RenderPage(const PageModel& m);

}  // namespace moeforge::server
