#include "trainer/gan.h"

#include <algorithm>
#include <cmath>

#include "torch_common/cpu_autocast.h"

namespace moeforge::trainer {

namespace F = torch::nn::functional;
namespace nn = torch::nn;
using torch_common::CpuAutocast;

int UpsampleBlocks(int resolution) {
  switch (resolution) {
    case 32: return 1;
    case 64: return 2;
    case 128: return 3;
    default: return -1;
  }
}

int DiscriminatorStages(int resolution) {
  int k = UpsampleBlocks(resolution);
  return k < 0 ? -1 : k + 1;  // R/2 after the first conv, halved down to 4: log2(R/8)
}

namespace {

nn::Conv2d Conv(int in, int out, int k, int stride = 1) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(k == 4 ? 1 : k / 2));
}

// A BatchNorm of G: synchronised over ranks in data-parallel training.
torch::Tensor Norm(nn::BatchNorm2d& bn, StepComm* sync, const torch::Tensor& x) {
  return sync != nullptr && bn->is_training() ? SyncBatchNorm(*bn, x, *sync) : bn(x);
}

// conv-BN-ReLU-conv-BN + identity (SRResNet).
struct GenBlockImpl : nn::Module {
  explicit GenBlockImpl(int c)
      : c1(register_module("c1", Conv(c, c, 3))),
        b1(register_module("b1", nn::BatchNorm2d(c))),
        c2(register_module("c2", Conv(c, c, 3))),
        b2(register_module("b2", nn::BatchNorm2d(c))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    return x + Norm(b2, sync, c2(torch::relu(Norm(b1, sync, c1(x)))));
  }
  StepComm* sync = nullptr;
  nn::Conv2d c1;
  nn::BatchNorm2d b1;
  nn::Conv2d c2;
  nn::BatchNorm2d b2;
};
TORCH_MODULE(GenBlock);

struct UpBlockImpl : nn::Module {
  UpBlockImpl(int c, bool shuffle)
      : shuffle(shuffle),
        conv(register_module("conv", Conv(c, shuffle ? 4 * c : c, 3))),
        bn(register_module("bn", nn::BatchNorm2d(c))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    if (shuffle) return torch::relu(Norm(bn, sync, F::pixel_shuffle(conv(x), F::PixelShuffleFuncOptions(2))));
    auto up = F::interpolate(x, F::InterpolateFuncOptions()
                                    .scale_factor(std::vector<double>{2.0, 2.0})
                                    .mode(torch::kNearest));
    return torch::relu(Norm(bn, sync, conv(up)));
  }
  bool shuffle;
  StepComm* sync = nullptr;
  nn::Conv2d conv;
  nn::BatchNorm2d bn;
};
TORCH_MODULE(UpBlock);

// conv-LReLU-conv + identity, LReLU (the report's D blocks; no normalisation: the
// gradient penalty is per sample).
struct DiscBlockImpl : nn::Module {
  explicit DiscBlockImpl(int c)
      : c1(register_module("c1", Conv(c, c, 3))), c2(register_module("c2", Conv(c, c, 3))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::leaky_relu(x + c2(torch::leaky_relu(c1(x), 0.2)), 0.2);
  }
  nn::Conv2d c1, c2;
};
TORCH_MODULE(DiscBlock);

torch::Tensor Pool2(const torch::Tensor& x) { return F::avg_pool2d(x, F::AvgPool2dFuncOptions(2)); }

struct DiscStageImpl : nn::Module {
  // pool: a 2x2 average pool, then a 3x3 conv; otherwise a 4x4 stride-2 conv.
  DiscStageImpl(int in, int out, int blocks, bool pool) : pool(pool) {
    for (int i = 0; i < blocks; ++i) this->blocks->push_back(DiscBlock(in));
    register_module("blocks", this->blocks);
    down = register_module("down", pool ? Conv(in, out, 3) : Conv(in, out, 4, 2));
  }
  torch::Tensor forward(torch::Tensor x) {
    for (auto& b : *blocks) x = b->as<DiscBlock>()->forward(x);
    return torch::leaky_relu(down(pool ? Pool2(x) : x), 0.2);
  }
  bool pool;
  nn::ModuleList blocks;
  nn::Conv2d down{nullptr};
};
TORCH_MODULE(DiscStage);

}  // namespace

