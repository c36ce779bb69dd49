// Trainer tests: the gradient penalty against finite differences, the loss terms on a
// tiny fixed batch, the models' shapes, the tag sampler, the packed cache, the
// distribution metrics, and (through the real binary) train / sample / kill + resume.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "core/tag_schema.h"
#include "core/workspace.h"
#include "db/db.h"
#include "db/stage_run.h"
#include "tagger/builtin/builtin_tagger.h"
#include "tagger/metrics.h"
#include "trainer/data_cache.h"
#include "trainer/eval_metrics.h"
#include "trainer/gan.h"
#include "trainer/output_template.h"
#include "trainer/run.h"
#include "trainer/synthetic_faces.h"

namespace fs = std::filesystem;
using namespace moeforge;
using namespace moeforge::trainer;

namespace {

GanConfig Tiny(int res = 32) {
  GanConfig c;
  c.resolution = res;
  c.tags = 34;
  c.z_dim = 16;
  c.g_channels = 8;
  c.g_blocks = 1;
  c.d_channels = 4;
  c.d_blocks = 1;
  return c;
}

std::string TempDir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("moeforge_trainer_test_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

}  // namespace

TEST(GanTest, UpsampleBlocksByResolution) {
  struct Case { int res, up, stages; };
  for (Case c : {Case{32, 1, 2}, Case{64, 2, 3}, Case{128, 3, 4}, Case{48, -1, -1}, Case{256, -1, -1}}) {
    EXPECT_EQ(UpsampleBlocks(c.res), c.up) << c.res;
    EXPECT_EQ(DiscriminatorStages(c.res), c.stages) << c.res;
  }
}

TEST(GanTest, ShapesAndRange) {
  torch::manual_seed(0);
  for (int res : {32, 64, 128})
  for (std::string up : {"shuffle", "nearest"})
  for (std::string down : {"conv", "pool"}) {
    SCOPED_TRACE(up + " " + down);
    auto c = Tiny(res);
    c.upsample = up;
    c.d_down = down;
    Generator g(c);
    Discriminator d(c);
    auto img = g->forward(torch::randn({3, c.z_dim}), torch::zeros({3, c.tags}));
    ASSERT_EQ(img.sizes(), (std::vector<int64_t>{3, 3, res, res})) << res;
    EXPECT_LE(img.abs().max().item<float>(), 1.0f);
    auto out = d->forward(img);
    EXPECT_EQ(out.logit.sizes(), (std::vector<int64_t>{3}));
    EXPECT_EQ(out.tags.sizes(), (std::vector<int64_t>{3, c.tags}));
  }
}

TEST(GanTest, ChannelsLastGivesTheSameOutputs) {
  torch::manual_seed(1);
  auto c = Tiny(32);
  Generator g(c);
  Discriminator d(c);
  auto z = torch::randn({2, c.z_dim});
  auto tags = torch::zeros({2, c.tags});
  auto a = d->forward(g->forward(z, tags)).logit;
  g->channels_last = d->channels_last = true;
  ToMemoryFormat(*g, true);
  ToMemoryFormat(*d, true);
  auto b = d->forward(g->forward(z, tags)).logit;
  EXPECT_TRUE(torch::allclose(a, b, 1e-4, 1e-5));
}

TEST(GanTest, PerturbStaysWithinHalfAStd) {
  torch::manual_seed(2);
  auto x = torch::randn({4, 3, 8, 8});
  auto d = Perturb(x) - x;
  double half_std = 0.5 * x.std().item<double>();
  EXPECT_GE(d.min().item<double>(), 0.0);
  EXPECT_LT(d.max().item<double>(), half_std);
  EXPECT_GT(d.max().item<double>(), 0.5 * half_std);  // U[0,1) actually spans the range
}

// The penalty against an independent computation: the input gradient of D by central
// finite differences, in double precision.
TEST(GanTest, GradientPenaltyMatchesFiniteDifferences) {
  torch::manual_seed(3);
  auto c = Tiny(32);
  c.d_channels = 2;
  Discriminator d(c);
  d->to(torch::kDouble);
  const int n = 2;
  auto x = torch::randn({n, 3, 32, 32}, torch::kDouble);
  auto x_p = x + 0.5 * x.std() * torch::rand_like(x);
  auto alpha = torch::tensor({0.25, 0.8}, torch::kDouble);
  auto gp = GradientPenalty(d, x, x_p, alpha).item<double>();

  torch::NoGradGuard ng;
  auto x_hat = x + alpha.view({n, 1, 1, 1}) * (x_p - x);
  const double h = 1e-5;
  double expected = 0;
  for (int i = 0; i < n; ++i) {
    auto base = x_hat[i].reshape({-1});
    const int64_t m = base.numel();
    double sq = 0;
    // All one-element perturbations of sample i, in chunks, as one batch each.
    for (int64_t s = 0; s < m; s += 512) {
      int64_t e = std::min(m, s + 512);
      auto eye = torch::zeros({e - s, m}, torch::kDouble);
      for (int64_t k = s; k < e; ++k) eye[k - s][k] = h;
      auto plus = d->forward((base.unsqueeze(0) + eye).view({e - s, 3, 32, 32})).logit;
      auto minus = d->forward((base.unsqueeze(0) - eye).view({e - s, 3, 32, 32})).logit;
      sq += ((plus - minus) / (2 * h)).pow(2).sum().item<double>();
    }
    expected += std::pow(std::sqrt(sq) - 1, 2);
  }
  expected /= n;
  EXPECT_NEAR(gp, expected, 1e-6 * std::max(1.0, expected));
}

TEST(GanTest, GradientPenaltyTrainsTheDiscriminator) {
  torch::manual_seed(4);
  auto c = Tiny(32);
  Discriminator d(c);
  auto x = torch::randn({2, 3, 32, 32});
  auto gp = GradientPenalty(d, x, Perturb(x));
  gp.backward();
  double gsum = 0;
  for (auto& p : d->parameters())
    if (p.grad().defined()) gsum += p.grad().abs().sum().item<double>();
  EXPECT_GT(gsum, 0.0);
}

// BCE-with-logits by hand on a two-sample batch with two tags.
TEST(GanTest, LossTermsOnAFixedBatch) {
  auto bce = [](double logit, double y) {
    double p = 1 / (1 + std::exp(-logit));
    return -(y * std::log(p) + (1 - y) * std::log(1 - p));
  };
  DiscriminatorOut real{torch::tensor({2.0f, -1.0f}), torch::tensor({{1.0f, -2.0f}, {0.5f, 0.0f}})};
  DiscriminatorOut fake{torch::tensor({0.0f, 3.0f}), torch::tensor({{-1.0f, 1.0f}, {2.0f, -3.0f}})};
  auto real_tags = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}});
  auto fake_tags = torch::tensor({{0.0f, 1.0f}, {1.0f, 1.0f}});
  auto gp = torch::tensor(0.3f);
  auto dl = DiscriminatorLoss(real, fake, real_tags, gp, 2.0, 0.5);
  double adv = (bce(2, 1) + bce(-1, 1)) / 2 + (bce(0, 0) + bce(3, 0)) / 2;
  double cls = (bce(1, 1) + bce(-2, 0) + bce(0.5, 0) + bce(0, 1)) / 2;  // summed over the 2 tags, averaged over the 2 samples
  EXPECT_NEAR(dl.adv.item<double>(), adv, 1e-5);
  EXPECT_NEAR(dl.cls.item<double>(), cls, 1e-5);
  EXPECT_NEAR(dl.total.item<double>(), 2 * adv + cls + 0.5 * 0.3, 1e-5);

  auto gl = GeneratorLoss(fake, fake_tags, 2.0);
  double gadv = (bce(0, 1) + bce(3, 1)) / 2;
  double gcls = (bce(-1, 0) + bce(1, 1) + bce(2, 1) + bce(-3, 1)) / 2;
  EXPECT_NEAR(gl.adv.item<double>(), gadv, 1e-5);
  EXPECT_NEAR(gl.cls.item<double>(), gcls, 1e-5);
  EXPECT_NEAR(gl.total.item<double>(), 2 * gadv + gcls, 1e-5);
}

