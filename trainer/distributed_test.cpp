// Data-parallel training (issue 21): synchronised BatchNorm, 2 Gloo ranks on loopback
// against one process with the same global batch, a rank killed mid-run, resume.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <torch/torch.h>

#include "trainer/gan.h"
#include "trainer/run.h"
#include "trainer/synthetic_faces.h"

namespace moeforge::trainer {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("moeforge_dist_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(p);
  return p.string();
}

std::string Bin() {
  const char* b = std::getenv("MOEFORGE_BIN");
  return b != nullptr ? b : std::string(MOEFORGE_BINARY_DIR) + "/cli/moeforge";
}

// Runs the binary; its stderr lands in `log` when given.
int RunBin(const std::string& args, const std::string& log = "/dev/null") {
  return WEXITSTATUS(std::system((Bin() + " " + args + " >/dev/null 2>" + log).c_str()));
}

std::string ReadFile(const std::string& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The model and batch are tiny; the randomness (augmentation, perturbation, alpha,
// noise) is all on, as in a real run.
const std::string kTiny =
    " --resolution 32 --z-dim 16 --g-channels 16 --g-blocks 2 --d-channels 8 --d-blocks 1 --threads 1"
    " --deterministic --seed 11 --sample-every 1000 --keep-snapshots 0 --no-bf16 ";

// The models as the run made them (its config.json beside the checkpoint).
struct Loaded {
  explicit Loaded(const GanConfig& c) : g(c), ema(c), d(c) {}
  Generator g, ema;
  Discriminator d;
  TrainState st;
};

std::unique_ptr<Loaded> Load(const std::string& ckpt) {
  auto config = RunConfig::FromJson(nlohmann::json::parse(ReadFile(fs::path(ckpt).parent_path() / "config.json")));
  EXPECT_TRUE(config.ok()) << ckpt << ": " << config.status().ToString();
  if (!config.ok()) return nullptr;
  auto l = std::make_unique<Loaded>(config->gan);
  Status s = LoadCheckpoint(ckpt, l->g, &l->ema, l->d, nullptr, nullptr, &l->st);
  EXPECT_TRUE(s.ok()) << ckpt << ": " << s.ToString();
  return l;
}

// Largest |a - b| over G's and D's parameters, G's BatchNorm variances, and G's output
// (train mode, a fixed batch). Left out: the biases of the convolutions that feed a
// BatchNorm and the running means they shift. BatchNorm subtracts them again, so their
// true gradient is 0 and what backward() returns is rounding noise, which Adam turns into
// steps of +-lr in either run alike: they wander, and nothing computed depends on them.
double MaxDiff(Loaded& a, Loaded& b) {
  static const std::regex kBeforeNorm(R"((^|\.)(c1|c2|post_conv|conv)\.bias$)");
  double m = 0;
  auto take = [&](const std::string& what, const torch::Tensor& x, const torch::Tensor& y) {
    const double d = (x - y).abs().max().item<double>();
    if (std::getenv("MF_DEBUG_DIFF") != nullptr) std::printf("%s: %.3g\n", what.c_str(), d);
    m = std::max(m, d);
  };
  auto ga = a.g->named_parameters(), gb = b.g->named_parameters();
  for (const auto& p : ga)
    if (!std::regex_search(p.key(), kBeforeNorm)) take("G " + p.key(), p.value(), gb[p.key()]);
  auto ba = a.g->named_buffers(), bb = b.g->named_buffers();
  for (const auto& p : ba)
    if (p.key().find("running_var") != std::string::npos) take("G " + p.key(), p.value(), bb[p.key()]);
  auto da = a.d->named_parameters(), db = b.d->named_parameters();
  for (const auto& p : da) take("D " + p.key(), p.value(), db[p.key()]);
  torch::manual_seed(5);
  auto z = torch::randn({8, 16});
  auto tags = (torch::rand({8, 34}) < 0.3).to(torch::kFloat);
  torch::NoGradGuard ng;
  take("G(z)", a.g->forward(z, tags), b.g->forward(z, tags));
  return m;
}

// A world of one: SumAcrossRanks is the identity, so SyncBatchNorm must be BatchNorm.
class OneRank : public StepComm {
 public:
  int world() const override { return 1; }
  int rank() const override { return 0; }
  void AllReduceSum(std::vector<torch::Tensor>&) override {}
  void AverageGradients(const std::vector<torch::Tensor>&) override {}
  torch::Tensor SumAcrossRanks(const torch::Tensor& x) override { return x * 1; }
};

}  // namespace

TEST(DistributedTest, SyncBatchNormOverOneRankIsBatchNorm) {
  torch::manual_seed(3);
  torch::nn::BatchNorm2d a(5), b(5);
  {
    torch::NoGradGuard ng;
    a->weight.uniform_(0.5, 1.5);
    a->bias.uniform_(-0.5, 0.5);
    b->weight.copy_(a->weight);
    b->bias.copy_(a->bias);
  }
  OneRank one;
  auto x = (torch::randn({6, 5, 4, 3}) * 3 + 1).requires_grad_(true);
  auto x2 = x.detach().clone().requires_grad_(true);
  auto ya = a(x);
  auto yb = SyncBatchNorm(*b, x2, one);
  EXPECT_LT((ya - yb).abs().max().item<double>(), 1e-5);
  EXPECT_LT((a->running_mean - b->running_mean).abs().max().item<double>(), 1e-6);
  EXPECT_LT((a->running_var - b->running_var).abs().max().item<double>(), 1e-5);
  auto w = torch::randn_like(ya);
  (ya * w).sum().backward();
  (yb * w).sum().backward();
  EXPECT_LT((x.grad() - x2.grad()).abs().max().item<double>(), 1e-4);
  EXPECT_LT((a->weight.grad() - b->weight.grad()).abs().max().item<double>(), 1e-4);
}

// 2 Gloo ranks with batch 4 each = 1 process with batch 8, after 4 steps, within 2e-5
// (fp32: float sums in another order, synchronised BatchNorm's statistics in double; under
// bf16 autocast the two agree only to bf16 rounding, ~1e-3). A 1-process run with batch 4
// (another global batch) must differ by far more.
TEST(DistributedTest, TwoGlooRanksMatchOneProcessWithTheGlobalBatch) {
  if (!fs::exists(Bin())) GTEST_SKIP() << "moeforge binary not built: " << Bin();
  const std::string ws = TempDir("equal");
  ASSERT_TRUE(MakeSyntheticFaceWorkspace(ws, 40).ok());
  const std::string k = " --steps 4 ";
  ASSERT_EQ(RunBin("train -w " + ws + " --run one --batch 8" + k + kTiny), 0);
  const std::string log = ws + "/two.log";
  ASSERT_EQ(RunBin("train -w " + ws + " --run two --batch 4 --nproc 2" + k + kTiny, log), 0) << ReadFile(log);
  EXPECT_NE(ReadFile(log).find("2 ranks over c10d (gloo), global batch 2 x 4"), std::string::npos) << ReadFile(log);
  ASSERT_EQ(RunBin("train -w " + ws + " --run small --batch 4" + k + kTiny), 0);
  auto one = Load(ws + "/runs/one/checkpoint.pt");
  auto two = Load(ws + "/runs/two/checkpoint.pt");
  auto small = Load(ws + "/runs/small/checkpoint.pt");
  EXPECT_EQ(two->st.step, 4);
  EXPECT_EQ(one->st.order, two->st.order);  // the same epoch order, split between the ranks
  const double diff = MaxDiff(*one, *two), other = MaxDiff(*one, *small);
  EXPECT_LT(diff, 2e-5) << "2 ranks x 4 differ from 1 process x 8";
  EXPECT_GT(other, 100 * 2e-5) << "a different global batch should differ by far more than the tolerance";
  std::printf("max |2 ranks - 1 process| = %.3g; with another global batch: %.3g\n", diff, other);
  fs::remove_all(ws);
}

// A rank killed mid-run: the launcher and the other rank end with errors that say so
// (no hang), the run resumes from its last checkpoint with the same number of ranks, and
// another number is refused.
TEST(DistributedTest, KilledRankEndsTheOthersAndTheRunResumes) {
  if (!fs::exists(Bin())) GTEST_SKIP() << "moeforge binary not built: " << Bin();
  const std::string ws = TempDir("kill");
  ASSERT_TRUE(MakeSyntheticFaceWorkspace(ws, 40).ok());
  const std::string common = " --run r --batch 4 --checkpoint-every 3 --dist-timeout 60" + kTiny;
  const std::string log = ws + "/launch.log";
  const std::string ckpt = ws + "/runs/r/checkpoint.pt";
  pid_t launcher = fork();
  ASSERT_GE(launcher, 0);
  if (launcher == 0) {
    int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 2);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    std::string cmd = Bin() + " train -w " + ws + " --nproc 2 --steps 100000" + common;
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), (char*)nullptr);
    _exit(127);
  }
  // Rank 1's pid from the launcher's first line; the kill once a checkpoint exists.
  std::smatch m;
  std::regex pids_re("pids (\\d+) (\\d+)");
  std::string text;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (std::chrono::steady_clock::now() < deadline) {
    text = ReadFile(log);
    if (std::regex_search(text, m, pids_re) && fs::exists(ckpt)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(std::regex_search(text, m, pids_re)) << text;
  ASSERT_TRUE(fs::exists(ckpt)) << text;
  const pid_t rank1 = std::stoi(m[2].str());
  ASSERT_EQ(kill(rank1, SIGKILL), 0);

  // The launcher ends by itself; the guard only keeps a broken build from hanging CTest.
  int wstatus = 0;
  pid_t done = 0;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  while ((done = waitpid(launcher, &wstatus, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (done == 0) {
    kill(launcher, SIGKILL);
    waitpid(launcher, &wstatus, 0);
    FAIL() << "the launcher hung after rank 1 was killed:\n" << ReadFile(log);
  }
  text = ReadFile(log);
  ASSERT_TRUE(WIFEXITED(wstatus)) << text;
  EXPECT_NE(WEXITSTATUS(wstatus), 0) << text;
  EXPECT_NE(text.find("rank 1 (pid " + std::to_string(rank1) + ") was killed by signal 9"), std::string::npos) << text;
  EXPECT_NE(text.find("rank 0 of 2: a collective with the other ranks failed"), std::string::npos) << text;
  EXPECT_NE(text.find("resumes from its last checkpoint with --resume"), std::string::npos) << text;

  auto cut = Load(ckpt);
  const int64_t at = cut->st.step;
  EXPECT_EQ(at % 3, 0);
  const std::string more = " --steps " + std::to_string(at + 3);
  const std::string refused = ws + "/refused.log";
  EXPECT_EQ(RunBin("train -w " + ws + " --resume --nproc 1" + more + common, refused), 2);
  EXPECT_NE(ReadFile(refused).find("was trained by 2 rank(s)"), std::string::npos) << ReadFile(refused);
  const std::string resumed = ws + "/resume.log";
  ASSERT_EQ(RunBin("train -w " + ws + " --resume --nproc 2" + more + common, resumed), 0) << ReadFile(resumed);
  EXPECT_EQ(Load(ckpt)->st.step, at + 3);
  fs::remove_all(ws);
}

}  // namespace moeforge::trainer
