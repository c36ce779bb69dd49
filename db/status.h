// Per-stage counts of a workspace, for `moeforge status`.
#pragma once

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "db/db.h"

namespace moeforge::db {

// {"schema_version", "posts": {state: n}, "images", "near_duplicates", "faces": {detector: n},
//  "tagged": {tagger: faces}, "views", "runs": [{"name","state","step"}], "last_stage_runs": [...]}
Result<nlohmann::json> WorkspaceStatus(Database& db);
// The human-readable form, several lines.
std::string FormatStatus(const nlohmann::json& status);

}  // namespace moeforge::db
