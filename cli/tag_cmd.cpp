// moeforge tag -w WS --tagger SPEC: score every face the tagger has not scored yet.
// moeforge tag train -w WS: train the built-in tagger from source tags.
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "tagger/tagger.h"

namespace moeforge::cli {

Command AddTagCommand(CLI::App& root) {
  auto* app = root.add_subcommand("tag", "Tag face crops with a tagger (or `tag train` the built-in one)");
  auto ws = std::make_shared<std::string>();
  auto o = std::make_shared<tagger::TagOptions>();
  app->add_option("-w,--workspace", *ws, "Workspace folder");
  app->add_option("--tagger", o->tagger, "builtin:MODEL | wd14:DIR_OR_ONNX | i2v:DIR (prototxt + caffemodel + tag_list.json)");
  app->add_option("--threshold", o->thresholds,
                  "Decision threshold: one for every tag, or one per schema tag (default: the tagger's)")
      ->delimiter(',');
  app->add_option("--batch", o->batch, "Faces per forward pass")->capture_default_str();
  app->add_option("--threads", o->threads, "Threads (0 = all cores)")->capture_default_str();
  app->add_option("--schema", o->schema, "External taggers: tag schema TOML to map onto (default: the 34)");
  app->add_option("--detector", o->detector, "Only faces of this detector (name as in v_faces)");
  app->add_option("--limit", o->limit, "At most this many faces this run (0 = all)")->capture_default_str();
  app->add_flag("--json", o->json, "Summary line as JSON");
  app->fallthrough(false);

  auto* train = app->add_subcommand("train", "Train the built-in tagger on the faces of single- and multi-character posts");
  auto tws = std::make_shared<std::string>();
  auto t = std::make_shared<tagger::TagTrainOptions>();
  train->add_option("-w,--workspace", *tws, "Workspace folder")->required();
  train->add_option("--out", t->out, "Model file (default: WS/models/builtin-tagger.pt)");
  train->add_option("--epochs", t->epochs, "The most training epochs")->capture_default_str();
  train->add_option("--patience", t->patience,
                    "Stop after this many epochs without a better validation score (0 = never); the best epoch is kept")
      ->capture_default_str();
  train->add_flag("--multi-character,!--no-multi-character", t->multi_character,
                  "Also learn from faces of multi-character posts (negatives for the tags the post lacks)")
      ->capture_default_str();
  train->add_flag("--augment,!--no-augment", t->augment, "Flip, zoom and shift training crops")->capture_default_str();
  train->add_option("--label-smoothing", t->label_smoothing, "Binary targets pulled this far towards 0.5")
      ->capture_default_str();
  train->add_option("--input-size", t->input_size, "Crops are resized to this square")->capture_default_str();
  train->add_option("--batch", t->batch, "Batch size")->capture_default_str();
  train->add_option("--lr", t->lr, "AdamW learning rate")->capture_default_str();
  train->add_option("--width", t->width, "Channels of the first conv block")->capture_default_str();
  train->add_option("--pool", t->pool, "Global pool before the head: avg, or avgmax (average and max, for small features)")
      ->check(CLI::IsMember({"avg", "avgmax"}))
      ->capture_default_str();
  train->add_flag("--bf16,!--no-bf16", t->bf16,
                  "bf16 autocast in training where the CPU has native bf16 (AVX512-BF16/AMX); scoring stays fp32")
      ->capture_default_str();
  train->add_option("--threads", t->threads, "Threads (0 = all cores)")->capture_default_str();
  train->add_option("--val-fraction", t->val_fraction, "Share of posts held out for threshold calibration")
      ->capture_default_str();
  train->add_option("--seed", t->seed, "Seed (split, init, augmentation)")->capture_default_str();
  train->add_option("--schema", t->schema, "Tag schema TOML (default: the MakeGirlsMoe 34)");
  train->add_option("--detector", t->detector, "Only faces of this detector");
  train->add_option("--max-faces", t->max_faces, "Train on at most this many faces (0 = all)")->capture_default_str();
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