GeneratorImpl::GeneratorImpl(const GanConfig& c) : cfg(c) {
  const int ch = c.g_channels;
  fc = register_module("fc", nn::Linear(c.z_dim + c.tags, ch * 16 * 16));
  bn0 = register_module("bn0", nn::BatchNorm2d(ch));
  for (int i = 0; i < c.g_blocks; ++i) blocks->push_back(GenBlock(ch));
  register_module("blocks", blocks);
  post_conv = register_module("post_conv", Conv(ch, ch, 3));
  post_bn = register_module("post_bn", nn::BatchNorm2d(ch));
  for (int i = 0; i < UpsampleBlocks(c.resolution); ++i) ups->push_back(UpBlock(ch, c.upsample != "nearest"));
  register_module("ups", ups);
  out_conv = register_module("out_conv", Conv(ch, 3, 9));
  if (c.output_template != "none")
    out_bias = register_parameter("out_bias", torch::zeros({1, 3, c.resolution, c.resolution}));
  if (c.output_template == "tags")
    out_tags = register_module("out_tags",
                               nn::Linear(nn::LinearOptions(c.tags, 3 * c.resolution * c.resolution).bias(false)));
}

torch::Tensor GeneratorImpl::forward(const torch::Tensor& z, const torch::Tensor& tags) {
  auto h = fc(torch::cat({z, tags}, 1)).view({z.size(0), cfg.g_channels, 16, 16});
  h = torch::relu(Norm(bn0, bn_sync_, h));
  if (channels_last) h = h.contiguous(at::MemoryFormat::ChannelsLast);
  auto skip = h;
  for (auto& b : *blocks) h = b->as<GenBlock>()->forward(h);
  h = torch::relu(Norm(post_bn, bn_sync_, post_conv(h))) + skip;
  for (auto& u : *ups) h = u->as<UpBlock>()->forward(h);
  auto out = out_conv(h);
  if (out_bias.defined()) out = out + out_bias;
  if (out_tags) out = out + out_tags(tags).view({z.size(0), 3, cfg.resolution, cfg.resolution});
  return torch::tanh(out);
}

void GeneratorImpl::SetBatchNormSync(StepComm* comm) {
  bn_sync_ = comm;
  for (auto& b : *blocks) b->as<GenBlock>()->sync = comm;
  for (auto& u : *ups) u->as<UpBlock>()->sync = comm;
}

torch::Tensor SyncBatchNorm(nn::BatchNorm2dImpl& bn, const torch::Tensor& x_in, StepComm& comm) {
  auto x = x_in.to(torch::kFloat);
  const int64_t c = x.size(1);
  const double count = double(x.size(0)) * x.size(2) * x.size(3) * comm.world();
  // One all-reduce of (sum, sum of squares), accumulated in double against cancellation.
  auto stats = comm.SumAcrossRanks(torch::cat({x.sum({0, 2, 3}, false, torch::kDouble),
                                               (x * x).sum({0, 2, 3}, false, torch::kDouble)}));
  auto mean = stats.slice(0, 0, c) / count;
  auto var = (stats.slice(0, c, 2 * c) / count - mean * mean).clamp_min(0);
  {
    torch::NoGradGuard ng;
    const double m = bn.options.momentum().value_or(0.1);
    bn.running_mean.mul_(1 - m).add_(mean.to(torch::kFloat), m);
    bn.running_var.mul_(1 - m).add_((var * (count / std::max(count - 1, 1.0))).to(torch::kFloat), m);
    bn.num_batches_tracked.add_(1);
  }
  auto shape = std::vector<int64_t>{1, c, 1, 1};
  auto scale = (torch::rsqrt(var + bn.options.eps()).to(torch::kFloat) * bn.weight).view(shape);
  return (x - mean.to(torch::kFloat).view(shape)) * scale + bn.bias.view(shape);
}