// Lazy regularisation: the penalty on every Nth step, weighted N times; none between.
TEST(GanTest, LazyGradientPenaltyIsWeightedByItsInterval) {
  torch::manual_seed(6);
  auto c = Tiny(32);
  Generator g(c);
  Discriminator d(c);
  torch::optim::Adam og(g->parameters(), torch::optim::AdamOptions(2e-4));
  torch::optim::Adam od(d->parameters(), torch::optim::AdamOptions(2e-4));
  auto real = torch::rand({4, 3, 32, 32}) * 2 - 1;
  auto tags = (torch::rand({4, c.tags}) > 0.5).to(torch::kFloat);
  auto z = torch::randn({4, c.z_dim});
  StepConfig sc{1.0, 0.5, false, {}, 3};
  for (int64_t step = 0; step < 4; ++step) {
    auto l = TrainStep(g, d, og, od, real, tags, z, tags, sc, step);
    SCOPED_TRACE(step);
    if (step % 3 == 0) {
      ASSERT_TRUE(std::isfinite(l.gp));
      EXPECT_GT(l.gp, 0);
      EXPECT_NEAR(l.d_total, l.d_adv + l.d_cls + 3 * 0.5 * l.gp, 1e-4 * std::abs(l.d_total));
    } else {
      EXPECT_TRUE(std::isnan(l.gp));
      EXPECT_NEAR(l.d_total, l.d_adv + l.d_cls, 1e-4 * std::abs(l.d_total));
    }
  }
}

TEST(GanTest, TrainStepLowersTheLossOnAFixedBatch) {
  torch::manual_seed(5);
  auto c = Tiny(32);
  Generator g(c);
  Discriminator d(c);
  torch::optim::Adam og(g->parameters(), torch::optim::AdamOptions(2e-4).betas({0.5, 0.999}));
  torch::optim::Adam od(d->parameters(), torch::optim::AdamOptions(2e-4).betas({0.5, 0.999}));
  auto real = torch::rand({8, 3, 32, 32}) * 2 - 1;
  auto real_tags = (torch::rand({8, c.tags}) > 0.5).to(torch::kFloat);
  auto z = torch::randn({8, c.z_dim});
  StepConfig sc{double(c.tags), 0.5, false, {}};
  auto first = TrainStep(g, d, og, od, real, real_tags, z, real_tags, sc);
  StepLosses last;
  for (int i = 0; i < 15; ++i) last = TrainStep(g, d, og, od, real, real_tags, z, real_tags, sc);
  EXPECT_TRUE(std::isfinite(last.d_total) && std::isfinite(last.g_total));
  EXPECT_LT(last.d_cls, first.d_cls);  // the tag head learns the real batch's tags
}

// ---- the few-step recipe: moving average, ICNR, differentiable augmentation ------------

TEST(GanTest, EmaUpdateFollowsItsFormula) {
  torch::manual_seed(4);
  auto c = Tiny(32);
  Generator g(c), ema(c);
  // ema starts elsewhere: its own random init, and distinct BatchNorm statistics.
  std::vector<torch::Tensor> before;
  for (auto& p : ema->parameters()) before.push_back(p.detach().clone());
  g->forward(torch::randn({4, c.z_dim}), torch::zeros({4, c.tags}));  // moves g's running stats
  const double beta = 0.9;
  EmaUpdate(*ema, *g, beta);
  auto ep = ema->parameters(), gp = g->parameters();
  ASSERT_EQ(ep.size(), gp.size());
  for (size_t i = 0; i < ep.size(); ++i) {
    EXPECT_TRUE(torch::allclose(ep[i], beta * before[i] + (1 - beta) * gp[i], 1e-6, 1e-7)) << "parameter " << i;
  }
  auto eb = ema->buffers(), gb = g->buffers();
  for (size_t i = 0; i < eb.size(); ++i) {
    EXPECT_TRUE(torch::equal(eb[i], gb[i])) << "buffer " << i;
  }
  EmaUpdate(*ema, *g, 0.0);
  for (size_t i = 0; i < ep.size(); ++i) {
    EXPECT_TRUE(torch::equal(ema->parameters()[i], gp[i]));
  }
}

// A checkpoint written without a moving average (runs from before it, or --ema-kimg 0)
// loads with the average equal to G; one with it restores it exactly.
TEST(GanTest, CheckpointKeepsTheMovingAverage) {
  torch::manual_seed(11);
  auto c = Tiny(32);
  Generator g(c), ema(c);
  Discriminator d(c);
  torch::optim::Adam og(g->parameters()), od(d->parameters());
  TrainState st;
  st.torch_rng = torch::zeros({1});
  const std::string dir = TempDir("ema_ckpt");
  ASSERT_TRUE(SaveCheckpoint(dir + "/without.pt", g, nullptr, d, og, od, st).ok());
  ASSERT_TRUE(SaveCheckpoint(dir + "/with.pt", g, &ema, d, og, od, st).ok());
  Generator g2(c), e2(c);
  Discriminator d2(c);
  ASSERT_TRUE(LoadCheckpoint(dir + "/without.pt", g2, &e2, d2, nullptr, nullptr, nullptr).ok());
  for (size_t i = 0; i < g->parameters().size(); ++i) {
    EXPECT_TRUE(torch::equal(e2->parameters()[i], g->parameters()[i])) << i;
  }
  ASSERT_TRUE(LoadCheckpoint(dir + "/with.pt", g2, &e2, d2, nullptr, nullptr, nullptr).ok());
  for (size_t i = 0; i < ema->parameters().size(); ++i) {
    EXPECT_TRUE(torch::equal(e2->parameters()[i], ema->parameters()[i])) << i;
  }
  fs::remove_all(dir);
}

