// moeforge tag -w WS --tagger SPEC: score every face the tagger has not scored yet.
// moeforge tag train -w WS: train the built-in tagger from source tags.
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/options.h"
#include "tagger/tagger.h"

namespace moeforge::cli {

Command AddTagCommand(CLI::App& root) {
  auto* app = root.add_subcommand("tag", "Tag face crops with a tagger (or `tag train` the built-in one)");
  auto ws = std::make_shared<std::string>();
  auto o = std::make_shared<tagger::TagOptions>();
  app->add_option("-w,--workspace", *ws, "Workspace folder");
  TagOptionTable(o.get()).AddFlags(app);
  app->add_flag("--json", o->json, "Summary line as JSON");
  app->fallthrough(false);

  auto* train = app->add_subcommand("train", "Train the built-in tagger on single-character posts' faces");
  auto tws = std::make_shared<std::string>();
  auto t = std::make_shared<tagger::TagTrainOptions>();
  train->add_option("-w,--workspace", *tws, "Workspace folder")->required();
  TagTrainOptionTable(t.get()).AddFlags(train);
  train->add_flag("--json", t->json, "Summary line as JSON");

  return {app, [=]() -> int {
            if (train->parsed()) {
              auto r = tagger::TrainTagger(Workspace(*tws), *t);
              if (!r.ok()) return Fail("tag train", r.status());
              db::PrintSummary(*r, t->json);
              return 0;
            }
            if (ws->empty()) return Fail("tag", Status::InvalidArgument("-w WS is required"));
            if (o->tagger.empty())
              return Fail("tag", Status::InvalidArgument("--tagger is required (builtin:MODEL, wd14:PATH or i2v:PATH)"));
            auto r = tagger::Tag(Workspace(*ws), *o);
            if (!r.ok()) return Fail("tag", r.status());
            db::PrintSummary(*r, o->json);
            return 0;
          }};
}

}  // namespace moeforge::cli
