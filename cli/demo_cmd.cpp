// moeforge demo [--out DIR]: the whole pipeline against the in-process demo booru.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/command.h"
#include "cli/pipeline.h"
#include "core/models.h"
#include "demo_booru/server.h"
#include "trainer/trainer.h"

namespace moeforge::cli {

Command AddDemoCommand(CLI::App& root) {
  auto* app = root.add_subcommand(
      "demo", "Crawl -> detect -> tag -> train -> sample against the built-in demo booru, on loopback");
  // Sized for about 10 minutes on 2 idle cores (docs/runs/README.md, "The demo"): enough
  // posts for the tagger to learn every tag, a small 64 px generator, and a time budget
  // for its training so the demo ends on time on slower machines too (a re-run trains on).
  struct Opts {
    std::string out = "moeforge-demo";
    int posts = 1200;
    uint64_t seed = 1;
    int64_t steps = 20000;
    double train_minutes = 5;  // the training budget within the demo's ~10 minutes
    int resolution = 64;
    int tag_epochs = tagger::TagTrainOptions().epochs;
    int threads = 0;
    int port = 8766;
    bool eval = true;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  app->add_option("--out", o->out, "Folder for the demo workspace (WS = OUT/ws) and the sample grid")
      ->capture_default_str();
  app->add_option("--posts", o->posts, "Posts the demo booru serves")->capture_default_str()->check(CLI::Range(10, 100000));
  app->add_option("--seed", o->seed, "Demo booru seed")->capture_default_str();
  app->add_option("--steps", o->steps, "GAN training steps (at most; --train-minutes may stop it first)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  app->add_option("--train-minutes", o->train_minutes,
                  "Stop GAN training after this many minutes (0: only --steps); a re-run trains on from there")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_option("--resolution", o->resolution, "GAN resolution")->capture_default_str()->check(CLI::IsMember({32, 64, 128}));
  app->add_option("--tag-epochs", o->tag_epochs, "Epochs of the built-in tagger")->capture_default_str()->check(CLI::Range(1, 1000));
  app->add_option("--threads", o->threads, "Threads for every stage (0 = all cores)")->capture_default_str();
  app->add_option("--port", o->port,
                  "Loopback port of the demo booru; a fixed port keeps the source's URL, so a re-run resumes "
                  "(0 = any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app->add_flag("--eval,!--no-eval", o->eval, "Score the trained generator with the workspace tagger at the end")
      ->capture_default_str();
  app->add_flag("--json", o->json, "Stage summaries as JSON lines");
  return {app, [o]() -> int {
            // Fail early, with the fix, when a model of the default detector is missing.
            for (const char* model : {"lbpcascade_animeface", "yunet"}) {
              auto found = ResolveModel(model);
              if (!found.ok()) return Fail("demo", found.status());
            }

            demo::DemoBooru::Options bo;
            bo.posts = o->posts;
            bo.seed = o->seed;
            bo.port = o->port;
            auto booru_ptr = std::make_unique<demo::DemoBooru>(bo);
            Status s = booru_ptr->Start();
            if (!s.ok() && o->port != 0) {
              // The port is taken: any free one will do, but the crawl then sees a new source.
              std::fprintf(stderr, "demo: port %d is busy (%s); using a free port\n", o->port, s.message().c_str());
              bo.port = 0;
              booru_ptr = std::make_unique<demo::DemoBooru>(bo);
              s = booru_ptr->Start();
            }
            if (!s.ok()) return Fail("demo", s.WithContext("starting the demo booru"));
            demo::DemoBooru& booru = *booru_ptr;
            std::fprintf(stderr, "demo booru listening on %s (%d posts)\n", booru.base_url().c_str(), o->posts);

            PipelineConfig p;
            p.json = o->json;
            p.workspace = o->out + "/ws";
            p.crawl.source = "danbooru";
            p.crawl.url = booru.base_url();
            p.crawl.limit = o->posts;
            p.detect.crop_sizes = {std::max(64, o->resolution)};
            p.detect.threads = o->threads;
            p.tag_train.epochs = o->tag_epochs;
            // The demo's crops are 64 px: its tagger reads them as they are (64 px, 4
            // blocks, 2.2x cheaper than the 96 px default), which keeps it in 10 minutes.
            p.tag_train.input_size = 64;
            p.tag_train.blocks = 4;
            p.tag_train.threads = o->threads;
            p.tag.threads = o->threads;
            p.train.run = "demo";
            p.train.resolution = o->resolution;
            p.train.steps = o->steps;
            p.train.minutes = o->train_minutes;
            p.train.batch = 32;
            p.train.g_channels = 32;
            p.train.g_blocks = 4;
            p.train.d_channels = 32;
            p.train.d_blocks = 1;
            p.train.threads = o->threads;
            p.train.checkpoint_every = 250;
            p.train.sample_every = 250;
            p.train.snapshot_every = 250;
            // One labelled row per hair colour, the same noise down each column: what the
            // conditioning changes, enlarged for the eye.
            p.sample.by = "hair_color";
            p.sample.n = 8;
            p.sample.seed = 1;
            p.sample.scale = o->resolution >= 64 ? 2 : 4;
            p.sample.out = std::filesystem::absolute(o->out + "/sample.png").string();
            auto out = RunPipeline(p);
            booru.Stop();
            if (!out.ok()) return Fail("demo", out.status());
            if (o->eval) {
              trainer::EvalOptions eo;
              eo.run = p.train.run;
              eo.threads = o->threads;
              auto e = trainer::Eval(Workspace(p.workspace), eo);
              if (!e.ok()) return Fail("demo", e.status().WithContext("eval"));
              const auto& f = (*e)["label_fidelity"];
              auto pct = [&](const char* g) { return f.contains(g) ? 100.0 * f[g].get<double>() : -1.0; };
              if (o->json) {
                std::printf("%s\n", e->dump().c_str());
              } else {
                std::printf("eval: step %lld, %d generated faces judged by the workspace tagger: hair colour %.1f%%, "
                            "eye colour %.1f%%, hair style %.1f%%, other tags %.1f%%; FD %.2f (real halves %.2f); "
                            "precision %.2f recall %.2f\n",
                            static_cast<long long>((*e)["step"].get<int64_t>()), eo.n, pct("hair_color"),
                            pct("eye_color"), pct("hair_style"), pct("other"), (*e)["frechet_distance"].get<double>(),
                            (*e)["frechet_distance_real_halves"].get<double>(), (*e)["precision_k3"].get<double>(),
                            (*e)["recall_k3"].get<double>());
              }
            }
            std::printf("demo: done; workspace %s, faces by hair colour at %s\n", p.workspace.c_str(), out->c_str());
            return 0;
          }};
}

}  // namespace moeforge::cli
