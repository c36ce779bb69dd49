// moeforge view create -w WS NAME --where EXPR [--tagger T] | view list -w WS
#include <cstdio>

#include "cli/command.h"
#include "db/dataset.h"

namespace moeforge::cli {

Command AddViewCommand(CLI::App& root) {
  auto* app = root.add_subcommand("view", "Named, reusable dataset filters");
  app->require_subcommand(1);
  struct Opts {
    std::string ws, name, where, tagger;
  };
  auto o = std::make_shared<Opts>();
  auto* create = app->add_subcommand("create", "Create or replace a view (an SQL expression over v_dataset)");
  create->add_option("-w,--workspace", o->ws, "Workspace folder")->required();
  create->add_option("NAME", o->name, "View name")->required();
  create->add_option("--where", o->where,
                     "SQL expression over v_dataset's columns (face_id, post_id, source, x, y, w, h, score, "
                     "detector, crop_size, sharpness, mono_score, pad_frac, rating, faces_in_image, ...)")
      ->required();
  create->add_option("--tagger", o->tagger, "Tagger whose tags the view uses (default: the newest)");
  auto* list = app->add_subcommand("list", "List the views and how many faces each selects");
  list->add_option("-w,--workspace", o->ws, "Workspace folder")->required();
  return {app, [=]() -> int {
            auto database = db::OpenWorkspace(Workspace(o->ws));
            if (!database.ok()) return Fail("view", database.status());
            if (create->parsed()) {
              Status s = db::CreateView(**database, {o->name, o->where, o->tagger, ""});
              if (!s.ok()) return Fail("view create", s);
              auto n = (*database)->QueryInt("SELECT count(*) FROM v_dataset WHERE (" + o->where + ")");
              std::printf("view %s: %lld faces\n", o->name.c_str(), n.ok() ? static_cast<long long>(*n) : -1LL);
              return 0;
            }
            auto views = db::ListViews(**database);
            if (!views.ok()) return Fail("view list", views.status());
            for (const auto& v : *views) {
              auto n = (*database)->QueryInt("SELECT count(*) FROM v_dataset WHERE (" + v.where_sql + ")");
              std::printf("%-16s %6lld faces  tagger=%s  where %s\n", v.name.c_str(),
                          n.ok() ? static_cast<long long>(*n) : -1LL, v.tagger.empty() ? "(newest)" : v.tagger.c_str(),
                          v.where_sql.c_str());
            }
            return 0;
          }};
}

}  // namespace moeforge::cli