DiscriminatorImpl::DiscriminatorImpl(const GanConfig& c) : cfg(c) {
  int ch = c.d_channels;
  const bool pool = c.d_down == "pool";
  in_conv = register_module("in_conv", pool ? Conv(3, ch, 3) : Conv(3, ch, 4, 2));
  for (int i = 0; i < DiscriminatorStages(c.resolution); ++i) {
    int out = std::min(ch * 2, 16 * c.d_channels);
    stages->push_back(DiscStage(ch, out, c.d_blocks, pool));
    ch = out;
  }
  register_module("stages", stages);
  adv = register_module("adv", nn::Linear((ch + (c.d_mbstd > 0 ? 1 : 0)) * 4 * 4, 1));
  cls = register_module("cls", nn::Linear(ch * 4 * 4, c.tags));
}

DiscriminatorOut DiscriminatorImpl::forward(const torch::Tensor& x) {
  auto h = in_conv(channels_last ? x.contiguous(at::MemoryFormat::ChannelsLast) : x);
  if (cfg.d_down == "pool") h = Pool2(h);  // 3x3 at full size, then halved
  h = torch::leaky_relu(h, 0.2);
  for (auto& s : *stages) h = s->as<DiscStage>()->forward(h);
  auto flat = h.flatten(1);
  if (cfg.d_mbstd <= 0) return {adv(flat).squeeze(1), cls(flat)};
  return {adv(MinibatchStddev(h, cfg.d_mbstd).flatten(1)).squeeze(1), cls(flat)};
}

torch::Tensor MinibatchStddev(const torch::Tensor& h, int group) {
  const int64_t n = h.size(0), c = h.size(1), hh = h.size(2), ww = h.size(3);
  // The largest group size <= `group` that divides the batch, so every sample is in one.
  int64_t g = std::min<int64_t>(group, n);
  while (n % g != 0) --g;
  auto x = h.to(torch::kFloat32).reshape({g, n / g, c, hh, ww});  // sample i is in group i % (n / g)
  auto sd = (x.var(0, /*unbiased=*/false) + 1e-8).sqrt();       // n/g x C x H x W
  auto s = sd.mean({1, 2, 3}).view({n / g, 1, 1, 1}).repeat({g, 1, hh, ww});  // N x 1 x H x W
  return torch::cat({h, s.to(h.dtype())}, 1);
}

void ToMemoryFormat(torch::nn::Module& m, bool channels_last) {
  auto fmt = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(fmt));
}

void IcnrInit(Generator& g) {
  torch::NoGradGuard no_grad;
  for (auto& u : *g->ups) {
    if (!u->as<UpBlock>()->shuffle) continue;  // a resize-conv has no sub-pixels
    auto& conv = u->as<UpBlock>()->conv;
    // Output channel c*4 + k feeds sub-pixel k of channel c after PixelShuffle(2): keep
    // the default (Kaiming-uniform, fan-in C*9) draw of every fourth kernel and repeat it.
    auto w = conv->weight.index({torch::indexing::Slice(torch::indexing::None, torch::indexing::None, 4)});
    conv->weight.copy_(w.repeat_interleave(4, 0));
    if (conv->bias.defined()) {
      auto b = conv->bias.index({torch::indexing::Slice(torch::indexing::None, torch::indexing::None, 4)});
      conv->bias.copy_(b.repeat_interleave(4, 0));
    }
  }
}

void EmaUpdate(torch::nn::Module& ema, const torch::nn::Module& model, double beta) {
  torch::NoGradGuard no_grad;
  auto ep = ema.parameters(), mp = model.parameters();
  for (size_t i = 0; i < ep.size(); ++i) ep[i].lerp_(mp[i].detach(), 1.0 - beta);
  auto eb = ema.buffers(), mb = model.buffers();
  for (size_t i = 0; i < eb.size(); ++i) eb[i].copy_(mb[i]);
}

double EmaBeta(int64_t images_seen, int batch, double halflife_images, double rampup) {
  double h = halflife_images;
  if (rampup > 0) h = std::min(h, rampup * static_cast<double>(images_seen));
  if (h <= 0) return 0.0;
  return std::pow(0.5, batch / h);
}

