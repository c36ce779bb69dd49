#include "cli/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/options.h"
#include "core/hash.h"

#include "db/db.h"
#include "db/stage_run.h"

namespace moeforge::cli {

Status BindPipelineConfig(const Config& cfg, PipelineConfig* p) {
  ConfigBinder b(cfg);
  b.Bind("workspace", &p->workspace);
  b.Bind("json", &p->json);

  // Each stage's keys are its command's flags (cli/options.h), plus enabled.
  b.Bind("crawl.enabled", &p->crawl_enabled);
  CrawlOptionTable(&p->crawl).Bind(b);
  b.Bind("detect.enabled", &p->detect_enabled);
  DetectOptionTable(&p->detect).Bind(b);
  b.Bind("tag_train.enabled", &p->tag_train_enabled);
  TagTrainOptionTable(&p->tag_train).Bind(b);
  b.Bind("tag.enabled", &p->tag_enabled);
  TagOptionTable(&p->tag).Bind(b);

  b.Bind("view.enabled", &p->view_enabled);
  b.Bind("view.name", &p->view.name);
  b.Bind("view.where", &p->view.filter);
  b.Bind("view.tagger", &p->view.tagger);
  b.Bind("view.detector", &p->view.detector);

  b.Bind("train.enabled", &p->train_enabled);
  TrainOptionTable(&p->train).Bind(b);
  b.Bind("sample.enabled", &p->sample_enabled);
  SampleOptionTable(&p->sample).Bind(b);
  MF_RETURN_IF_ERROR(b.Finish());
  if (p->workspace.empty()) return Status::InvalidArgument(cfg.origin() + ": `workspace` is required");
  if (p->crawl_enabled && (p->crawl.source.empty() || p->crawl.url.empty()))
    return Status::InvalidArgument(cfg.origin() + ": [crawl] needs source and url (or enabled = false)");
  return Status::Ok();
}

namespace {

// The stages in order, named as their TOML tables, for --from and --until.
const std::vector<std::string> kStages = {"crawl", "detect", "tag_train", "tag", "view", "train", "sample"};

Result<size_t> StageIndex(const std::string& name, const char* flag) {
  std::string n = name;
  std::replace(n.begin(), n.end(), '-', '_');
  for (size_t i = 0; i < kStages.size(); ++i)
    if (kStages[i] == n) return i;
  std::string all;
  for (const auto& st : kStages) all += (all.empty() ? "" : ", ") + st;
  return Status::InvalidArgument(std::string(flag) + " '" + name + "': not a stage (" + all + ")");
}

// What the built-in tagger would be trained from: its parameters and the faces and source
// tags it reads. Equal hashes mean retraining would give the same model, so a re-run
// skips it.
Result<std::string> TagTrainInputsHash(db::Database& db, const tagger::TagTrainOptions& o) {
  Sha256 h;
  std::string text = tagger::TagTrainParams(o).dump() + "\n";
  h.Update(text.data(), text.size());
  for (const char* sql : {"SELECT f.id || ' ' || f.detector_id || ' ' || f.image_sha256 || ' ' || coalesce(f.crop_path, '') "
                          "FROM faces f ORDER BY f.id",
                          "SELECT p.id || ' ' || coalesce(p.image_sha256, '') || ' ' || st.tag FROM source_tags st "
                          "JOIN posts p ON p.id = st.post_id ORDER BY p.id, st.tag"}) {
    MF_ASSIGN_OR_RETURN(db::Stmt st, db.Prepare(sql));
    while (true) {
      MF_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      std::string line = st.Text(0) + "\n";
      h.Update(line.data(), line.size());
    }
  }
  return h.HexDigest();
}

std::string InputsPath(const std::string& model) { return model + ".inputs-sha256"; }

}  // namespace

Result<std::string> RunPipeline(PipelineConfig p) {
  size_t from = 0, until = kStages.size() - 1;
  if (!p.from.empty()) {
    MF_ASSIGN_OR_RETURN(from, StageIndex(p.from, "--from"));
  }
  if (!p.until.empty()) {
    MF_ASSIGN_OR_RETURN(until, StageIndex(p.until, "--until"));
  }
  if (from > until) return Status::InvalidArgument("--from " + p.from + " comes after --until " + p.until);
  Workspace ws(p.workspace);
  {
    auto database = db::OpenWorkspace(ws, /*create=*/true);
    if (!database.ok()) return database.status();
  }
  auto runs = [&](const char* stage, bool enabled) {
    size_t i = *StageIndex(stage, "");
    return enabled && i >= from && i <= until;
  };
  std::vector<db::StageSummary> done;
  auto report = [&](const char* stage, const Result<db::StageSummary>& r) -> Status {
    if (!r.ok()) return r.status().WithContext(stage);
    db::PrintSummary(*r, p.json);
    done.push_back(*r);
    return Status::Ok();
  };
  if (runs("crawl", p.crawl_enabled)) {
    p.crawl.json = p.json;
    MF_RETURN_IF_ERROR(report("crawl", crawler::Crawl(ws, p.crawl)));
  }
  if (runs("detect", p.detect_enabled)) {
    p.detect.json = p.json;
    MF_RETURN_IF_ERROR(report("detect", detector::Detect(ws, p.detect)));
  }
  if (p.tag_train_enabled) {
    // The model tag_train writes is the tagger even when --from skips its training.
    if (p.tag_train.out.empty()) p.tag_train.out = ws.models_dir() + "/builtin-tagger.pt";
    if (p.tag.tagger.empty()) p.tag.tagger = "builtin:" + p.tag_train.out;
  }
  if (runs("tag_train", p.tag_train_enabled)) {
    p.tag_train.json = p.json;
    MF_ASSIGN_OR_RETURN(auto database, db::OpenWorkspace(ws));
    MF_ASSIGN_OR_RETURN(std::string inputs, TagTrainInputsHash(*database, p.tag_train));
    auto recorded = ReadFile(InputsPath(p.tag_train.out));
    if (std::filesystem::exists(p.tag_train.out) && recorded.ok() && *recorded == inputs + "\n") {
      db::StageSummary sum;
      sum.stage = "tag-train";
      sum.skipped = 1;
      sum.extra = {{"model", p.tag_train.out}, {"reason", "its training data and parameters are unchanged"}};
      MF_RETURN_IF_ERROR(report("tag train", sum));
    } else {
      MF_RETURN_IF_ERROR(report("tag train", tagger::TrainTagger(ws, p.tag_train)));
      std::string line = inputs + "\n";
      MF_RETURN_IF_ERROR(WriteFileAtomic(InputsPath(p.tag_train.out), line.data(), line.size()));
    }
  }
  if (runs("tag", p.tag_enabled)) {
    if (p.tag.tagger.empty())
      return Status::InvalidArgument("[tag] needs a tagger (builtin:MODEL|wd14:DIR|i2v:DIR) when tag_train is off");
    p.tag.json = p.json;
    MF_RETURN_IF_ERROR(report("tag", tagger::Tag(ws, p.tag)));
  }
  if (p.view_enabled && p.train_enabled && p.train.view.empty()) {
    MF_ASSIGN_OR_RETURN(auto database, db::OpenWorkspace(ws));
    if (runs("view", true)) {
      MF_RETURN_IF_ERROR(db::CreateView(*database, p.view).WithContext("view " + p.view.name));
      MF_ASSIGN_OR_RETURN(db::ViewCount n, db::CountView(*database, p.view.name));
      db::StageSummary sum;
      sum.stage = "view";
      sum.done = n.selected;
      sum.skipped = n.of - n.selected;
      sum.params = {{"name", p.view.name}, {"where", p.view.filter}};
      sum.extra = {{"view", p.view.name}, {"where", p.view.filter}, {"detector", n.detector}, {"tagger", n.tagger}};
      MF_RETURN_IF_ERROR(report("view", sum));
      if (n.selected == 0)
        return Status::InvalidArgument("view " + p.view.name + " (" + p.view.filter + ") has no faces to train on");
      p.train.view = p.view.name;
    } else if (db::GetView(*database, p.view.name).ok()) {
      p.train.view = p.view.name;  // --from train: the view an earlier run made
    }
  }
  std::string run_dir;
  if (runs("train", p.train_enabled)) {
    p.train.json = p.json;
    // A run found is continued to the configured steps, a run not found is started:
    // `moeforge run` is re-run to finish what it began.
    p.train.resume = std::filesystem::exists(ws.runs_dir() + "/" + p.train.run + "/config.json");
    MF_RETURN_IF_ERROR(report("train", trainer::Train(ws, p.train)));
    run_dir = ws.runs_dir() + "/" + p.train.run;
  }
  std::string grid;
  if (runs("sample", p.sample_enabled)) {
    if (p.sample.run.empty()) p.sample.run = p.train.run;
    if (p.sample.out.empty()) p.sample.out = "sample.png";
    if (!std::filesystem::path(p.sample.out).is_absolute()) p.sample.out = ws.root() + "/" + p.sample.out;
    auto t0 = std::chrono::steady_clock::now();
    MF_ASSIGN_OR_RETURN(grid, trainer::Sample(ws, p.sample));
    db::StageSummary sum;
    sum.stage = "sample";
    sum.done = p.sample.n;
    sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sum.extra = {{"out", grid}};
    MF_RETURN_IF_ERROR(report("sample", sum));
  }
  PrintRunReport(done, ws.root(), run_dir, grid, p.json);
  return grid;
}

void PrintRunReport(const std::vector<db::StageSummary>& stages, const std::string& workspace,
                    const std::string& run_dir, const std::string& grid, bool json) {
  nlohmann::json j = {{"stage", "run"}, {"workspace", workspace}, {"stages", nlohmann::json::array()}};
  std::string text = "run report (workspace " + workspace + "):\n";
  double total = 0;
  for (const auto& s : stages) {
    j["stages"].push_back(s.ToJson());
    total += s.seconds;
    text += fmt::format("  {:<10} {:>7} done {:>6} skipped {:>5} failed {:>8.1f} s {:>9.1f}/s\n", s.stage, s.done,
                        s.skipped, s.failed, s.seconds, s.rate());
  }
  j["seconds"] = total;
  text += fmt::format("  total: {:.1f} s\n", total);
  if (!run_dir.empty()) {
    j["run_dir"] = run_dir;
    text += "  run: " + run_dir + "\n";
  }
  if (!grid.empty()) {
    j["sample"] = grid;
    text += "  sample grid: " + grid + "\n";
  }
  if (json) std::printf("%s\n", j.dump().c_str());
  else std::printf("%s", text.c_str());
  std::fflush(stdout);
}

}  // namespace moeforge::cli
