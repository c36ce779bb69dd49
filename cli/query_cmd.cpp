// moeforge query -w WS "SELECT ...": raw SQL for people and scripts, on a connection that
// cannot write. Views and every other command take the filter language instead
// (docs/filters.md); this is the one place SQL typed by a user reaches SQLite.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "db/db.h"

namespace moeforge::cli {

namespace {

// Three locks: the file is opened read-only, query_only refuses writes the open mode
// might not (ATTACH of another file, temp tables), and a statement SQLite does not call
// read-only is refused before it runs, with a message rather than an SQLite error.
Status RunQuery(const Workspace& ws, const std::string& sql, bool json) {
  db::OpenOptions opts;
  opts.read_only = true;
  auto opened = db::Database::Open(ws.db_path(), opts);
  if (!opened.ok()) {
    if (opened.status().code() == Status::Code::kNotFound)
      return Status::NotFound("no workspace at " + ws.root() + " (create one with `moeforge init`)");
    return opened.status();
  }
  db::Database& database = **opened;
  MF_RETURN_IF_ERROR(database.Exec("PRAGMA query_only = 1"));
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  if (sqlite3_prepare_v2(database.raw(), sql.c_str(), static_cast<int>(sql.size()), &raw, &tail) != SQLITE_OK)
    return Status::InvalidArgument(std::string("the query does not compile: ") + sqlite3_errmsg(database.raw()));
  db::Stmt st(raw);
  if (raw == nullptr) return Status::InvalidArgument("the query is empty");
  for (const char* p = tail; p != nullptr && *p != '\0'; ++p)
    if (*p != ' ' && *p != '\n' && *p != '\t' && *p != '\r' && *p != ';')
      return Status::InvalidArgument("one statement at a time, please (found more after the first ';')");
  if (!sqlite3_stmt_readonly(raw))
    return Status::InvalidArgument("moeforge query only reads; use the stage commands to change a workspace");
  int n = sqlite3_column_count(raw);
  std::vector<std::string> names;
  for (int c = 0; c < n; ++c) names.push_back(sqlite3_column_name(raw, c));
  if (!json) {
    std::string header;
    for (int c = 0; c < n; ++c) header += (c ? "\t" : "") + names[static_cast<size_t>(c)];
    std::printf("%s\n", header.c_str());
  }
  while (true) {
    auto row = st.Step();
    if (!row.ok()) return Status::InvalidArgument(row.status().message());
    if (!*row) break;
    nlohmann::json obj = nlohmann::json::object();
    std::string line;
    for (int c = 0; c < n; ++c) {
      int type = sqlite3_column_type(raw, c);
      const std::string& key = names[static_cast<size_t>(c)];
      if (json) {
        if (type == SQLITE_NULL) obj[key] = nullptr;
        else if (type == SQLITE_INTEGER) obj[key] = st.Int(c);
        else if (type == SQLITE_FLOAT) obj[key] = st.Double(c);
        else obj[key] = st.Text(c);
      } else {
        line += (c ? "\t" : "") + (type == SQLITE_NULL ? std::string() : st.Text(c));
      }
    }
    std::printf("%s\n", json ? obj.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str() : line.c_str());
  }
  return Status::Ok();
}

}  // namespace

Command AddQueryCommand(CLI::App& root) {
  auto* app = root.add_subcommand("query", "Run one read-only SQL statement over the workspace (views: v_faces, "
                                           "v_face_tags, v_source_tags, v_dataset)");
  struct Opts {
    std::string ws, sql;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  app->add_option("-w,--workspace", o->ws, "Workspace folder")->required();
  app->add_option("SQL", o->sql, "One SELECT (or other read-only) statement")->required();
  app->add_flag("--json", o->json, "One JSON object per row instead of tab-separated text");
  return {app, [o]() -> int {
            Status s = RunQuery(Workspace(o->ws), o->sql, o->json);
            return s.ok() ? 0 : Fail("query", s);
          }};
}

}  // namespace moeforge::cli
