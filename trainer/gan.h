// The models and losses of the trainer (private to trainer/): the SRResNet-style
// generator, the residual discriminator with its real/fake and tag heads, and the
// DRAGAN + ACGAN losses of DESIGN.md.
#pragma once

#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "core/status.h"

namespace moeforge::trainer {

struct GanConfig {
  int resolution = 64;  // 16 * 2^k
  int tags = 34;        // T
  int z_dim = 128;
  int g_channels = 64;
  int g_blocks = 16;
  int d_channels = 32;
  int d_blocks = 2;
  // How G doubles its size: "shuffle" (conv C->4C, PixelShuffle; the report's) or
  // "nearest" (nearest-neighbour resize, then conv C->C: no sub-pixel checkerboard).
  std::string upsample = "shuffle";
  // How D halves its size: "conv" (4x4 stride-2 conv; the report's) or "pool" (2x2 average
  // pool, then 3x3 conv: every input pixel gets the same weight in the gradient).
  std::string d_down = "conv";
  // A learned template added to G's output before its tanh (trainer/output_template.h):
  // "none"; "mean", a bias image; "tags", a bias image plus a linear map from the tags to
  // an image. Both start as the least-squares fit to the training set (in atanh space), so
  // that at step 0 G draws the mean face, or the mean face of the asked-for tags.
  std::string output_template = "none";
  // Minibatch standard deviation (ProGAN, StyleGAN): D's real/fake head also sees, per
  // group of this many samples, the mean over features of their standard deviation, so
  // a generator that draws one face per set of tags is told apart. 0: off (the report's).
  int d_mbstd = 0;
};

// Upsampling blocks after the 16x16 start (32 px: 1, 64: 2, 128: 3); -1 when the
// resolution is not 16 * 2^k with k in 1..3.
int UpsampleBlocks(int resolution);
// Discriminator stages after its first conv (each halves the size down to 4x4).
int DiscriminatorStages(int resolution);

class StepComm;

struct GeneratorImpl : torch::nn::Module {
  explicit GeneratorImpl(const GanConfig& c);
  // Data-parallel training: in train mode every BatchNorm normalises by the statistics
  // of the global batch (all ranks), and the running statistics follow them, so the
  // ranks' G stay one model. Null (the default): plain per-process BatchNorm.
  void SetBatchNormSync(StepComm* comm);
  // z: N x z_dim, tags: N x T (0/1) -> N x 3 x R x R in [-1, 1].
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor& tags);

  GanConfig cfg;
  bool channels_last = false;  // run the convolutions in NHWC
  torch::nn::Linear fc{nullptr};
  torch::nn::BatchNorm2d bn0{nullptr};
  torch::nn::ModuleList blocks;      // residual: conv-BN-ReLU-conv-BN
  torch::nn::Conv2d post_conv{nullptr};
  torch::nn::BatchNorm2d post_bn{nullptr};
  torch::nn::ModuleList ups;         // conv C->4C, PixelShuffle(2) (or resize, conv C->C), BN, ReLU
  torch::nn::Conv2d out_conv{nullptr};  // 9x9 -> 3
  torch::Tensor out_bias;               // 1 x 3 x R x R before the tanh ("mean", "tags"), else undefined
  torch::nn::Linear out_tags{nullptr};  // T -> 3 x R x R, no bias ("tags"), else null

 private:
  StepComm* bn_sync_ = nullptr;
};
TORCH_MODULE(Generator);

struct DiscriminatorOut {
  torch::Tensor logit;  // N: real/fake
  torch::Tensor tags;   // N x T: tag logits
};

struct DiscriminatorImpl : torch::nn::Module {
  explicit DiscriminatorImpl(const GanConfig& c);
  DiscriminatorOut forward(const torch::Tensor& x);