TEST(GanTest, EmaBetaHalvesPerHalfLifeAndRampsUp) {
  // 10,000 images of half-life, batch 100: 100 steps halve the old weights.
  EXPECT_NEAR(std::pow(EmaBeta(1'000'000, 100, 10'000, 0), 100), 0.5, 1e-12);
  // Early on the ramp caps the half-life at 5% of the images seen (here 500).
  EXPECT_NEAR(EmaBeta(10'000, 100, 10'000, 0.05), std::pow(0.5, 100.0 / 500), 1e-12);
  EXPECT_NEAR(EmaBeta(1'000'000, 100, 10'000, 0.05), std::pow(0.5, 100.0 / 10'000), 1e-12);
  EXPECT_EQ(EmaBeta(0, 100, 10'000, 0.05), 0.0);  // nothing seen: the average is G
}

// ICNR: right after initialisation, every up-sampling block's sub-pixel convolution
// gives the four sub-pixels of each output the same value (nearest-neighbour upsampling),
// so the generator starts without a checkerboard; the default init does not.
TEST(GanTest, IcnrStartsEverySubPixelGroupIdentical) {
  torch::manual_seed(5);
  auto c = Tiny(64);
  auto sub_pixel_spread = [&](Generator& g) {
    double worst = 0;
    for (auto& u : *g->ups) {
      auto* conv = u->named_children()["conv"]->as<torch::nn::Conv2dImpl>();
      auto x = torch::randn({2, c.g_channels, 8, 8});
      auto y = torch::pixel_shuffle(conv->forward(x), 2);
      using torch::indexing::None;
      using torch::indexing::Slice;
      auto tl = y.index({Slice(), Slice(), Slice(0, None, 2), Slice(0, None, 2)});
      for (auto [dy, dx] : {std::pair<int, int>{0, 1}, {1, 0}, {1, 1}}) {
        auto other = y.index({Slice(), Slice(), Slice(dy, None, 2), Slice(dx, None, 2)});
        worst = std::max(worst, (tl - other).abs().max().item<double>());
      }
    }
    return worst;
  };
  Generator plain(c);
  EXPECT_GT(sub_pixel_spread(plain), 1e-2);
  Generator icnr(c);
  IcnrInit(icnr);
  EXPECT_EQ(sub_pixel_spread(icnr), 0.0);
  EXPECT_EQ(icnr->ups->size(), 2u);
  // A resize-conv generator has no sub-pixel groups: ICNR leaves it as it was drawn.
  c.upsample = "nearest";
  Generator resize(c);
  std::vector<torch::Tensor> before;
  for (auto& p : resize->parameters()) before.push_back(p.detach().clone());
  IcnrInit(resize);
  auto after = resize->parameters();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i], after[i])) << i;
}

// With its convolutions silenced, a template G draws its least-squares fit: images that
// are exactly tanh(b + W t) come back for their tags (the "tags" template), their mean in
// atanh space without tags ("mean"); "none" has no template, and a config from before the
// option reads as "none".
TEST(GanTest, OutputTemplateStartsAtTheFittedFaces) {
  torch::manual_seed(6);
  auto c = Tiny(16 * 2);
  const int64_t n = 200, pixels = 3 * 32 * 32;
  auto tags = torch::bernoulli(torch::full({n, c.tags}, 0.3));
  auto b = torch::rand({1, pixels}) - 0.5;
  auto w = (torch::rand({c.tags, pixels}) - 0.5) * 0.08;
  auto pre = b + tags.mm(w);
  ASSERT_LT(pre.abs().max().item<double>(), std::atanh(0.95));  // inside the fit's clamp: exactly linear
  auto images = torch::tanh(pre).view({n, 3, 32, 32});
  auto silenced = [](Generator& g) {
    torch::NoGradGuard ng;
    g->out_conv->weight.zero_();
    g->out_conv->bias.zero_();
    g->eval();
    return g;
  };
  auto z = torch::randn({n, c.z_dim});

  c.output_template = "tags";
  Generator g(c);
  ASSERT_TRUE(g->out_bias.defined() && g->out_tags);
  TemplateFit fit(c.tags, 32, /*use_tags=*/true);
  fit.Add(images.slice(0, 0, 120), tags.slice(0, 0, 120));  // in two batches, as from a cache
  fit.Add(images.slice(0, 120), tags.slice(0, 120));
  EXPECT_EQ(fit.count(), n);
  fit.Apply(g, /*ridge=*/1e-6);
  silenced(g);
  auto out = g->forward(z, tags);
  EXPECT_LT((out - images).abs().max().item<double>(), 1e-3);
  // Both are parameters: G goes on learning them, and a checkpoint keeps them.
  int listed = 0;
  for (auto& p : g->named_parameters()) listed += p.key() == "out_bias" || p.key() == "out_tags.weight";
  EXPECT_EQ(listed, 2);

  c.output_template = "mean";
  Generator m(c);
  ASSERT_TRUE(m->out_bias.defined());
  EXPECT_FALSE(m->out_tags);
  TemplateFit mean_fit(c.tags, 32, /*use_tags=*/false);
  mean_fit.Add(images, tags);
  mean_fit.Apply(m);
  silenced(m);
  auto want = torch::tanh(torch::atanh(images.clamp(-0.95, 0.95)).mean(0, true));
  EXPECT_LT((m->forward(z.slice(0, 0, 3), tags.slice(0, 0, 3)) - want).abs().max().item<double>(), 1e-4);

  c.output_template = "none";
  Generator plain(c);
  EXPECT_FALSE(plain->out_bias.defined());
  RunConfig rc;
  rc.gan = Tiny(32);
  rc.gan.output_template = "tags";
  rc.schema = TagSchema::Default();
  rc.tag_freq.assign(rc.gan.tags, 0.1);
  auto j = rc.ToJson();
  auto back = RunConfig::FromJson(j);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->gan.output_template, "tags");
  j["gan"].erase("template");
  auto old = RunConfig::FromJson(j);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->gan.output_template, "none");
}

// Minibatch stddev: each sample's extra channel is the spread of its own group only, and
// it reaches the real/fake logit of that group alone (the tag logits see none of it).
TEST(GanTest, MinibatchStddevIsPerGroup) {
  auto h = torch::zeros({4, 3, 4, 4});
  h[2].fill_(2.0);  // group {0, 2}: values 0 and 2, standard deviation 1
  h[1].fill_(5.0);
  h[3].fill_(5.0);  // group {1, 3}: identical, 0
  auto out = MinibatchStddev(h, 2);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{4, 4, 4, 4}));
  EXPECT_TRUE(torch::equal(out.slice(1, 0, 3), h));
  for (int i : {0, 2}) EXPECT_NEAR(out[i][3].mean().item<float>(), 1.0f, 1e-5) << i;
  for (int i : {1, 3}) EXPECT_NEAR(out[i][3].max().item<float>(), 0.0f, 1e-3) << i;
  // A group size that does not divide the batch is cut until it does (3 of 4 -> 2).
  EXPECT_TRUE(torch::allclose(MinibatchStddev(h, 3), out));

  torch::manual_seed(3);
  auto cfg = Tiny(32);
  cfg.d_mbstd = 2;
  Discriminator d(cfg);
  d->eval();
  auto x = torch::rand({4, 3, 32, 32}) * 2 - 1;
  auto x2 = x.clone();
  x2[2] = torch::rand({3, 32, 32}) * 2 - 1;  // another sample 2 (of group {0, 2})
  auto a = d->forward(x), b = d->forward(x2);
  EXPECT_NE(a.logit[0].item<float>(), b.logit[0].item<float>());
  EXPECT_EQ(a.logit[1].item<float>(), b.logit[1].item<float>());
  EXPECT_EQ(a.logit[3].item<float>(), b.logit[3].item<float>());
  EXPECT_TRUE(torch::equal(a.tags[0], b.tags[0]));
}

