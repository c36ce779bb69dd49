// moeforge view create|list|show|delete: named, reusable dataset filters (db/dataset.h;
// the filter language in docs/filters.md).
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "db/dataset.h"

namespace moeforge::cli {

namespace {

std::string Pins(const db::ViewInfo& v) {
  return "detector=" + (v.detector.empty() ? std::string("(newest)") : v.detector) +
         "  tagger=" + (v.tagger.empty() ? std::string("(newest)") : v.tagger);
}

// `view show`: the view, its counts and how many of its faces carry each tag, group by
// group, as the dataset a trainer or exporter loads would have them.
int Show(db::Database& database, const std::string& name, bool json) {
  auto v = db::GetView(database, name);
  if (!v.ok()) return Fail("view show", v.status());
  auto count = db::CountView(database, name);
  if (!count.ok()) return Fail("view show", count.status());
  // Before any tagger has run there are counts but no tags to break them down by.
  nlohmann::json groups = nlohmann::json::object();
  std::vector<TagGroup> schema_groups;
  std::string tagger;
  if (!count->tagger.empty()) {
    auto ds = db::LoadDataset(database, name, "");
    if (!ds.ok()) return Fail("view show", ds.status());
    const TagSchema& schema = ds->schema;
    std::vector<int64_t> per_tag(static_cast<size_t>(schema.size()), 0);
    for (size_t i = 0; i < ds->size(); ++i) {
      auto tv = ds->TagVector(i);
      for (size_t k = 0; k < tv.size(); ++k) per_tag[k] += tv[k] > 0.5f ? 1 : 0;
    }
    for (const auto& g : schema.groups()) {
      nlohmann::json tags = nlohmann::json::object();
      for (const auto& t : g.tags) tags[t] = per_tag[static_cast<size_t>(schema.IndexOf(t))];
      groups[g.name] = tags;
    }
    schema_groups = schema.groups();
    tagger = ds->tagger;
  }
  if (json) {
    nlohmann::json j = {{"name", v->name}, {"filter", v->filter}, {"detector", count->detector},
                        {"tagger", tagger}, {"faces", count->selected}, {"of", count->of},
                        {"created_at", v->created_at}, {"tags", groups}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("view %s: %lld of %lld faces\n  where   %s\n  %s\n  created %s\n", v->name.c_str(),
              static_cast<long long>(count->selected), static_cast<long long>(count->of),
              v->filter.empty() ? "(every face)" : v->filter.c_str(), Pins(*v).c_str(), v->created_at.c_str());
  for (const auto& g : schema_groups) {
    std::printf("  %s%s:", g.name.c_str(), g.exclusive ? " (one of)" : "");
    for (const auto& t : g.tags) std::printf(" %s %lld", t.c_str(), static_cast<long long>(groups[g.name][t].get<int64_t>()));
    std::printf("\n");
  }
  return 0;
}

}  // namespace

Command AddViewCommand(CLI::App& root) {
  auto* app = root.add_subcommand("view", "Named, reusable dataset filters (docs/filters.md)");
  app->require_subcommand(1);
  struct Opts {
    std::string ws, name;
    db::ViewInfo view;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* create = app->add_subcommand("create", "Create or replace a view; it pins the detector and tagger it uses");
  create->add_option("-w,--workspace", o->ws, "Workspace folder")->required();
  create->add_option("NAME", o->view.name, "View name")->required();
  create->add_option("--where", o->view.filter,
                     "Filter, e.g. \"face_size >= 64 and mono_score < 0.5 and hair_color = blonde and not glasses\" "
                     "(docs/filters.md); empty: every face")
      ->required();
  create->add_option("--tagger", o->view.tagger, "Tagger whose tags the view uses, NAME or NAME@SHA256-PREFIX (default: the newest)");
  create->add_option("--detector", o->view.detector, "Detector whose faces the view uses, NAME or NAME@SHA256-PREFIX (default: the newest)");
  auto* list = app->add_subcommand("list", "List the views and how many faces each selects");
  list->add_option("-w,--workspace", o->ws, "Workspace folder")->required();
  list->add_flag("--json", o->json, "One JSON object per view");
  auto* show = app->add_subcommand("show", "A view's filter, pins and counts per tag group");
  show->add_option("-w,--workspace", o->ws, "Workspace folder")->required();
  show->add_option("NAME", o->name, "View name")->required();
  show->add_flag("--json", o->json, "Print one JSON object");
  auto* del = app->add_subcommand("delete", "Delete a view (its faces and tags stay)");
  del->add_option("-w,--workspace", o->ws, "Workspace folder")->required();
  del->add_option("NAME", o->name, "View name")->required();
  return {app, [=]() -> int {
            auto database = db::OpenWorkspace(Workspace(o->ws));
            if (!database.ok()) return Fail("view", database.status());
            db::Database& d = **database;
            if (create->parsed()) {
              Status s = db::CreateView(d, o->view);
              if (!s.ok()) return Fail("view create", s);
              auto n = db::CountView(d, o->view.name);
              if (!n.ok()) return Fail("view create", n.status());
              std::printf("view %s: %lld of %lld faces (detector %s, tagger %s)\n", o->view.name.c_str(),
                          static_cast<long long>(n->selected), static_cast<long long>(n->of),
                          n->detector.empty() ? "none yet" : n->detector.c_str(),
                          n->tagger.empty() ? "none yet" : n->tagger.c_str());
              return 0;
            }
            if (show->parsed()) return Show(d, o->name, o->json);
            if (del->parsed()) {
              Status s = db::DeleteView(d, o->name);
              if (!s.ok()) return Fail("view delete", s);
              std::printf("view %s deleted\n", o->name.c_str());
              return 0;
            }
            auto views = db::ListViews(d);
            if (!views.ok()) return Fail("view list", views.status());
            for (const auto& v : *views) {
              auto n = db::CountView(d, v.name);
              long long selected = n.ok() ? static_cast<long long>(n->selected) : -1;
              if (o->json) {
                nlohmann::json j = {{"name", v.name}, {"filter", v.filter}, {"detector", v.detector},
                                    {"tagger", v.tagger}, {"faces", selected}, {"created_at", v.created_at}};
                if (!n.ok()) j["error"] = n.status().message();
                std::printf("%s\n", j.dump().c_str());
              } else {
                std::printf("%-16s %6lld faces  %s  where %s\n", v.name.c_str(), selected, Pins(v).c_str(),
                            v.filter.empty() ? "(every face)" : v.filter.c_str());
              }
            }
            return 0;
          }};
}

}  // namespace moeforge::cli
