// The scores `moeforge eval --all-snapshots` records for each of a run's generators
// (its kept snapshots and its checkpoint), WS/runs/<run>/snapshot-metrics.json, and the
// generator `--snapshot best` names from them: the one with the lowest Frechet distance,
// as StyleGAN2-ADA users pick the snapshot with the best FID.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "core/workspace.h"

namespace moeforge::trainer {

// --snapshot best, in the int64 that sample, eval and serve carry.
inline constexpr int64_t kBestSnapshot = -2;

std::string SnapshotMetricsPath(const Workspace& ws, const std::string& run);
// The recorded entries (eval's JSON per generator), by step; no file: none.
Result<std::vector<nlohmann::json>> ReadSnapshotMetrics(const Workspace& ws, const std::string& run);
// Sorts the entries by step (the checkpoint's last at a tie), then replaces the file with
// them atomically.
Status WriteSnapshotMetrics(const Workspace& ws, const std::string& run, std::vector<nlohmann::json>* entries);

// Whether an entry's generator is still the one it scored: its snapshot file is there,
// or, for the checkpoint, the run is still at the step it was scored at.
bool StillThere(const Workspace& ws, const std::string& run, const nlohmann::json& entry, int64_t checkpoint_step);
// The entry with the lowest Frechet distance among those still there.
Result<nlohmann::json> BestEntry(const Workspace& ws, const std::string& run,
                                 const std::vector<nlohmann::json>& entries, int64_t checkpoint_step);
// The run's step now, as the runs table has it (-1: no row).
Result<int64_t> CheckpointStep(const Workspace& ws, const std::string& run);
// What `--snapshot best` names: a snapshot's step, or -1 for the checkpoint.
Result<int64_t> ResolveBestSnapshot(const Workspace& ws, const std::string& run);

}  // namespace moeforge::trainer
