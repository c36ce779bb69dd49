// moeforge train -w WS [--view NAME] [--run NAME] [--resolution 32|64|128] [--steps N]
//                [--batch B] [--threads T] [--resume] [--nproc N] ...
#include <memory>

#include "cli/command.h"
#include "trainer/trainer.h"

namespace moeforge::cli {

Command AddTrainCommand(CLI::App& root) {
  auto* app = root.add_subcommand("train", "Train the conditional DRAGAN on a dataset view's faces and tags");
  auto ws = std::make_shared<std::string>();
  auto o = std::make_shared<trainer::TrainOptions>();
  app->add_option("-w,--workspace", *ws, "Workspace folder")->required();
  app->add_option("--view", o->view, "Dataset view (\"\": every tagged face)")->capture_default_str();
  app->add_option("--run", o->run, "Run name: WS/runs/<run>/")->capture_default_str();
  app->add_option("--tagger", o->tagger, "Tagger whose tags to train on (\"\": the view's or the newest)")
      ->capture_default_str();
  app->add_option("--resolution", o->resolution, "Image side: 32, 64 or 128")->capture_default_str();
  app->add_option("--minutes", o->minutes, "Also stop after this many minutes of training (0: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app->add_option("--steps", o->steps, "Total training steps (a resumed run continues up to this)")
      ->capture_default_str();
  app->add_option("--batch", o->batch, "Batch size")->capture_default_str();
  app->add_option("--threads", o->threads, "CPU threads (0: all cores)")->capture_default_str();
  app->add_flag("--resume", o->resume, "Continue the run from its checkpoint, to the step");
  app->add_option("--nproc", o->nproc, "Data-parallel processes (c10d; only 1 in this build)")->capture_default_str();
  app->add_option("--z-dim", o->z_dim, "Noise dimensions")->capture_default_str();
  app->add_option("--g-channels", o->g_channels, "Generator width")->capture_default_str();
  app->add_option("--g-blocks", o->g_blocks, "Generator residual blocks")->capture_default_str();
  app->add_option("--d-channels", o->d_channels, "Discriminator width at its first stage")->capture_default_str();
  app->add_option("--d-blocks", o->d_blocks, "Discriminator residual blocks per stage")->capture_default_str();
  app->add_option("--lr", o->lr, "Adam learning rate of G (and of D unless --lr-d)")->capture_default_str();
  app->add_option("--lr-d", o->lr_d, "Adam learning rate of D (0: --lr)")->capture_default_str();
  app->add_option("--beta1", o->beta1, "Adam beta1")->capture_default_str();
  app->add_option("--beta2", o->beta2, "Adam beta2")->capture_default_str();
  app->add_option("--l-adv", o->l_adv, "Weight of the real/fake loss (< 0: the number of tags)")
      ->capture_default_str();
  app->add_option("--l-gp", o->l_gp, "Weight of the DRAGAN gradient penalty")->capture_default_str();
  app->add_option("--ema-kimg", o->ema_kimg,
                  "Half-life of the generator's moving average, in thousands of images (0: no average; "
                  "sample, eval and serve use the average)")
      ->capture_default_str();
  app->add_option("--ema-rampup", o->ema_rampup, "The half-life is at most this share of the images seen so far (0: off)")
      ->capture_default_str();
  app->add_flag("--icnr,!--no-icnr", o->icnr,
                "ICNR initialisation of the sub-pixel convolutions, against the checkerboard (default on)");
  app->add_option("--augment", o->augment,
                  "Differentiable augmentation of what D sees: any of color,translation,cutout, or none")
      ->capture_default_str();
  app->add_option("--snapshot-every", o->snapshot_every, "Snapshot the sampling generator every N steps")
      ->capture_default_str();
  app->add_option("--keep-snapshots", o->keep_snapshots, "Keep the newest N snapshots (0: none)")
      ->capture_default_str();
  app->add_option("--checkpoint-every", o->checkpoint_every, "Checkpoint every N steps (and at exit)")
      ->capture_default_str();
  app->add_option("--sample-every", o->sample_every, "Sample grid every N steps (and at exit)")
      ->capture_default_str();
  app->add_option("--seed", o->seed, "Random seed")->capture_default_str();
  app->add_flag("--deterministic", o->deterministic, "Deterministic algorithms (resume reproduces exactly)");
  app->add_option("--memory-format", o->memory_format, "auto|contiguous|channels_last")->capture_default_str();
  app->add_flag("--bf16,!--no-bf16", o->bf16,
                "bfloat16 autocast on CPU (default on where the CPU has native bf16; --no-bf16: fp32)")
      ->capture_default_str();
  app->add_flag("--json", o->json, "Print the summary as one JSON object");
  return {app, [ws, o]() -> int {
            auto s = trainer::Train(Workspace(*ws), *o);
            if (!s.ok()) return Fail("train", s.status());
            db::PrintSummary(*s, o->json);
            return 0;
          }};
}

}  // namespace moeforge::cli