  GanConfig cfg;
  bool channels_last = false;
  torch::nn::Conv2d in_conv{nullptr};  // 4x4 / 2 (or 3x3, then a 2x2 average pool)
  torch::nn::ModuleList stages;        // residual blocks, then conv 4x4 / 2 (LeakyReLU)
  torch::nn::Linear adv{nullptr};  // the real/fake logit (with the minibatch-stddev channel)
  torch::nn::Linear cls{nullptr};  // the tag logits (each sample's own features only)
};
TORCH_MODULE(Discriminator);

// N x C x H x W -> N x (C+1) x H x W: the last channel is, for the group of up to `group`
// samples (i, i + N/g, ...) each sample is in, the standard deviation over the group
// averaged over features and positions (the group size is cut to divide N).
torch::Tensor MinibatchStddev(const torch::Tensor& h, int group);

// Moves the 4-D parameters (conv weights) to NHWC or back; set the module's
// channels_last flag too so activations follow.
void ToMemoryFormat(torch::nn::Module& m, bool channels_last);

// ICNR (Aitken et al. 2017): initialises each sub-pixel convolution (C -> 4C before
// PixelShuffle(2)) from one C -> C kernel repeated over the four sub-pixel positions, so
// at the start every 2x2 output block is one value (nearest-neighbour upsampling) and
// the checkerboard of independently initialised sub-pixels never forms.
// A resize-conv generator (upsample "nearest") has none and is left as it is.
void IcnrInit(Generator& g);

// The moving average of G's weights that sampling uses (StyleGAN2-ADA's G_ema):
// p_ema <- beta * p_ema + (1 - beta) * p for every parameter; buffers (BatchNorm
// statistics) are copied.
void EmaUpdate(torch::nn::Module& ema, const torch::nn::Module& model, double beta);
// beta for one step of `batch` images with a half-life of `halflife_images`, ramped up
// to `rampup` x the images seen so far (so a short run is not averaged over its noisy
// start): 0.5 ^ (batch / min(halflife, rampup * seen)). rampup <= 0: no ramp.
double EmaBeta(int64_t images_seen, int batch, double halflife_images, double rampup);

// Differentiable augmentation of everything D sees (DiffAugment, Zhao et al. 2020):
// colour (brightness, saturation, contrast), translation (up to 1/8 of the side, zero
// fill) and cutout (a zeroed square of half the side). Draw() picks one transform per
// sample; Apply() applies sample i's transform to row i of any batch, so real, fake and
// gradient-penalty points of one step go through the same transforms.
struct AugmentPolicy {
  bool color = false, translation = false, cutout = false;
  // "color,translation,cutout", any subset; "" or "none": off.
  static Result<AugmentPolicy> Parse(const std::string& spec);
  std::string ToString() const;
  bool any() const { return color || translation || cutout; }
};
struct AugmentParams {
  torch::Tensor brightness, saturation, contrast;  // N x 1 x 1 x 1 (colour)
  torch::Tensor shift_y, shift_x;                   // N, in pixels (translation)
  torch::Tensor cut_y, cut_x;                       // N, the cutout square's centre
  bool defined() const { return brightness.defined() || shift_y.defined() || cut_y.defined(); }
};
AugmentParams DrawAugment(const AugmentPolicy& p, int64_t n, int size, const torch::TensorOptions& opt);
torch::Tensor ApplyAugment(const torch::Tensor& x, const AugmentParams& a);

// DRAGAN's perturbation of real data: x + 0.5 * std(x) * U[0,1) per element.
torch::Tensor Perturb(const torch::Tensor& x);
// The gradient penalty at x_hat = x + a * (x_p - x), a ~ U[0,1) per sample:
// mean over the batch of (||grad_{x_hat} D_logit(x_hat)||_2 - 1)^2. create_graph so that
// it trains D. `alpha` (N) may be given for tests; undefined = drawn.
// With `aug`, D sees the augmented x_hat and the gradient is taken through the augmentation.
torch::Tensor GradientPenalty(Discriminator& d, const torch::Tensor& x, const torch::Tensor& x_p,
                              torch::Tensor alpha = {}, const AugmentParams* aug = nullptr);