TEST(GanTest, AugmentPolicyParses) {
  auto all = AugmentPolicy::Parse("color, translation,cutout");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->color && all->translation && all->cutout);
  EXPECT_EQ(all->ToString(), "color,translation,cutout");
  auto none = AugmentPolicy::Parse("none");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->any());
  EXPECT_EQ(none->ToString(), "none");
  EXPECT_FALSE(AugmentPolicy::Parse("translation,rotate").ok());
}

// One transform per sample index: two batches with equal rows come out equal, every
// transform does change the image, and translation is an exact shift with zero fill.
TEST(GanTest, AugmentAppliesOneTransformPerSampleToEveryBatch) {
  torch::manual_seed(6);
  auto policy = *AugmentPolicy::Parse("color,translation,cutout");
  auto real = torch::rand({6, 3, 16, 16}) * 2 - 1;
  auto a = DrawAugment(policy, 6, 16, real.options());
  auto fake = real.clone();
  EXPECT_TRUE(torch::equal(ApplyAugment(real, a), ApplyAugment(fake, a)));
  auto other = real.flip({3});
  EXPECT_FALSE(torch::equal(ApplyAugment(real, a), ApplyAugment(other, a)));
  for (const char* one : {"color", "translation", "cutout"}) {
    auto p = *AugmentPolicy::Parse(one);
    torch::manual_seed(7);
    auto params = DrawAugment(p, 6, 16, real.options());
    EXPECT_FALSE(torch::equal(ApplyAugment(real, params), real)) << one;
  }
  AugmentParams shift;
  shift.shift_y = torch::tensor({1, -2}, torch::kLong);
  shift.shift_x = torch::tensor({0, 2}, torch::kLong);
  auto x = torch::arange(2 * 3 * 16 * 16, torch::kFloat).view({2, 3, 16, 16});
  auto y = ApplyAugment(x, shift);
  using torch::indexing::Slice;
  // Sample 0: y[r][c] = x[r + 1][c]; its last row comes from outside: zero.
  EXPECT_TRUE(torch::equal(y[0].index({Slice(), Slice(0, 15)}), x[0].index({Slice(), Slice(1, 16)})));
  EXPECT_EQ(y[0].index({Slice(), 15}).abs().sum().item<float>(), 0.0f);
  // Sample 1: y[r][c] = x[r - 2][c + 2].
  EXPECT_TRUE(torch::equal(y[1].index({Slice(), Slice(2, 16), Slice(0, 14)}),
                           x[1].index({Slice(), Slice(0, 14), Slice(2, 16)})));
}

// The augmentation is differentiable: its input gradient matches central finite
// differences (double precision, the transforms of one fixed draw), and the gradient
// penalty taken through it trains D.
TEST(GanTest, AugmentIsDifferentiable) {
  torch::manual_seed(8);
  auto policy = *AugmentPolicy::Parse("color,translation,cutout");
  auto x = torch::randn({2, 3, 8, 8}, torch::kDouble);
  auto a = DrawAugment(policy, 2, 8, x.options());
  auto w = torch::randn({2, 3, 8, 8}, torch::kDouble);  // a fixed linear read-out
  auto f = [&](const torch::Tensor& in) { return (ApplyAugment(in, a) * w).sum(); };
  auto xg = x.clone().requires_grad_(true);
  auto grad = torch::autograd::grad({f(xg)}, {xg})[0];
  const double h = 1e-6;
  auto flat = x.view(-1);
  double worst = 0;
  for (int64_t i = 0; i < flat.numel(); i += 7) {
    auto xp = x.clone(), xm = x.clone();
    xp.view(-1)[i] += h;
    xm.view(-1)[i] -= h;
    double fd = (f(xp).item<double>() - f(xm).item<double>()) / (2 * h);
    worst = std::max(worst, std::abs(fd - grad.reshape(-1)[i].item<double>()));
  }
  EXPECT_LT(worst, 1e-6);
  EXPECT_GT(grad.abs().sum().item<double>(), 0.0);

  auto c = Tiny(32);
  Discriminator d(c);
  auto real = torch::randn({4, 3, 32, 32});
  auto aug = DrawAugment(policy, 4, 32, real.options());
  auto gp = GradientPenalty(d, real, Perturb(real), {}, &aug);
  ASSERT_TRUE(std::isfinite(gp.item<double>()));
  gp.backward();
  double norm = 0;
  for (auto& p : d->parameters())
    if (p.grad().defined()) norm += p.grad().abs().sum().item<double>();
  EXPECT_GT(norm, 0.0);
}

TEST(TagSamplerTest, OneTagPerExclusiveGroupAtTheDataFrequencies) {
  const auto& schema = TagSchema::Default();
  const int t = schema.size();
  // 4 faces: blonde x3, black x1; blue eyes x4; smile on 2 of 4.
  std::vector<float> tags(4 * t, 0.0f);
  auto set = [&](int i, const char* tag) { tags[i * t + schema.IndexOf(tag)] = 1.0f; };
  for (int i = 0; i < 4; ++i) {
    set(i, i < 3 ? "blonde_hair" : "black_hair");
    set(i, "blue_eyes");
    if (i % 2 == 0) set(i, "smile");
  }
  TagSampler s(schema, tags.data(), 4);
  std::mt19937_64 rng(1);
  int blonde = 0, smile = 0, hat = 0;
  const int draws = 4000;
  for (int k = 0; k < draws; ++k) {
    auto v = s.Sample(rng);
    int start = 0;
    for (const auto& g : schema.groups()) {
      int on = 0;
      for (size_t i = 0; i < g.tags.size(); ++i) on += v[start + i] > 0.5f;
      if (g.exclusive) {
        ASSERT_EQ(on, 1) << g.name;
      }
      start += static_cast<int>(g.tags.size());
    }
    blonde += v[schema.IndexOf("blonde_hair")] > 0.5f;
    smile += v[schema.IndexOf("smile")] > 0.5f;
    hat += v[schema.IndexOf("hat")] > 0.5f;
    ASSERT_EQ(v[schema.IndexOf("blue_eyes")], 1.0f);
  }
  EXPECT_NEAR(blonde / double(draws), 0.75, 0.03);
  EXPECT_NEAR(smile / double(draws), 0.5, 0.03);
  EXPECT_EQ(hat, 0);
}

