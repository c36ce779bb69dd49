#include "db/status.h"

#include <fmt/format.h>

namespace moeforge::db {

namespace {
// Runs `sql` (two columns: key, count) into a JSON object.
Result<nlohmann::json> CountsBy(Database& db, const std::string& sql) {
  MF_ASSIGN_OR_RETURN(Stmt st, db.Prepare(sql));
  nlohmann::json out = nlohmann::json::object();
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out[st.Text(0)] = st.Int(1);
  }
  return out;
}
}  // namespace

Result<nlohmann::json> WorkspaceStatus(Database& db) {
  nlohmann::json j;
  MF_ASSIGN_OR_RETURN(j["schema_version"], db.QueryInt("PRAGMA user_version"));
  MF_ASSIGN_OR_RETURN(j["sources"], db.QueryInt("SELECT count(*) FROM sources"));
  MF_ASSIGN_OR_RETURN(j["posts"], CountsBy(db, "SELECT state, count(*) FROM posts GROUP BY state ORDER BY state"));
  MF_ASSIGN_OR_RETURN(j["images"], db.QueryInt("SELECT count(*) FROM images WHERE near_dup_of IS NULL"));
  MF_ASSIGN_OR_RETURN(j["near_duplicates"], db.QueryInt("SELECT count(*) FROM images WHERE near_dup_of IS NOT NULL"));
  MF_ASSIGN_OR_RETURN(j["faces"], CountsBy(db, "SELECT d.name, count(f.id) FROM detectors d "
                                               "LEFT JOIN faces f ON f.detector_id = d.id GROUP BY d.id ORDER BY d.id"));
  MF_ASSIGN_OR_RETURN(j["images_detected"], CountsBy(db, "SELECT d.name, count(*) FROM detections_done dd "
                                                         "JOIN detectors d ON d.id = dd.detector_id GROUP BY d.id ORDER BY d.id"));
  MF_ASSIGN_OR_RETURN(j["tagged"], CountsBy(db, "SELECT t.name, (SELECT count(DISTINCT face_id) FROM face_tags ft "
                                                "WHERE ft.tagger_id = t.id) FROM taggers t ORDER BY t.id"));
  MF_ASSIGN_OR_RETURN(j["views"], db.QueryInt("SELECT count(*) FROM views"));
  MF_ASSIGN_OR_RETURN(Stmt runs, db.Prepare("SELECT name, state, step FROM runs ORDER BY id"));
  j["runs"] = nlohmann::json::array();
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, runs.Step());
    if (!row) break;
    j["runs"].push_back({{"name", runs.Text(0)}, {"state", runs.Text(1)}, {"step", runs.Int(2)}});
  }
  return j;
}

std::string FormatStatus(const nlohmann::json& j) {
  auto counts = [](const nlohmann::json& obj) {
    std::string s;
    int64_t total = 0;
    for (const auto& [k, v] : obj.items()) {
      s += fmt::format("{}{} {}", s.empty() ? "" : ", ", k, v.get<int64_t>());
      total += v.get<int64_t>();
    }
    return s.empty() ? std::string("0") : fmt::format("{} ({})", total, s);
  };
  std::string out;
  out += fmt::format("posts:   {}\n", counts(j["posts"]));
  out += fmt::format("images:  {} stored, {} near duplicates\n", j["images"].get<int64_t>(),
                     j["near_duplicates"].get<int64_t>());
  out += fmt::format("detected images: {}\n", counts(j["images_detected"]));
  out += fmt::format("faces:   {}\n", counts(j["faces"]));
  out += fmt::format("tagged:  {}\n", counts(j["tagged"]));
  out += fmt::format("views:   {}\n", j["views"].get<int64_t>());
  std::string runs;
  for (const auto& r : j["runs"])
    runs += fmt::format("{}{} ({}, step {})", runs.empty() ? "" : ", ", r["name"].get<std::string>(),
                        r["state"].get<std::string>(), r["step"].get<int64_t>());
  out += fmt::format("runs:    {}", runs.empty() ? "none" : runs);
  return out;
}

}  // namespace moeforge::db
