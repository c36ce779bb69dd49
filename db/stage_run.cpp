#include "db/stage_run.h"

#include <chrono>
#include <cstdio>
#include <ctime>

#include <fmt/format.h>

namespace moeforge::db {

std::string NowIso() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms % 1000);
}

std::string StageSummary::ToLine() const {
  std::string line = fmt::format("{}: {} done, {} skipped, {} failed", stage, done, skipped, failed);
  if (!failures.empty()) {
    line += " (";
    bool first = true;
    for (const auto& [reason, n] : failures) {
      line += fmt::format("{}{} {}", first ? "" : ", ", reason, n);
      first = false;
    }
    line += ")";
  }
  line += fmt::format(" in {:.1f} s, {:.1f}/s", seconds, rate());
  for (const auto& [k, v] : extra.items()) line += fmt::format(", {} {}", k, v.dump());
  return line;
}

nlohmann::json StageSummary::ToJson() const {
  nlohmann::json j = {{"stage", stage},     {"done", done},          {"skipped", skipped},
                      {"failed", failed},   {"failures", failures},  {"seconds", seconds},
                      {"items_per_s", rate()}};
  for (const auto& [k, v] : extra.items()) j[k] = v;
  return j;
}

Result<int64_t> BeginStageRun(Database& db, const std::string& stage, const nlohmann::json& params) {
  MF_ASSIGN_OR_RETURN(Stmt * st, db.Cached("INSERT INTO stage_runs(stage, started_at, params_json) VALUES(?,?,?)"));
  MF_RETURN_IF_ERROR(st->BindAll(stage, NowIso(), params.dump()).Run());
  return db.LastInsertRowid();
}

Status FinishStageRun(Database& db, int64_t id, const StageSummary& s) {
  MF_ASSIGN_OR_RETURN(Stmt * st, db.Cached(
      "UPDATE stage_runs SET finished_at=?, done=?, skipped=?, failed=?, failures_json=?, seconds=? WHERE id=?"));
  return st->BindAll(NowIso(), s.done, s.skipped, s.failed, nlohmann::json(s.failures).dump(), s.seconds, id).Run();
}

void PrintSummary(const StageSummary& s, bool json) {
  std::string line = json ? s.ToJson().dump() : s.ToLine();
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

}  // namespace moeforge::db
