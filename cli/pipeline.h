// crawl -> detect -> tag (train the built-in tagger, then tag) -> view -> train -> sample, as
// one job: `moeforge run CONFIG.toml` reads it from TOML, `moeforge demo` fills it in
// for the in-process demo booru. Every stage is incremental, so re-running a pipeline
// resumes it.
#pragma once

#include <string>

#include "core/config.h"
#include "core/status.h"
#include "crawler/crawler.h"
#include "db/dataset.h"
#include "detector/detector.h"
#include "tagger/tagger.h"
#include "trainer/trainer.h"

namespace moeforge::cli {

struct PipelineConfig {
  std::string workspace;
  bool crawl_enabled = true;
  crawler::CrawlOptions crawl;
  bool detect_enabled = true;
  detector::DetectOptions detect;
  bool tag_train_enabled = true;  // train the built-in tagger from source tags first
  tagger::TagTrainOptions tag_train;
  bool tag_enabled = true;
  tagger::TagOptions tag;         // tag.tagger empty: the tagger just trained
  // The set the generator trains on: a named view created (or replaced) before training
  // when train.view is not given. By default it leaves out faces of monochrome images,
  // which carry colour tags they do not show (docs/runs/README.md: hair fidelity 78% with
  // them, 88% without).
  bool view_enabled = true;
  db::ViewInfo view{"clean", "mono_score < 0.5", "", ""};
  bool train_enabled = true;
  trainer::TrainOptions train;
  bool sample_enabled = true;
  trainer::SampleOptions sample;  // sample.out relative paths are under the workspace
  bool json = false;
};

// Reads [crawl] [detect] [tag_train] [tag] [view] [train] [sample] tables (keys named as the
// command-line flags, with '_' for '-') and `workspace`; unknown keys are errors.
Status BindPipelineConfig(const Config& cfg, PipelineConfig* p);

// Runs the enabled stages in order, printing each stage's summary; returns the path
// of the sample grid (empty when sampling is off).
Result<std::string> RunPipeline(PipelineConfig p);

}  // namespace moeforge::cli