TEST(ImageCacheTest, PacksResizesFlipsAndSkipsUnreadable) {
  std::string dir = TempDir("cache");
  CacheSource src;
  src.num_tags = 2;
  // Left half red, right half blue; 64 px, cached at 32.
  cv::Mat img(64, 64, CV_8UC3, cv::Scalar(255, 0, 0));  // BGR blue
  img(cv::Rect(0, 0, 32, 64)).setTo(cv::Scalar(0, 0, 255));  // BGR red on the left
  cv::imwrite(dir + "/a.png", img);
  std::ofstream(dir + "/broken.png") << "not an image";
  src.face_ids = {7, 8, 9};
  src.paths = {dir + "/a.png", dir + "/broken.png", dir + "/missing.png"};
  src.tags = {1, 0, 0, 1, 1, 1};
  auto stats = BuildImageCache(src, 32, dir + "/c.u8");
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->written, 1);
  EXPECT_EQ(stats->unreadable, 2);
  auto cache = ImageCache::Open(dir + "/c.u8");
  ASSERT_TRUE(cache.ok()) << cache.status().ToString();
  EXPECT_EQ(cache->size(), 1);
  EXPECT_EQ(cache->resolution(), 32);
  EXPECT_EQ(cache->face_id(0), 7);
  EXPECT_EQ(cache->tags(0)[0], 1.0f);
  const uint8_t* p = cache->pixels(0);
  EXPECT_EQ(p[0], 255);                   // RGB: red at the top left
  EXPECT_EQ(p[(31) * 3 + 2], 255);        // blue at the top right
  std::vector<float> out(3 * 32 * 32), tags(2);
  cache->Gather({0}, {true}, out.data(), tags.data());
  EXPECT_FLOAT_EQ(out[0], -1.0f);                 // flipped: red channel at the left is now 0 -> -1
  EXPECT_FLOAT_EQ(out[2 * 32 * 32 + 0], 1.0f);    // blue channel 255 -> 1
  // A truncated cache is refused.
  fs::resize_file(dir + "/c.u8", fs::file_size(dir + "/c.u8") - 10);
  EXPECT_FALSE(ImageCache::Open(dir + "/c.u8").ok());
  fs::remove_all(dir);
}

TEST(EvalMetricsTest, FrechetDistanceAndPrecisionRecall) {
  torch::manual_seed(6);
  auto a = torch::randn({400, 5}, torch::kDouble);
  EXPECT_NEAR(FrechetDistance(a, a), 0.0, 1e-6);
  // A pure shift of the same samples: exactly the squared shift.
  auto shift = torch::tensor({1.0, 2.0, 0.0, 0.0, -1.0}, torch::kDouble);
  EXPECT_NEAR(FrechetDistance(a, a + shift), 6.0, 1e-6);
  // Centred and scaled by s: tr(S + s^2 S - 2 s S) = (1 - s)^2 tr(S).
  a = a - a.mean(0);
  double trs = a.var(0).sum().item<double>();
  EXPECT_NEAR(FrechetDistance(a, a * 3), 4 * trs, 1e-6 * trs);
  auto same = PrecisionRecall(a, a.clone(), 3);
  EXPECT_DOUBLE_EQ(same.precision, 1.0);
  EXPECT_DOUBLE_EQ(same.recall, 1.0);
  auto far = PrecisionRecall(a, a + 100, 3);
  EXPECT_DOUBLE_EQ(far.precision, 0.0);
  EXPECT_DOUBLE_EQ(far.recall, 0.0);
  // Fakes collapsed onto one real point: precise, but no recall.
  auto collapsed = PrecisionRecall(a, a.slice(0, 0, 1).repeat({50, 1}), 3);
  EXPECT_DOUBLE_EQ(collapsed.precision, 1.0);
  EXPECT_LT(collapsed.recall, 0.05);
}

