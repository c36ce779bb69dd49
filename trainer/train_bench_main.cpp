// moeforge-train-bench: training images per second of the DRAGAN step (the same
// TrainStep the trainer runs) on synthetic data, for bench/train_compare.sh to set
// beside bench/train_reference.py (the same model, loss and batch in Python PyTorch).
//   moeforge-train-bench [--resolution 64] [--batch 64] [--steps 5] [--warmup 1]
//                        [--threads 0] [--g-blocks 16] [--memory-format contiguous|channels_last]
//                        [--bf16]
// Prints one JSON line.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "trainer/gan.h"

using namespace moeforge::trainer;

int main(int argc, char** argv) {
  CLI::App app{"Training throughput of the moeforge DRAGAN step"};
  GanConfig c;
  int batch = 64, steps = 5, warmup = 1, threads = 0;
  std::string memory_format = "contiguous";
  bool bf16 = false;
  int gp_every = 1;
  app.add_option("--resolution", c.resolution)->capture_default_str();
  app.add_option("--batch", batch)->capture_default_str();
  app.add_option("--steps", steps, "Timed steps")->capture_default_str();
  app.add_option("--warmup", warmup, "Untimed steps first")->capture_default_str();
  app.add_option("--threads", threads, "0: all cores")->capture_default_str();
  app.add_option("--g-channels", c.g_channels)->capture_default_str();
  app.add_option("--g-blocks", c.g_blocks)->capture_default_str();
  app.add_option("--d-channels", c.d_channels)->capture_default_str();
  app.add_option("--d-blocks", c.d_blocks)->capture_default_str();
  app.add_option("--memory-format", memory_format, "contiguous|channels_last")->capture_default_str();
  app.add_flag("--bf16", bf16, "CPU bf16 autocast");
  app.add_option("--gp-every", gp_every, "Gradient penalty on every Nth step")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (UpsampleBlocks(c.resolution) < 0) {
    std::fprintf(stderr, "--resolution must be 32, 64 or 128\n");
    return 2;
  }
  int nthreads = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  torch::set_num_threads(nthreads);
  torch::manual_seed(0);
  const torch::Device device = torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  Generator g(c);
  Discriminator d(c);
  g->to(device);
  d->to(device);
  bool cl = memory_format == "channels_last";
  g->channels_last = d->channels_last = cl;
  ToMemoryFormat(*g, cl);
  ToMemoryFormat(*d, cl);
  torch::optim::Adam og(g->parameters(), torch::optim::AdamOptions(2e-4).betas({0.5, 0.999}));
  torch::optim::Adam od(d->parameters(), torch::optim::AdamOptions(2e-4).betas({0.5, 0.999}));
  auto real = (torch::rand({batch, 3, c.resolution, c.resolution}) * 2 - 1).to(device);
  auto tags = (torch::rand({batch, c.tags}) > 0.8).to(torch::kFloat).to(device);
  StepConfig sc{double(c.tags), 0.5, bf16 && !device.is_cuda()};
  sc.gp_every = gp_every;
  auto sync = [&] {
    if (device.is_cuda()) tags.sum().item<float>();  // waits for the queued kernels
  };
  StepLosses l;
  for (int i = 0; i < warmup; ++i) l = TrainStep(g, d, og, od, real, tags, torch::randn({batch, c.z_dim}, real.options()), tags, sc, i);
  sync();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) l = TrainStep(g, d, og, od, real, tags, torch::randn({batch, c.z_dim}, real.options()), tags, sc, i);
  sync();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json j = {{"impl", "cpp"},       {"resolution", c.resolution}, {"batch", batch},
                      {"threads", nthreads}, {"g_blocks", c.g_blocks},     {"memory_format", memory_format},
                      {"bf16", bf16}, {"gp_every", gp_every},        {"device", device.is_cuda() ? "cuda" : "cpu"},        {"steps", steps},             {"step_s", s / steps},
                      {"img_per_s", batch * steps / s}, {"d_loss", l.d_total}, {"g_loss", l.g_total}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}