Result<AugmentPolicy> AugmentPolicy::Parse(const std::string& spec) {
  AugmentPolicy p;
  std::string item;
  std::string rest = spec + ",";
  for (char ch : rest) {
    if (ch != ',') {
      if (ch != ' ') item += ch;
      continue;
    }
    if (item == "color" || item == "colour") p.color = true;
    else if (item == "translation") p.translation = true;
    else if (item == "cutout") p.cutout = true;
    else if (!item.empty() && item != "none")
      return Status::InvalidArgument("--augment: unknown transform '" + item + "' (color, translation, cutout or none)");
    item.clear();
  }
  return p;
}

std::string AugmentPolicy::ToString() const {
  std::string s;
  for (auto [on, name] : {std::pair<bool, const char*>{color, "color"}, {translation, "translation"}, {cutout, "cutout"}})
    if (on) s += (s.empty() ? "" : ",") + std::string(name);
  return s.empty() ? "none" : s;
}

AugmentParams DrawAugment(const AugmentPolicy& p, int64_t n, int size, const torch::TensorOptions& opt) {
  AugmentParams a;
  auto f = opt.dtype(torch::kFloat32);
  if (p.color) {
    a.brightness = (torch::rand({n, 1, 1, 1}, f) - 0.5);
    a.saturation = torch::rand({n, 1, 1, 1}, f) * 2;
    a.contrast = torch::rand({n, 1, 1, 1}, f) + 0.5;
  }
  auto l = opt.dtype(torch::kLong);
  if (p.translation) {
    const int64_t s = size / 8;
    a.shift_y = torch::randint(-s, s + 1, {n}, l);
    a.shift_x = torch::randint(-s, s + 1, {n}, l);
  }
  if (p.cutout) {
    // Centres anywhere, so the square may hang over an edge (as in DiffAugment).
    a.cut_y = torch::randint(0, size + (1 - size % 2), {n}, l);
    a.cut_x = torch::randint(0, size + (1 - size % 2), {n}, l);
  }
  return a;
}

torch::Tensor ApplyAugment(const torch::Tensor& x, const AugmentParams& a) {
  torch::Tensor y = x;
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  if (a.brightness.defined()) {
    y = y + a.brightness.to(y.dtype());
    auto m = y.mean(1, true);
    y = (y - m) * a.saturation.to(y.dtype()) + m;
    auto mm = y.mean({1, 2, 3}, true);
    y = (y - mm) * a.contrast.to(y.dtype()) + mm;
  }
  if (a.shift_y.defined()) {
    // Gather from a zero-padded copy: indexing is linear in x, so its gradient (and the
    // gradient penalty's gradient of that gradient) flows back exactly.
    const int64_t p = std::max<int64_t>(1, h / 8);
    auto padded = torch::constant_pad_nd(y, {p, p, p, p}, 0).permute({0, 2, 3, 1});  // N x H' x W' x C
    auto lo = torch::TensorOptions().dtype(torch::kLong).device(x.device());
    auto iy = (torch::arange(h, lo).view({1, h, 1}) + p + a.shift_y.view({n, 1, 1})).clamp(0, h + 2 * p - 1);
    auto ix = (torch::arange(w, lo).view({1, 1, w}) + p + a.shift_x.view({n, 1, 1})).clamp(0, w + 2 * p - 1);
    auto in = torch::arange(n, lo).view({n, 1, 1});
    y = padded.index({in, iy, ix}).permute({0, 3, 1, 2});
  }
  if (a.cut_y.defined()) {
    auto lo = torch::TensorOptions().dtype(torch::kLong).device(x.device());
    const int64_t half_h = h / 4, half_w = w / 4;  // a square of half the side
    auto ys = torch::arange(h, lo).view({1, h, 1}), xs = torch::arange(w, lo).view({1, 1, w});
    auto cy = a.cut_y.view({n, 1, 1}), cx = a.cut_x.view({n, 1, 1});
    auto inside = (ys >= cy - half_h) & (ys < cy + half_h) & (xs >= cx - half_w) & (xs < cx + half_w);
    y = y * (~inside).unsqueeze(1).to(y.dtype());
  }
  return y;
}

