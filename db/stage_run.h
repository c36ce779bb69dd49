// What every stage run leaves behind (STYLE.md, img2dataset): a one-line summary on
// stdout (a JSON object with --json) and a row in stage_runs with the same counts.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "db/db.h"

namespace moeforge::db {

struct StageSummary {
  std::string stage;
  int64_t done = 0;
  int64_t skipped = 0;
  int64_t failed = 0;
  std::map<std::string, int64_t> failures;  // reason -> count
  double seconds = 0;
  nlohmann::json params = nlohmann::json::object();
  nlohmann::json extra = nlohmann::json::object();  // stage-specific figures

  void Fail(const std::string& reason, int64_t n = 1) {
    failed += n;
    failures[reason] += n;
  }
  double rate() const { return seconds > 0 ? done / seconds : 0.0; }
  // "crawl: 480 done, 12 skipped, 8 failed (http_404 5, corrupt 3) in 3.2 s, 150.0/s"
  std::string ToLine() const;
  nlohmann::json ToJson() const;
};

// UTC now as 2026-11-25T14:17:26.123Z.
std::string NowIso();

// Starts a stage_runs row; returns its id.
Result<int64_t> BeginStageRun(Database& db, const std::string& stage, const nlohmann::json& params);
// Fills in the row's counts and finish time.
Status FinishStageRun(Database& db, int64_t id, const StageSummary& s);
// Prints the summary on stdout (as JSON when `json`), the stage's closing line.
void PrintSummary(const StageSummary& s, bool json);

}  // namespace moeforge::db
