// crawl -> detect -> tag (train the built-in tagger, then tag) -> view -> train -> sample, as
// one job: `moeforge run CONFIG.toml` reads it from TOML, `moeforge demo` fills it in
// for the in-process demo booru. Every stage is incremental, so re-running a pipeline
// resumes it.
#pragma once

#include <string>
#include <vector>

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
  // Run only the stages from `from` to `until` (crawl detect tag_train tag view train
  // sample; "" = the first / the last).
  std::string from;
  std::string until;
};

// Reads [crawl] [detect] [tag_train] [tag] [view] [train] [sample] tables (keys named as the
// command-line flags, with '_' for '-') and `workspace`; unknown keys are errors.
Status BindPipelineConfig(const Config& cfg, PipelineConfig* p);

// Runs the enabled stages in order, printing each stage's summary and, last, a report of
// every stage and where the results are; returns the path of the sample grid (empty when
// sampling is off). Re-running continues: each stage does only what is not done, the
// built-in tagger is retrained only when its training data or parameters changed (their
// hash sits beside the model), and a training run found is resumed to train.steps.
Result<std::string> RunPipeline(PipelineConfig p);

// The closing report: one line per stage run (counts, seconds, rate), the workspace, the
// training run's folder and the sample grid; with `json` one JSON object.
void PrintRunReport(const std::vector<db::StageSummary>& stages, const std::string& workspace,
                    const std::string& run_dir, const std::string& grid, bool json);

}  // namespace moeforge::cli
