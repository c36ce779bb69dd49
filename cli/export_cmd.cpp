// moeforge export -w WS [--view NAME] --format imagefolder|captions|stylegan|webdataset --out DIR
#include "cli/command.h"
#include "exporter/exporter.h"

namespace moeforge::cli {

Command AddExportCommand(CLI::App& root) {
  auto* app = root.add_subcommand("export", "Write a dataset view as ImageFolder, captions, StyleGAN2-ADA zip or WebDataset");
  struct Opts {
    std::string ws;
    exporter::ExportOptions e;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  app->add_option("-w,--workspace", o->ws, "Workspace folder")->required();
  app->add_option("--view", o->e.view, "View to export (default: every tagged face of the newest detector)");
  app->add_option("--tagger", o->e.tagger, "Tagger whose tags to write (default: the view's, else the newest)");
  app->add_option("--format", o->e.format, "Output format")
      ->required()
      ->check(CLI::IsMember({"imagefolder", "captions", "stylegan", "webdataset"}));
  app->add_option("--out", o->e.out, "Output folder")->required();
  app->add_option("--class-group", o->e.class_group, "imagefolder: the exclusive tag group naming the class folders")
      ->capture_default_str();
  app->add_option("--shard-size", o->e.shard_size, "webdataset: samples per tar shard")->capture_default_str();
  app->add_flag("--all-tags", o->e.all_tags, "captions: after the schema's tags, the tags the site gave the post");
  app->add_flag("--json", o->json, "Print the summary as one JSON object");
  return {app, [o]() -> int {
            auto s = exporter::Export(Workspace(o->ws), o->e);
            if (!s.ok()) return Fail("export", s.status());
            db::PrintSummary(*s, o->json);
            return 0;
          }};
}

}  // namespace moeforge::cli
