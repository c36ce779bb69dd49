#include "cli/pipeline.h"

#include <cstdio>
#include <filesystem>

#include "db/db.h"
#include "db/stage_run.h"

namespace moeforge::cli {

Status BindPipelineConfig(const Config& cfg, PipelineConfig* p) {
  ConfigBinder b(cfg);
  b.Bind("workspace", &p->workspace);
  b.Bind("json", &p->json);

  b.Bind("crawl.enabled", &p->crawl_enabled);
  auto& c = p->crawl;
  b.Bind("crawl.source", &c.source);
  b.Bind("crawl.url", &c.url);
  b.Bind("crawl.tags", &c.tags);
  b.Bind("crawl.limit", &c.limit);
  b.Bind("crawl.concurrency", &c.concurrency);
  b.Bind("crawl.rate", &c.rate);
  b.Bind("crawl.robots", &c.robots);
  b.Bind("crawl.contact", &c.user_agent_contact);
  b.Bind("crawl.labels", &c.labels);
  b.Bind("crawl.max_bytes", &c.max_bytes);
  b.Bind("crawl.max_pixels", &c.max_pixels);
  b.Bind("crawl.near_dup_threshold", &c.near_dup_threshold);
  b.Bind("crawl.depth", &c.depth);
  b.Bind("crawl.timeout", &c.timeout_s);
  b.Bind("crawl.retries", &c.retries);
  b.Bind("crawl.ca_file", &c.ca_file);

  b.Bind("detect.enabled", &p->detect_enabled);
  auto& d = p->detect;
  b.Bind("detect.detector", &d.detector);
  b.Bind("detect.model", &d.model);
  b.Bind("detect.crop_size", &d.crop_sizes);
  b.Bind("detect.margin", &d.margin);
  b.Bind("detect.max_pad", &d.max_pad);
  b.Bind("detect.min_face", &d.min_face);
  b.Bind("detect.threads", &d.threads);
  b.Bind("detect.scale_factor", &d.scale_factor);
  b.Bind("detect.min_neighbors", &d.min_neighbors);
  b.Bind("detect.score_threshold", &d.score_threshold);

  b.Bind("tag_train.enabled", &p->tag_train_enabled);
  auto& tt = p->tag_train;
  b.Bind("tag_train.out", &tt.out);
  b.Bind("tag_train.epochs", &tt.epochs);
  b.Bind("tag_train.patience", &tt.patience);
  b.Bind("tag_train.multi_character", &tt.multi_character);
  b.Bind("tag_train.augment", &tt.augment);
  b.Bind("tag_train.label_smoothing", &tt.label_smoothing);
  b.Bind("tag_train.input_size", &tt.input_size);
  b.Bind("tag_train.batch", &tt.batch);
  b.Bind("tag_train.threads", &tt.threads);
  b.Bind("tag_train.val_fraction", &tt.val_fraction);
  b.Bind("tag_train.lr", &tt.lr);
  b.Bind("tag_train.width", &tt.width);
  b.Bind("tag_train.pool", &tt.pool);
  b.Bind("tag_train.bf16", &tt.bf16);
  b.Bind("tag_train.seed", &tt.seed);
  b.Bind("tag_train.schema", &tt.schema);

  b.Bind("tag.enabled", &p->tag_enabled);
  b.Bind("tag.tagger", &p->tag.tagger);
  b.Bind("tag.batch", &p->tag.batch);
  b.Bind("tag.threads", &p->tag.threads);

  b.Bind("view.enabled", &p->view_enabled);
  b.Bind("view.name", &p->view.name);
  b.Bind("view.where", &p->view.where_sql);
  b.Bind("view.tagger", &p->view.tagger);

  b.Bind("train.enabled", &p->train_enabled);
  auto& t = p->train;
  b.Bind("train.view", &t.view);
  b.Bind("train.run", &t.run);
  b.Bind("train.tagger", &t.tagger);
  b.Bind("train.resolution", &t.resolution);
  b.Bind("train.steps", &t.steps);
  b.Bind("train.minutes", &t.minutes);
  b.Bind("train.batch", &t.batch);
  b.Bind("train.threads", &t.threads);
  b.Bind("train.resume", &t.resume);
  b.Bind("train.g_channels", &t.g_channels);
  b.Bind("train.g_blocks", &t.g_blocks);
  b.Bind("train.d_channels", &t.d_channels);
  b.Bind("train.d_blocks", &t.d_blocks);
  b.Bind("train.lr", &t.lr);
  b.Bind("train.l_gp", &t.l_gp);
  b.Bind("train.l_adv", &t.l_adv);
  b.Bind("train.checkpoint_every", &t.checkpoint_every);
  b.Bind("train.sample_every", &t.sample_every);
  b.Bind("train.seed", &t.seed);

  b.Bind("sample.enabled", &p->sample_enabled);
  b.Bind("sample.tags", &p->sample.tags);
  b.Bind("sample.n", &p->sample.n);
  b.Bind("sample.seed", &p->sample.seed);
  b.Bind("sample.out", &p->sample.out);
  MF_RETURN_IF_ERROR(b.Finish());
  if (p->workspace.empty()) return Status::InvalidArgument(cfg.origin() + ": `workspace` is required");
  if (p->crawl_enabled && (p->crawl.source.empty() || p->crawl.url.empty()))
    return Status::InvalidArgument(cfg.origin() + ": [crawl] needs source and url (or enabled = false)");
  return Status::Ok();
}

Result<std::string> RunPipeline(PipelineConfig p) {
  Workspace ws(p.workspace);
  {
    auto database = db::OpenWorkspace(ws, /*create=*/true);
    if (!database.ok()) return database.status();
  }
  auto report = [&](const char* stage, const Result<db::StageSummary>& r) -> Status {
    if (!r.ok()) return r.status().WithContext(stage);
    db::PrintSummary(*r, p.json);
    return Status::Ok();
  };
  if (p.crawl_enabled) {
    p.crawl.json = p.json;
    MF_RETURN_IF_ERROR(report("crawl", crawler::Crawl(ws, p.crawl)));
  }
  if (p.detect_enabled) {
    p.detect.json = p.json;
    MF_RETURN_IF_ERROR(report("detect", detector::Detect(ws, p.detect)));
  }
  if (p.tag_train_enabled) {
    if (p.tag_train.out.empty()) p.tag_train.out = ws.models_dir() + "/builtin-tagger.pt";
    p.tag_train.json = p.json;
    MF_RETURN_IF_ERROR(report("tag train", tagger::TrainTagger(ws, p.tag_train)));
    if (p.tag.tagger.empty()) p.tag.tagger = "builtin:" + p.tag_train.out;
  }
  if (p.tag_enabled) {
    if (p.tag.tagger.empty())
      return Status::InvalidArgument("[tag] needs a tagger (builtin:MODEL|wd14:DIR|i2v:DIR) when tag_train is off");
    p.tag.json = p.json;
    MF_RETURN_IF_ERROR(report("tag", tagger::Tag(ws, p.tag)));
  }
  if (p.view_enabled && p.train_enabled && p.train.view.empty()) {
    MF_ASSIGN_OR_RETURN(auto database, db::OpenWorkspace(ws));
    MF_RETURN_IF_ERROR(db::CreateView(*database, p.view).WithContext("view " + p.view.name));
    MF_ASSIGN_OR_RETURN(int64_t n, database->QueryInt("SELECT count(*) FROM v_dataset WHERE (" + p.view.where_sql + ")"));
    MF_ASSIGN_OR_RETURN(int64_t all, database->QueryInt("SELECT count(*) FROM v_dataset"));
    db::StageSummary sum;
    sum.stage = "view";
    sum.done = n;
    sum.skipped = all - n;
    sum.params = {{"name", p.view.name}, {"where", p.view.where_sql}};
    sum.extra = {{"view", p.view.name}, {"where", p.view.where_sql}};
    db::PrintSummary(sum, p.json);
    if (n == 0) return Status::InvalidArgument("view " + p.view.name + " (" + p.view.where_sql + ") has no faces to train on");
    p.train.view = p.view.name;
  }
  if (p.train_enabled) {
    p.train.json = p.json;
    MF_RETURN_IF_ERROR(report("train", trainer::Train(ws, p.train)));
  }
  if (!p.sample_enabled) return std::string();
  if (p.sample.run.empty()) p.sample.run = p.train.run;
  if (p.sample.out.empty()) p.sample.out = "sample.png";
  if (!std::filesystem::path(p.sample.out).is_absolute()) p.sample.out = ws.root() + "/" + p.sample.out;
  return trainer::Sample(ws, p.sample);
}

}  // namespace moeforge::cli