// Label fidelity against a known case: a stand-in generator whose "generated" faces are
// images with known labels. Asked for the labels the images have, fidelity is the judge's
// own accuracy on them, as tagger/metrics.h scores it (exclusive groups: accuracy;
// binary groups: the share of tags decided right); asked for the judge's own decisions,
// it is 1; asked for another colour than the judge sees, 0.
TEST(EvalMetricsTest, LabelFidelityOfLabelledFacesIsTheJudgesAccuracy) {
  torch::manual_seed(10);
  const TagSchema& schema = TagSchema::Default();
  const int t = schema.size();
  tagger::TaggerNetOptions net;
  net.num_tags = t;
  net.width = 4;
  net.blocks = 2;
  tagger::BuiltinTagger judge(schema, net, 32);
  std::vector<float> thresholds(t);
  for (int c = 0; c < t; ++c) thresholds[c] = 0.3f + 0.01f * c;
  judge.set_thresholds(thresholds);
  const int n = 64;
  // Images whose colour statistics vary, so the judge's decisions vary too.
  auto images = (torch::rand({n, 3, 32, 32}) * torch::rand({n, 3, 1, 1}) * 2 - 1);
  auto probs = judge.Probabilities(images);
  std::mt19937_64 rng(3);
  TagSampler sampler(schema, std::vector<double>(t, 0.3));
  auto labels = torch::zeros({n, t});
  std::vector<std::vector<float>> truth, scores;
  for (int i = 0; i < n; ++i) {
    auto v = sampler.Sample(rng);
    for (int c = 0; c < t; ++c) labels[i][c] = v[c];
    truth.push_back(v);
    auto row = probs[i].contiguous();
    scores.emplace_back(row.data_ptr<float>(), row.data_ptr<float>() + t);
  }
  auto fidelity = LabelFidelity(schema, schema, thresholds, probs, labels);
  auto report = tagger::Evaluate(schema, scores, truth, thresholds);
  for (const auto& g : report.groups) {
    ASSERT_TRUE(fidelity.contains(g.group)) << g.group;
    EXPECT_EQ(g.n, n);
    EXPECT_DOUBLE_EQ(fidelity[g.group].get<double>(), g.accuracy()) << g.group;
  }
  for (const auto& grp : schema.groups()) {
    if (!grp.exclusive) {
      double right = 0, total = 0;
      for (const auto& ts : report.tags)
        if (std::find(grp.tags.begin(), grp.tags.end(), ts.tag) != grp.tags.end()) {
          right += ts.tp + ts.tn;
          total += ts.tp + ts.tn + ts.fp + ts.fn;
        }
      ASSERT_GT(total, 0) << grp.name;
      EXPECT_DOUBLE_EQ(fidelity[grp.name].get<double>(), right / total) << grp.name;
    }
  }
  // Asked for what the judge decides: every group 1. Asked for the next colour: 0.
  auto own = torch::zeros({n, t}), next = torch::zeros({n, t});
  for (int i = 0; i < n; ++i) {
    auto decided = schema.Decide(scores[i], thresholds);
    for (int c = 0; c < t; ++c) own[i][c] = decided[c] ? 1.0f : 0.0f;
    int start = 0;
    for (const auto& grp : schema.groups()) {
      const int k = static_cast<int>(grp.tags.size());
      for (int c = start; c < start + k; ++c)
        if (grp.exclusive && decided[c]) next[i][start + (c - start + 1) % k] = 1.0f;
      start += k;
    }
  }
  auto perfect = LabelFidelity(schema, schema, thresholds, probs, own);
  for (auto& [group, value] : perfect.items()) {
    EXPECT_DOUBLE_EQ(value.get<double>(), 1.0) << group;
  }
  auto wrong = LabelFidelity(schema, schema, thresholds, probs, next);
  EXPECT_DOUBLE_EQ(wrong["hair_color"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(wrong["eye_color"].get<double>(), 0.0);
}

// ---- through the real binary ----------------------------------------------------------

namespace {

std::string MakeWorkspace(const std::string& name, int n) {
  std::string root = TempDir(name);
  Status s = MakeSyntheticFaceWorkspace(root, n);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return root;
}

std::string Bin() {
  const char* b = std::getenv("MOEFORGE_BIN");
  return b != nullptr ? b : std::string(MOEFORGE_BINARY_DIR) + "/cli/moeforge";
}

int RunBin(const std::string& args) { return WEXITSTATUS(std::system((Bin() + " " + args + " >/dev/null 2>&1").c_str())); }

const std::string kTinyArgs =
    " --resolution 32 --batch 8 --z-dim 16 --g-channels 16 --g-blocks 2 --d-channels 8 --d-blocks 1"
    " --threads 1 --deterministic --seed 11 ";

bool SameTensors(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

}  // namespace

TEST(TrainBinaryTest, TrainsRecordsAndSamples) {
  if (!fs::exists(Bin())) GTEST_SKIP() << "moeforge binary not built: " << Bin();
  std::string ws = MakeWorkspace("train", 24);
  ASSERT_EQ(RunBin("train -w " + ws + " --run r1 --steps 6 --checkpoint-every 4 --sample-every 3 --snapshot-every 2 "
                   "--keep-snapshots 2" + kTinyArgs),
            0);
  // Snapshots at steps 2, 4, 6; the newest two kept.
  EXPECT_EQ(ListSnapshots(Workspace(ws), "r1"), (std::vector<int64_t>{4, 6}));
  EXPECT_TRUE(fs::exists(ws + "/runs/r1/checkpoint.pt"));
  EXPECT_TRUE(fs::exists(ws + "/runs/r1/config.json"));
  cv::Mat grid = cv::imread(ws + "/runs/r1/samples/step_000006.png");
  ASSERT_FALSE(grid.empty());
  EXPECT_TRUE(fs::exists(ws + "/runs/r1/samples/step_000003.png"));
  auto d = db::OpenWorkspace(Workspace(ws));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*(*d)->QueryInt("SELECT step FROM runs WHERE name='r1' AND state='done'"), 6);
  EXPECT_EQ(*(*d)->QueryInt("SELECT count(DISTINCT step) FROM metrics WHERE key='d_loss'"), 6);
  EXPECT_EQ(*(*d)->QueryInt("SELECT count(*) FROM stage_runs WHERE stage='train' AND done=6"), 1);
  // Same name again without --resume: refused with a usage error.
  EXPECT_EQ(RunBin("train -w " + ws + " --run r1 --steps 6" + kTinyArgs), 2);
  EXPECT_EQ(RunBin("train -w " + ws + " --run r2 --resolution 48"), 2);

  ASSERT_EQ(RunBin("sample -w " + ws + " --run r1 --tags 'blonde_hair blue_eyes smile' --n 6 --seed 3 -o " + ws + "/s.png"), 0);
  cv::Mat s = cv::imread(ws + "/s.png");
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s.cols, 3 * 34 + 2);  // 3 columns of 32 px with 2 px gaps
  EXPECT_EQ(s.rows, 2 * 34 + 2);
  // The same seed gives the same image; another seed another one.
  ASSERT_EQ(RunBin("sample -w " + ws + " --run r1 --tags 'blonde_hair blue_eyes smile' --n 6 --seed 3 -o " + ws + "/s2.png"), 0);
  ASSERT_EQ(RunBin("sample -w " + ws + " --run r1 --tags 'blonde_hair blue_eyes smile' --n 6 --seed 4 -o " + ws + "/s3.png"), 0);
  cv::Mat s2 = cv::imread(ws + "/s2.png"), s3 = cv::imread(ws + "/s3.png");
  EXPECT_EQ(cv::norm(s, s2, cv::NORM_L1), 0.0);
  EXPECT_GT(cv::norm(s, s3, cv::NORM_L1), 0.0);
  ASSERT_EQ(RunBin("sample -w " + ws + " --run r1 --n 5 --seed 1 --interpolate-to 2 -o " + ws + "/i.png"), 0);
  EXPECT_EQ(cv::imread(ws + "/i.png").cols, 5 * 34 + 2);
  // --by: one labelled row per hair colour the data has, 3 images a row, same noise down
  // each column, so rows differ only by the conditioning.
  ASSERT_EQ(RunBin("sample -w " + ws + " --run r1 --by hair_color --n 3 --seed 5 -o " + ws + "/by.png"), 0);
  cv::Mat by = cv::imread(ws + "/by.png");
  ASSERT_FALSE(by.empty());
  EXPECT_EQ((by.rows - 2) % 34, 0);
  EXPECT_GE((by.rows - 2) / 34, 2);
  EXPECT_GT(by.cols, 3 * 34 + 2);  // a label column before the images
  cv::Mat row0 = by(cv::Rect(by.cols - (3 * 34 + 2), 0, 3 * 34 + 2, 34 + 2));
  cv::Mat row1 = by(cv::Rect(by.cols - (3 * 34 + 2), 34, 3 * 34 + 2, 34 + 2));
  EXPECT_GT(cv::norm(row0, row1, cv::NORM_L1), 0.0);
  EXPECT_EQ(RunBin("sample -w " + ws + " --run r1 --by no_group -o " + ws + "/x.png"), 2);
  EXPECT_EQ(RunBin("sample -w " + ws + " --run r1 --by hair_color --tags blonde_hair -o " + ws + "/x.png"), 2);
  EXPECT_EQ(RunBin("sample -w " + ws + " --run r1 --by hair_color --interpolate-to 2 -o " + ws + "/x.png"), 2);
  EXPECT_EQ(RunBin("sample -w " + ws + " --run r1 --tags 'no_such_tag' -o " + ws + "/x.png"), 2);
  EXPECT_EQ(RunBin("sample -w " + ws + " --run r1 --tags 'blonde_hair black_hair' -o " + ws + "/x.png"), 2);
  EXPECT_EQ(RunBin("sample -w " + ws + " --run nope -o " + ws + "/x.png"), 2);

  // Truncation 0: every noise gives the same face for one set of tags (all exclusive
  // groups named, binaries off); 1 does not.
  auto tiles_equal = [&](const std::string& png) {
    cv::Mat m = cv::imread(png);
    if (m.cols != 4 * 34 + 2) return false;
    cv::Mat first = m(cv::Rect(2, 2, 32, 32));
    for (int k = 1; k < 4; ++k)
      if (cv::norm(first, m(cv::Rect(2 + 34 * k, 2, 32, 32)), cv::NORM_L1) != 0.0) return false;
    return true;
  };
  const std::string same_tags = " --run r1 --tags 'blonde_hair blue_eyes' --n 4 --columns 4 --seed 2";
  ASSERT_EQ(RunBin("sample -w " + ws + same_tags + " --truncation 0 -o " + ws + "/t0.png"), 0);
  EXPECT_TRUE(tiles_equal(ws + "/t0.png"));
  ASSERT_EQ(RunBin("sample -w " + ws + same_tags + " -o " + ws + "/t1.png"), 0);
  EXPECT_FALSE(tiles_equal(ws + "/t1.png"));
  EXPECT_EQ(RunBin("sample -w " + ws + same_tags + " --truncation -1 -o " + ws + "/x.png"), 2);
  // A snapshot, the raw generator: images, and not the checkpoint's average.
  ASSERT_EQ(RunBin("sample -w " + ws + same_tags + " --snapshot 4 -o " + ws + "/snap.png"), 0);
  ASSERT_EQ(RunBin("sample -w " + ws + same_tags + " --raw -o " + ws + "/raw.png"), 0);
  cv::Mat snap = cv::imread(ws + "/snap.png"), raw = cv::imread(ws + "/raw.png"), avg = cv::imread(ws + "/t1.png");
  ASSERT_FALSE(snap.empty());
  ASSERT_FALSE(raw.empty());
  EXPECT_GT(cv::norm(snap, avg, cv::NORM_L1), 0.0);
  EXPECT_GT(cv::norm(raw, avg, cv::NORM_L1), 0.0);
  EXPECT_EQ(RunBin("sample -w " + ws + same_tags + " --snapshot 2 -o " + ws + "/x.png"), 2);  // pruned
  fs::remove_all(ws);
}

// Kill -9 mid-run, --resume, and compare every parameter with an uninterrupted run.
// --minutes and --cpu-minutes stop a run long before its --steps (each a tenth of a
// second here: a tiny step takes milliseconds, so 5,000 steps would take minutes), with a
// checkpoint a resumed run continues from.
TEST(TrainBinaryTest, TimeBudgetsStopTheRun) {
  if (!fs::exists(Bin())) GTEST_SKIP() << "moeforge binary not built: " << Bin();
  std::string ws = MakeWorkspace("budget", 24);
  const std::string common = " --steps 5000 --checkpoint-every 100000 --sample-every 100000" + kTinyArgs;
  ASSERT_EQ(RunBin("train -w " + ws + " --run wall --minutes 0.002" + common), 0);
  ASSERT_EQ(RunBin("train -w " + ws + " --run cpu --cpu-minutes 0.002" + common), 0);
  auto d = db::OpenWorkspace(Workspace(ws));
  ASSERT_TRUE(d.ok());
  for (const char* run : {"wall", "cpu"}) {
    SCOPED_TRACE(run);
    auto step = (*d)->QueryInt(std::string("SELECT step FROM runs WHERE name='") + run + "'");
    ASSERT_TRUE(step.ok());
    EXPECT_GT(*step, 0);
    EXPECT_LT(*step, 5000);
    EXPECT_TRUE(fs::exists(ws + "/runs/" + run + "/checkpoint.pt"));
  }
  EXPECT_EQ(RunBin("train -w " + ws + " --run neg --cpu-minutes -1" + common), 2);
}

TEST(TrainBinaryTest, SigkillAndResumeMatchAnUninterruptedRun) {
  if (!fs::exists(Bin())) GTEST_SKIP() << "moeforge binary not built: " << Bin();
  std::string ws = MakeWorkspace("resume", 32);
  const int steps = 40;
  const std::string common = " --steps " + std::to_string(steps) + " --checkpoint-every 4 --sample-every 1000" + kTinyArgs;
  ASSERT_EQ(RunBin("train -w " + ws + " --run full" + common), 0);

  // The interrupted run: killed as soon as its first checkpoint is on disk.
  std::string ckpt = ws + "/runs/cut/checkpoint.pt";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    std::string cmd = Bin() + " train -w " + ws + " --run cut" + common;
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), (char*)nullptr);
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(ckpt) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  kill(pid, SIGKILL);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  ASSERT_TRUE(fs::exists(ckpt));
  ASSERT_TRUE(WIFSIGNALED(wstatus)) << "the run finished before it could be killed";

  // Where the kill left it: a whole checkpoint short of the end.
  auto cfg = Tiny(32);
  cfg.z_dim = 16, cfg.g_channels = 16, cfg.g_blocks = 2, cfg.d_channels = 8, cfg.d_blocks = 1;
  TrainState cut_state;
  {
    Generator g(cfg);
    Discriminator d(cfg);
    ASSERT_TRUE(LoadCheckpoint(ckpt, g, nullptr, d, nullptr, nullptr, &cut_state).ok());
    EXPECT_LT(cut_state.step, steps);
    EXPECT_EQ(cut_state.step % 4, 0);
  }
  ASSERT_EQ(RunBin("train -w " + ws + " --run cut --resume" + common), 0);

  Generator g1(cfg), g2(cfg), e1(cfg), e2(cfg);
  Discriminator d1(cfg), d2(cfg);
  TrainState s1, s2;
  ASSERT_TRUE(LoadCheckpoint(ws + "/runs/full/checkpoint.pt", g1, &e1, d1, nullptr, nullptr, &s1).ok());
  ASSERT_TRUE(LoadCheckpoint(ckpt, g2, &e2, d2, nullptr, nullptr, &s2).ok());
  EXPECT_EQ(s1.step, steps);
  EXPECT_EQ(s2.step, steps);
  EXPECT_TRUE(SameTensors(g1->parameters(), g2->parameters())) << "G differs after resume from step " << cut_state.step;
  EXPECT_TRUE(SameTensors(g1->buffers(), g2->buffers())) << "G's BatchNorm statistics differ";
  EXPECT_TRUE(SameTensors(d1->parameters(), d2->parameters())) << "D differs";
  // The recipe was on (the defaults: moving average, ICNR, augmentation); the average
  // resumed too, and it is not just G.
  EXPECT_TRUE(SameTensors(e1->parameters(), e2->parameters())) << "G's moving average differs";
  EXPECT_FALSE(SameTensors(e1->parameters(), g1->parameters()));
  EXPECT_EQ(s1.order, s2.order);
  // Metrics: one row per step and key, no duplicates from the replayed steps.
  auto d = db::OpenWorkspace(Workspace(ws));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*(*d)->QueryInt("SELECT count(*) FROM metrics m JOIN runs r ON r.id = m.run_id "
                            "WHERE r.name='cut' AND key='g_loss'"), steps);
  fs::remove_all(ws);
}

