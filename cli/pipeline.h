// crawl -> detect -> tag (train the built-in tagger, then tag) -> train -> sample, as
// one job: `moeforge run CONFIG.toml` reads it from TOML, `moeforge demo` fills it in
// for the in-process demo booru. Every stage is incremental, so re-running a pipeline
// resumes it.
#pragma once

#include <string>

#include "core/config.h"
#include "core/status.h"
#include "crawler/crawler.h"
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
  bool train_enabled = true;
  trainer::TrainOptions train;
  bool sample_enabled = true;
  trainer::SampleOptions sample;  // sample.out relative paths are under the workspace
  bool json = false;
};

// Reads [crawl] [detect] [tag_train] [tag] [train] [sample] tables (keys named as the
// command-line flags, with '_' for '-') and `workspace`; unknown keys are errors.
Status BindPipelineConfig(const Config& cfg, PipelineConfig* p);

// Runs the enabled stages in order, printing each stage's summary; returns the path
// of the sample grid (empty when sampling is off).
Result<std::string> RunPipeline(PipelineConfig p);

}  // namespace moeforge::cli
