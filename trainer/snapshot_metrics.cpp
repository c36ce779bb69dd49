#include "trainer/snapshot_metrics.h"

#include <algorithm>
#include <filesystem>
#include <limits>

#include "db/db.h"
#include "trainer/run.h"

namespace moeforge::trainer {

namespace {

// By step, the checkpoint's entry after a snapshot's of the same step.
void SortByStep(std::vector<nlohmann::json>* entries) {
  std::stable_sort(entries->begin(), entries->end(), [](const nlohmann::json& a, const nlohmann::json& b) {
    const int64_t sa = a["step"].get<int64_t>(), sb = b["step"].get<int64_t>();
    if (sa != sb) return sa < sb;
    return a["generator"] == "snapshot" && b["generator"] != "snapshot";
  });
}

}  // namespace

std::string SnapshotMetricsPath(const Workspace& ws, const std::string& run) {
  return RunDir(ws, run) + "/snapshot-metrics.json";
}

Result<std::vector<nlohmann::json>> ReadSnapshotMetrics(const Workspace& ws, const std::string& run) {
  const std::string path = SnapshotMetricsPath(ws, run);
  if (!std::filesystem::exists(path)) return std::vector<nlohmann::json>{};
  MF_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("scored") || !j["scored"].is_array())
    return Status::Corrupt(path + ": not a snapshot metrics file (delete it and score again)");
  std::vector<nlohmann::json> entries;
  for (const auto& e : j["scored"]) {
    if (!e.is_object() || !e.contains("step") || !e["step"].is_number_integer() || !e.contains("generator") ||
        !e["generator"].is_string() || !e.contains("frechet_distance") || !e["frechet_distance"].is_number())
      return Status::Corrupt(path + ": an entry lacks a whole step, a generator or a numeric frechet_distance");
    entries.push_back(e);
  }
  SortByStep(&entries);
  return entries;
}

Status WriteSnapshotMetrics(const Workspace& ws, const std::string& run, std::vector<nlohmann::json>* entries) {
  SortByStep(entries);
  const std::string text = nlohmann::json{{"run", run}, {"scored", *entries}}.dump(1) + "\n";
  return WriteFileAtomic(SnapshotMetricsPath(ws, run), text.data(), text.size());
}

bool StillThere(const Workspace& ws, const std::string& run, const nlohmann::json& entry, int64_t checkpoint_step) {
  const int64_t step = entry["step"].get<int64_t>();
  if (entry["generator"] == "snapshot") return std::filesystem::exists(SnapshotPath(ws, run, step));
  return step == checkpoint_step && std::filesystem::exists(CheckpointPath(ws, run));
}

Result<nlohmann::json> BestEntry(const Workspace& ws, const std::string& run,
                                 const std::vector<nlohmann::json>& entries, int64_t checkpoint_step) {
  const nlohmann::json* best = nullptr;
  double best_fd = std::numeric_limits<double>::infinity();
  for (const auto& e : entries) {
    if (!StillThere(ws, run, e, checkpoint_step)) continue;
    const double fd = e["frechet_distance"].get<double>();
    if (fd < best_fd) best_fd = fd, best = &e;
  }
  if (best == nullptr)
    return Status::NotFound("run '" + run + "' has no scored generator that is still there: score them with " +
                            "`moeforge eval --run " + run + " --all-snapshots`");
  return *best;
}

Result<int64_t> CheckpointStep(const Workspace& ws, const std::string& run) {
  db::OpenOptions ro;
  ro.read_only = true;  // serve resolves `best` too, and opens the workspace read-only
  MF_ASSIGN_OR_RETURN(auto dbp, db::Database::Open(ws.db_path(), ro));
  MF_ASSIGN_OR_RETURN(auto* sel, dbp->Cached("SELECT step FROM runs WHERE name = ?"));
  sel->Bind(1, run);
  int64_t step = -1;
  MF_ASSIGN_OR_RETURN(bool row, sel->Step());
  if (row) step = sel->Int(0);
  sel->Reset();
  return step;
}

Result<int64_t> ResolveBestSnapshot(const Workspace& ws, const std::string& run) {
  MF_ASSIGN_OR_RETURN(auto entries, ReadSnapshotMetrics(ws, run));
  MF_ASSIGN_OR_RETURN(int64_t now, CheckpointStep(ws, run));
  MF_ASSIGN_OR_RETURN(auto best, BestEntry(ws, run, entries, now));
  return best["generator"] == "snapshot" ? best["step"].get<int64_t>() : int64_t{-1};
}

}  // namespace moeforge::trainer
