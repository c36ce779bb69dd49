// The filter language (db/filter.h): whatever a user types compiles to an error or to an
// SQL condition that SQLite accepts with exactly its bound parameters. A compiled filter
// that SQLite rejects, or whose placeholder count differs from its parameters, is a bug
// (the text would reach SQL some other way than as a bound value): the target traps.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include <sqlite3.h>

#include "core/tag_schema.h"
#include "db/db.h"
#include "db/filter.h"

using namespace moeforge;

namespace {

db::Database* Schema() {
  static std::unique_ptr<db::Database> db = [] {
    db::OpenOptions o;
    o.create = true;
    auto d = db::Database::Open(":memory:", o);
    if (!d.ok() || !db::Migrate(**d).ok()) std::abort();
    return std::move(d).value();
  }();
  return db.get();
}

void Check(const db::CompiledFilter& f) {
  auto st = Schema()->Prepare("SELECT count(*) FROM v_dataset WHERE " + f.sql);
  if (!st.ok()) {
    std::fprintf(stderr, "compiled filter is not SQL: %s\n  %s\n", f.sql.c_str(), st.status().ToString().c_str());
    __builtin_trap();
  }
  if (sqlite3_bind_parameter_count(st->raw()) != static_cast<int>(f.params.size())) {
    std::fprintf(stderr, "placeholders %d, params %zu: %s\n", sqlite3_bind_parameter_count(st->raw()),
                 f.params.size(), f.sql.c_str());
    __builtin_trap();
  }
  db::BindParams(*st, 1, f.params);
  if (!st->Step().ok()) {
    std::fprintf(stderr, "compiled filter fails to run: %s\n", f.sql.c_str());
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;  // a filter is a line a person types
  std::string text(reinterpret_cast<const char*>(data), size);
  static const db::TaggerInfo tagger = [] {
    db::TaggerInfo t;
    t.id = 1;
    t.name = "fuzz";
    t.schema = TagSchema::Default();
    t.thresholds.assign(t.schema.size(), 0.5f);
    return t;
  }();
  auto without = db::CompileFilter(text, nullptr);
  if (without.ok()) Check(*without);
  auto with = db::CompileFilter(text, &tagger);
  if (with.ok()) Check(*with);
  return 0;
}