struct LossTerms {
  torch::Tensor total;
  torch::Tensor adv;  // BCE real/fake part (unweighted)
  torch::Tensor cls;  // BCE of the tag head, summed over the tags, batch mean
  torch::Tensor gp;   // D only
};

// D = l_adv * BCE(real -> 1, fake -> 0) + BCE(tags on real) + l_gp * GP.
// The real/fake BCE is the sum of its real and fake halves, each a batch mean; the tag
// BCE is summed over the T tags (so l_adv = T weighs the two alike), a batch mean.
LossTerms DiscriminatorLoss(const DiscriminatorOut& real, const DiscriminatorOut& fake,
                            const torch::Tensor& real_tags, const torch::Tensor& gp, double l_adv, double l_gp);
// G = l_adv * BCE(fake -> 1) + BCE(tags of fake vs the tags it was asked for).
LossTerms GeneratorLoss(const DiscriminatorOut& fake, const torch::Tensor& fake_tags, double l_adv);

// What a data-parallel step needs from its process group (trainer/distributed.h has the
// c10d one). Every rank draws the randomness of the whole global batch in the same order
// as a single process would and keeps its own rows, so N ranks with batch B step like one
// process with batch N x B, and their RNG states stay equal.
class StepComm {
 public:
  virtual ~StepComm() = default;
  virtual int world() const = 0;
  virtual int rank() const = 0;
  // Sums over ranks in place (not differentiable).
  virtual void AllReduceSum(std::vector<torch::Tensor>& tensors) = 0;
  // The mean over ranks of the gradients of these parameters, in place, through a few
  // flat buckets; called between backward() and the optimiser's step().
  virtual void AverageGradients(const std::vector<torch::Tensor>& params) = 0;
  // Sum over ranks whose gradient is the sum of the ranks' gradients (synchronised BatchNorm).
  virtual torch::Tensor SumAcrossRanks(const torch::Tensor& x) = 0;
};

// Synchronised BatchNorm (train mode): `bn`'s affine transform of x normalised by the
// mean and biased variance over every rank's batch; updates bn's running statistics as
// torch's BatchNorm does (unbiased variance, its momentum).
torch::Tensor SyncBatchNorm(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x, StepComm& comm);

struct StepConfig {
  double l_adv = 34;
  double l_gp = 0.5;
  bool bf16 = false;  // CPU autocast to bfloat16 for the forward passes
  AugmentPolicy augment;  // what D sees (real, fake, GP points alike)
  // Lazy regularisation (StyleGAN2): the gradient penalty on every gp_every-th step
  // only, weighted gp_every times, so its mean weight is l_gp.
  int gp_every = 1;
  // Data-parallel: gradients averaged over ranks, the batch's randomness drawn for the
  // global batch. Null: the single-process step.
  StepComm* comm = nullptr;
};

struct StepLosses {
  double d_total = 0, d_adv = 0, d_cls = 0, gp = 0;  // gp: NaN on a step without the penalty
  double g_total = 0, g_adv = 0, g_cls = 0;
};

// One DRAGAN step: fake = G(z, fake_tags); a D update on (real, fake, GP on perturbed
// real); a G update through D on the same fake. With an augmentation policy, one
// transform per sample index is drawn and D sees every batch of the step through it.
// Draws the perturbation, the GP's alpha and the augmentation from the default CPU
// generator.
StepLosses TrainStep(Generator& g, Discriminator& d, torch::optim::Adam& opt_g, torch::optim::Adam& opt_d,
                     const torch::Tensor& real, const torch::Tensor& real_tags, const torch::Tensor& z,
                     const torch::Tensor& fake_tags, const StepConfig& c, int64_t step = 0);

}  // namespace moeforge::trainer
