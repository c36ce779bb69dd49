#include "trainer/gan.h"

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

// conv-BN-ReLU-conv-BN + identity (SRResNet).
struct GenBlockImpl : nn::Module {
  explicit GenBlockImpl(int c)
      : c1(register_module("c1", Conv(c, c, 3))),
        b1(register_module("b1", nn::BatchNorm2d(c))),
        c2(register_module("c2", Conv(c, c, 3))),
        b2(register_module("b2", nn::BatchNorm2d(c))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    return x + b2(c2(torch::relu(b1(c1(x)))));
  }
  nn::Conv2d c1;
  nn::BatchNorm2d b1;
  nn::Conv2d c2;
  nn::BatchNorm2d b2;
};
TORCH_MODULE(GenBlock);

struct UpBlockImpl : nn::Module {
  explicit UpBlockImpl(int c)
      : conv(register_module("conv", Conv(c, 4 * c, 3))),
        bn(register_module("bn", nn::BatchNorm2d(c))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    return torch::relu(bn(F::pixel_shuffle(conv(x), F::PixelShuffleFuncOptions(2))));
  }
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

struct DiscStageImpl : nn::Module {
  DiscStageImpl(int in, int out, int blocks) {
    for (int i = 0; i < blocks; ++i) this->blocks->push_back(DiscBlock(in));
    register_module("blocks", this->blocks);
    down = register_module("down", Conv(in, out, 4, 2));
  }
  torch::Tensor forward(torch::Tensor x) {
    for (auto& b : *blocks) x = b->as<DiscBlock>()->forward(x);
    return torch::leaky_relu(down(x), 0.2);
  }
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
  for (int i = 0; i < UpsampleBlocks(c.resolution); ++i) ups->push_back(UpBlock(ch));
  register_module("ups", ups);
  out_conv = register_module("out_conv", Conv(ch, 3, 9));
}

torch::Tensor GeneratorImpl::forward(const torch::Tensor& z, const torch::Tensor& tags) {
  auto h = fc(torch::cat({z, tags}, 1)).view({z.size(0), cfg.g_channels, 16, 16});
  h = torch::relu(bn0(h));
  if (channels_last) h = h.contiguous(at::MemoryFormat::ChannelsLast);
  auto skip = h;
  for (auto& b : *blocks) h = b->as<GenBlock>()->forward(h);
  h = torch::relu(post_bn(post_conv(h))) + skip;
  for (auto& u : *ups) h = u->as<UpBlock>()->forward(h);
  return torch::tanh(out_conv(h));
}

DiscriminatorImpl::DiscriminatorImpl(const GanConfig& c) : cfg(c) {
  int ch = c.d_channels;
  in_conv = register_module("in_conv", Conv(3, ch, 4, 2));
  for (int i = 0; i < DiscriminatorStages(c.resolution); ++i) {
    int out = std::min(ch * 2, 16 * c.d_channels);
    stages->push_back(DiscStage(ch, out, c.d_blocks));
    ch = out;
  }
  register_module("stages", stages);
  adv = register_module("adv", nn::Linear(ch * 4 * 4, 1));
  cls = register_module("cls", nn::Linear(ch * 4 * 4, c.tags));
}

DiscriminatorOut DiscriminatorImpl::forward(const torch::Tensor& x) {
  auto h = torch::leaky_relu(in_conv(channels_last ? x.contiguous(at::MemoryFormat::ChannelsLast) : x), 0.2);
  for (auto& s : *stages) h = s->as<DiscStage>()->forward(h);
  h = h.flatten(1);
  return {adv(h).squeeze(1), cls(h)};
}

void ToMemoryFormat(torch::nn::Module& m, bool channels_last) {
  auto fmt = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(fmt));
}

torch::Tensor Perturb(const torch::Tensor& x) {
  return x + 0.5 * x.std() * torch::rand_like(x);
}

torch::Tensor GradientPenalty(Discriminator& d, const torch::Tensor& x, const torch::Tensor& x_p,
                              torch::Tensor alpha) {
  const int64_t n = x.size(0);
  if (!alpha.defined()) alpha = torch::rand({n}, x.options());
  auto a = alpha.view({n, 1, 1, 1});
  auto x_hat = (x + a * (x_p - x)).detach().requires_grad_(true);
  auto logit = d->forward(x_hat).logit;
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
                     const torch::Tensor& fake_tags, const StepConfig& c) {
  StepLosses out;
  torch::Tensor fake;
  {
    CpuAutocast ac(c.bf16);
    fake = g->forward(z, fake_tags);
  }
  // D: real -> 1 with its tags, fake -> 0, gradient penalty around real data.
  {
    LossTerms dl;
    {
      CpuAutocast ac(c.bf16);
      auto d_real = Float(d->forward(real));
      auto d_fake = Float(d->forward(fake.detach()));
      auto gp = GradientPenalty(d, real, Perturb(real)).to(torch::kFloat);
      dl = DiscriminatorLoss(d_real, d_fake, real_tags, gp, c.l_adv, c.l_gp);
    }
    opt_d.zero_grad();
    dl.total.backward();
    opt_d.step();
    out.d_total = dl.total.item<double>();
    out.d_adv = dl.adv.item<double>();
    out.d_cls = dl.cls.item<double>();
    out.gp = dl.gp.item<double>();
  }
  // G: the same fake through the updated D, judged real and with the asked-for tags.
  {
    LossTerms gl;
    FrozenParameters frozen(*d);
    {
      CpuAutocast ac(c.bf16);
      gl = GeneratorLoss(Float(d->forward(fake)), fake_tags, c.l_adv);
    }
    opt_g.zero_grad();
    gl.total.backward();
    opt_g.step();
    out.g_total = gl.total.item<double>();
    out.g_adv = gl.adv.item<double>();
    out.g_cls = gl.cls.item<double>();
  }
  return out;
}

}  // namespace moeforge::trainer