torch::Tensor Perturb(const torch::Tensor& x) {
  return x + 0.5 * x.std() * torch::rand_like(x);
}

torch::Tensor GradientPenalty(Discriminator& d, const torch::Tensor& x, const torch::Tensor& x_p,
                              torch::Tensor alpha, const AugmentParams* aug) {
  const int64_t n = x.size(0);
  if (!alpha.defined()) alpha = torch::rand({n}, x.options());
  auto a = alpha.view({n, 1, 1, 1});
  auto x_hat = (x + a * (x_p - x)).detach().requires_grad_(true);
  auto logit = d->forward(aug != nullptr && aug->defined() ? ApplyAugment(x_hat, *aug) : x_hat).logit;
  auto grad = torch::autograd::grad({logit.sum()}, {x_hat}, /*grad_outputs=*/{}, /*retain_graph=*/true,
                                    /*create_graph=*/true)[0];
  auto norm = grad.reshape({n, -1}).norm(2, 1);
  return (norm - 1).pow(2).mean();
}

torch::Tensor TagLoss(const torch::Tensor& logits, const torch::Tensor& tags) {
  // Summed over the T tags, averaged over the batch: the reading of the report under
  // which l_adv = T weighs the one real/fake term like the T tag terms. (Averaged over
  // the tags as well, the tag head got 1/T of the weight and had not learned the hair
  // colours of the demo faces after 1,400 steps, so the generator ignored its tags.)
  return F::binary_cross_entropy_with_logits(logits, tags) * logits.size(1);
}

LossTerms DiscriminatorLoss(const DiscriminatorOut& real, const DiscriminatorOut& fake,
                            const torch::Tensor& real_tags, const torch::Tensor& gp, double l_adv, double l_gp) {
  LossTerms t;
  t.adv = F::binary_cross_entropy_with_logits(real.logit, torch::ones_like(real.logit)) +
          F::binary_cross_entropy_with_logits(fake.logit, torch::zeros_like(fake.logit));
  t.cls = TagLoss(real.tags, real_tags);
  t.gp = gp;
  t.total = l_adv * t.adv + t.cls + l_gp * gp;
  return t;
}

LossTerms GeneratorLoss(const DiscriminatorOut& fake, const torch::Tensor& fake_tags, double l_adv) {
  LossTerms t;
  t.adv = F::binary_cross_entropy_with_logits(fake.logit, torch::ones_like(fake.logit));
  t.cls = TagLoss(fake.tags, fake_tags);
  t.total = l_adv * t.adv + t.cls;
  return t;
}

namespace {

// Holds a module's parameters out of autograd for its scope. The generator's step only
// needs gradients through D to its input; D's own weight gradients there would be thrown
// away by the next zero_grad, so not computing them saves about a third of D's backward.
class FrozenParameters {
 public:
  explicit FrozenParameters(torch::nn::Module& m) : params_(m.parameters()) {
    for (auto& p : params_) p.requires_grad_(false);
  }
  ~FrozenParameters() {
    for (auto& p : params_) p.requires_grad_(true);
  }

 private:
  std::vector<torch::Tensor> params_;
};

DiscriminatorOut Float(DiscriminatorOut o) { return {o.logit.to(torch::kFloat), o.tags.to(torch::kFloat)}; }

}  // namespace