namespace {

// A randomly initialised built-in tagger as the workspace's judge (WS/models/test.pt, the
// tagger the synthetic workspace's runs name).
void SaveTestJudge(const std::string& ws) {
  torch::manual_seed(9);
  tagger::TaggerNetOptions net;
  net.num_tags = TagSchema::Default().size();
  net.width = 8;
  net.blocks = 2;
  tagger::BuiltinTagger model(TagSchema::Default(), net, 32);
  fs::create_directories(ws + "/models");
  ASSERT_TRUE(model.Save(ws + "/models/test.pt").ok());
}

nlohmann::json RunJson(const std::string& args, int* rc) {
  const std::string out = fs::temp_directory_path().string() + "/moeforge-eval-" + std::to_string(getpid()) + ".json";
  *rc = WEXITSTATUS(std::system((Bin() + " " + args + " --json > " + out + " 2>/dev/null").c_str()));
  std::ifstream in(out);
  auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  fs::remove(out);
  return j;
}

}  // namespace

// eval --all-snapshots scores every kept snapshot and the checkpoint alike, records them,
// and --snapshot best is the lowest FD among those still there, for eval and sample.
TEST(TrainBinaryTest, AllSnapshotsScoredAndTheBestSampled) {
  if (!fs::exists(Bin())) GTEST_SKIP() << "moeforge binary not built: " << Bin();
  std::string ws = MakeWorkspace("snapfd", 24);
  ASSERT_EQ(RunBin("train -w " + ws + " --run s --steps 7 --snapshot-every 2 --keep-snapshots 3 --sample-every 100" +
                   kTinyArgs),
            0);
  SaveTestJudge(ws);
  // No scores yet: best names nothing, a clear error.
  EXPECT_EQ(RunBin("sample -w " + ws + " --run s --snapshot best -o " + ws + "/x.png"), 2);

  int rc = -1;
  const std::string all = "eval -w " + ws + " --run s --all-snapshots --n 16 --seed 3 --threads 1";
  auto r = RunJson(all, &rc);
  ASSERT_EQ(rc, 0);
  ASSERT_TRUE(r.is_object());
  // Snapshots 2, 4, 6 (the newest three) and the checkpoint at step 7.
  ASSERT_EQ(r["scored"].size(), 4u);
  std::vector<std::pair<int64_t, std::string>> got;
  double min_fd = 1e300;
  for (const auto& e : r["scored"]) {
    got.emplace_back(e["step"].get<int64_t>(), e["generator"].get<std::string>());
    min_fd = std::min(min_fd, e["frechet_distance"].get<double>());
    EXPECT_EQ(e["generated"], 16);
    EXPECT_EQ(e["seed"], 3);
  }
  EXPECT_EQ(got, (std::vector<std::pair<int64_t, std::string>>{{2, "snapshot"}, {4, "snapshot"}, {6, "snapshot"},
                                                                {7, "ema"}}));
  EXPECT_EQ(r["scored_now"], 4);
  EXPECT_DOUBLE_EQ(r["best"]["frechet_distance"].get<double>(), min_fd);
  EXPECT_TRUE(fs::exists(ws + "/runs/s/snapshot-metrics.json"));
  // A second pass scores nothing new and names the same best.
  auto again = RunJson(all, &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(again["scored_now"], 0);
  EXPECT_EQ(again["best"], r["best"]);

  // eval --snapshot best scores that generator: the same figures with the same noise.
  auto best = RunJson("eval -w " + ws + " --run s --snapshot best --n 16 --seed 3 --threads 1", &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(best["step"], r["best"]["step"]);
  EXPECT_EQ(best["generator"], r["best"]["generator"]);
  EXPECT_DOUBLE_EQ(best["frechet_distance"].get<double>(), min_fd);
  // sample --snapshot best draws what naming that generator draws.
  const bool best_is_snapshot = r["best"]["generator"] == "snapshot";
  const int64_t best_step = r["best"]["step"].get<int64_t>();
  const std::string named = best_is_snapshot ? " --snapshot " + std::to_string(best_step) : "";
  const std::string same = " --run s --tags 'blonde_hair blue_eyes' --n 4 --seed 2 --threads 1";
  ASSERT_EQ(RunBin("sample -w " + ws + same + " --snapshot best -o " + ws + "/best.png"), 0);
  ASSERT_EQ(RunBin("sample -w " + ws + same + named + " -o " + ws + "/named.png"), 0);
  EXPECT_EQ(cv::norm(cv::imread(ws + "/best.png"), cv::imread(ws + "/named.png"), cv::NORM_L1), 0.0);

  // serve resolves best once at start (and needs --run to know whose).
  {
    const std::string log = ws + "/serve.log";
    std::system(("timeout -s INT 5 " + Bin() + " serve -w " + ws + " --run s --snapshot best --port 0 > " + log +
                 " 2>&1").c_str());
    Result<std::string> text = ReadFile(log);
    ASSERT_TRUE(text.ok());
    const std::string want = best_is_snapshot ? "--snapshot best is snapshot " + std::to_string(best_step)
                                              : "--snapshot best is the checkpoint";
    EXPECT_NE(text->find(want), std::string::npos) << *text;
    EXPECT_EQ(RunBin("serve -w " + ws + " --snapshot best --port 0"), 2);
  }

  // The best generator gone (its snapshot deleted, or the run trained on): best is the
  // lowest FD among the rest, never the missing one.
  if (best_is_snapshot) {
    fs::remove(SnapshotPath(Workspace(ws), "s", best_step));
  } else {
    ASSERT_EQ(RunBin("train -w " + ws + " --run s --resume --steps 8 --snapshot-every 2 --keep-snapshots 3 "
                     "--sample-every 100" + kTinyArgs),
              0);
  }
  double second = 1e300;
  for (const auto& e : r["scored"])
    if (!(e["step"] == r["best"]["step"] && e["generator"] == r["best"]["generator"]) &&
        (e["generator"] == "snapshot" ? fs::exists(SnapshotPath(Workspace(ws), "s", e["step"].get<int64_t>()))
                                      : best_is_snapshot))
      second = std::min(second, e["frechet_distance"].get<double>());
  auto next = RunJson("eval -w " + ws + " --run s --snapshot best --n 16 --seed 3 --threads 1", &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_DOUBLE_EQ(next["frechet_distance"].get<double>(), second);
  EXPECT_FALSE(next["step"] == r["best"]["step"] && next["generator"] == r["best"]["generator"]);

  // --all-snapshots takes no --snapshot or --raw; a damaged record is an error, not a guess.
  EXPECT_EQ(RunBin(all + " --raw"), 2);
  std::ofstream(ws + "/runs/s/snapshot-metrics.json") << "{\"scored\": 3}";
  EXPECT_NE(RunBin("sample -w " + ws + same + " --snapshot best -o " + ws + "/x.png"), 0);
  std::ofstream(ws + "/runs/s/snapshot-metrics.json")
      << "{\"scored\": [{\"step\": \"a\", \"generator\": \"ema\", \"frechet_distance\": 1}]}";
  EXPECT_EQ(RunBin("sample -w " + ws + same + " --snapshot best -o " + ws + "/x.png"), 1);  // Corrupt, not a crash
  fs::remove_all(ws);
}

// eval end to end with a (randomly initialised) built-in tagger model file: the JSON has
// every figure, each in its range; the run's tagger is found as WS/models/<stem>.pt.
TEST(TrainBinaryTest, EvalReportsFidelityDistanceAndPrecisionRecall) {
  if (!fs::exists(Bin())) GTEST_SKIP() << "moeforge binary not built: " << Bin();
  std::string ws = MakeWorkspace("eval", 24);
  ASSERT_EQ(RunBin("train -w " + ws + " --run e --steps 2" + kTinyArgs), 0);
  SaveTestJudge(ws);
  std::string out = ws + "/eval.json";
  ASSERT_EQ(WEXITSTATUS(std::system((Bin() + " eval -w " + ws + " --run e --n 40 --json > " + out + " 2>/dev/null").c_str())), 0);
  std::ifstream in(out);
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["run"], "e");
  EXPECT_EQ(j["step"], 2);
  EXPECT_EQ(j["generated"], 40);
  EXPECT_EQ(j["real"], 24);
  for (const char* g : {"hair_color", "hair_style", "other", "eye_color"}) {
    ASSERT_TRUE(j["label_fidelity"].contains(g)) << g;
    EXPECT_GE(j["label_fidelity"][g].get<double>(), 0.0);
    EXPECT_LE(j["label_fidelity"][g].get<double>(), 1.0);
  }
  EXPECT_GE(j["frechet_distance"].get<double>(), 0.0);
  for (const char* k : {"precision_k3", "recall_k3"}) {
    EXPECT_GE(j[k].get<double>(), 0.0) << k;
    EXPECT_LE(j[k].get<double>(), 1.0) << k;
  }
  // No tagger model anywhere: a clear NotFound (exit 2), not a crash.
  fs::remove(ws + "/models/test.pt");
  EXPECT_EQ(RunBin("eval -w " + ws + " --run e"), 2);
  fs::remove_all(ws);
}