StepLosses TrainStep(Generator& g, Discriminator& d, torch::optim::Adam& opt_g, torch::optim::Adam& opt_d,
                     const torch::Tensor& real, const torch::Tensor& real_tags, const torch::Tensor& z,
                     const torch::Tensor& fake_tags, const StepConfig& c, int64_t step) {
  StepLosses out;
  const int gp_every = std::max(1, c.gp_every);
  const bool penalise = step % gp_every == 0;
  torch::Tensor fake;
  {
    CpuAutocast ac(c.bf16);
    fake = g->forward(z, fake_tags);
  }
  // One transform per sample index for everything D sees this step.
  // Data-parallel: this rank's rows of a global batch of n_global samples.
  const int64_t n = real.size(0);
  const int64_t n_global = c.comm != nullptr ? n * c.comm->world() : n;
  const int64_t offset = c.comm != nullptr ? n * c.comm->rank() : 0;
  auto rows = [&](const torch::Tensor& t) { return t.defined() && c.comm != nullptr ? t.narrow(0, offset, n) : t; };
  AugmentParams aug;
  if (c.augment.any()) {
    aug = DrawAugment(c.augment, n_global, static_cast<int>(real.size(2)), real.options());
    for (auto* t : {&aug.brightness, &aug.saturation, &aug.contrast, &aug.shift_y, &aug.shift_x, &aug.cut_y, &aug.cut_x})
      *t = rows(*t);
  }
  auto seen = [&](const torch::Tensor& x) { return aug.defined() ? ApplyAugment(x, aug) : x; };
  // D: real -> 1 with its tags, fake -> 0, gradient penalty around real data.
  {
    LossTerms dl;
    {
      CpuAutocast ac(c.bf16);
      auto d_real = Float(d->forward(seen(real)));
      auto d_fake = Float(d->forward(seen(fake.detach())));
      torch::Tensor gp;
      if (!penalise) {
        gp = torch::zeros({}, d_real.logit.options());
      } else if (c.comm == nullptr) {
        gp = GradientPenalty(d, real, Perturb(real), {}, &aug).to(torch::kFloat);
      } else {
        // Perturb's std over the global batch, its noise and alpha drawn for the global
        // batch in the single process's order (noise first, then alpha).
        std::vector<torch::Tensor> sums{torch::stack({real.sum(torch::kDouble), (real * real).sum(torch::kDouble)})};
        c.comm->AllReduceSum(sums);
        const double count = double(real.numel()) * c.comm->world();
        const double s1 = sums[0][0].item<double>(), s2 = sums[0][1].item<double>();
        const double std = std::sqrt(std::max(0.0, (s2 - s1 * s1 / count) / std::max(count - 1, 1.0)));
        auto noise_shape = real.sizes().vec();
        noise_shape[0] = n_global;
        auto x_p = real + 0.5 * std * rows(torch::rand(noise_shape, real.options()));
        auto alpha = rows(torch::rand({n_global}, real.options()));
        gp = GradientPenalty(d, real, x_p, alpha, &aug).to(torch::kFloat);
      }
      dl = DiscriminatorLoss(d_real, d_fake, real_tags, gp, c.l_adv, c.l_gp * (penalise ? gp_every : 0));
    }
    opt_d.zero_grad();
    dl.total.backward();
    if (c.comm != nullptr) c.comm->AverageGradients(d->parameters());
    opt_d.step();
    out.d_total = dl.total.item<double>();
    out.d_adv = dl.adv.item<double>();
    out.d_cls = dl.cls.item<double>();
    out.gp = penalise ? dl.gp.item<double>() : std::nan("");
  }
  // G: the same fake through the updated D, judged real and with the asked-for tags.
  {
    LossTerms gl;
    FrozenParameters frozen(*d);
    {
      CpuAutocast ac(c.bf16);
      gl = GeneratorLoss(Float(d->forward(seen(fake))), fake_tags, c.l_adv);
    }
    opt_g.zero_grad();
    gl.total.backward();
    if (c.comm != nullptr) c.comm->AverageGradients(g->parameters());
    opt_g.step();
    out.g_total = gl.total.item<double>();
    out.g_adv = gl.adv.item<double>();
    out.g_cls = gl.cls.item<double>();
  }
  if (c.comm != nullptr) {
    // The losses of the global batch: the mean of the ranks' batch means.
    std::vector<torch::Tensor> l{torch::tensor(std::vector<double>{out.d_total, out.d_adv, out.d_cls,
                                                                   penalise ? out.gp : 0.0, out.g_total, out.g_adv,
                                                                   out.g_cls},
                                               torch::kDouble)};
    c.comm->AllReduceSum(l);
    auto v = (l[0] / c.comm->world()).contiguous();
    const double* p = v.data_ptr<double>();
    out.d_total = p[0], out.d_adv = p[1], out.d_cls = p[2], out.g_total = p[4], out.g_adv = p[5], out.g_cls = p[6];
    if (penalise) out.gp = p[3];
  }
  return out;
}

}  // namespace moeforge::trainer
