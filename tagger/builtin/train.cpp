#include "tagger/builtin/train.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "core/progress.h"
#include "torch_common/cpu_autocast.h"

namespace moeforge::tagger {

namespace {

// Crops as one uint8 N x 3 x S x S RGB tensor (compact; converted per batch).
torch::Tensor Stack(const BuiltinTagger& model, const std::vector<const cv::Mat*>& mats) {
  int s = model.input_size();
  auto out = torch::empty({static_cast<int64_t>(mats.size()), 3, s, s}, torch::kUInt8);
  for (size_t i = 0; i < mats.size(); ++i) {
    auto x = model.ToInput({*mats[i]});  // [-1, 1]
    out[static_cast<int64_t>(i)].copy_(((x[0] + 1) * 127.5).round().clamp(0, 255).to(torch::kUInt8));
  }
  return out;
}

// Flip, small translated crops (reflect-padded), and colour jitter that keeps hue:
// brightness, contrast and saturation scale the colour, never rotate it.
torch::Tensor Augment(const torch::Tensor& u8, std::mt19937_64& rng) {
  auto x = u8.to(torch::kFloat32).div_(255.0);
  int64_t n = x.size(0), s = x.size(2);
  int pad = std::max<int64_t>(2, s / 16);
  auto padded = torch::nn::functional::pad(
      x, torch::nn::functional::PadFuncOptions({pad, pad, pad, pad}).mode(torch::kReplicate));
  std::uniform_int_distribution<int> off(0, 2 * pad);
  std::uniform_real_distribution<float> jit(0.8f, 1.2f);
  std::bernoulli_distribution coin(0.5);
  auto out = torch::empty_like(x);
  std::vector<float> b(n), c(n), sat(n);
  for (int64_t i = 0; i < n; ++i) {
    auto crop = padded[i].narrow(1, off(rng), s).narrow(2, off(rng), s);
    out[i].copy_(coin(rng) ? crop.flip({2}) : crop);
    b[i] = jit(rng), c[i] = jit(rng), sat[i] = jit(rng);
  }
  auto bt = torch::tensor(b).view({n, 1, 1, 1}), ct = torch::tensor(c).view({n, 1, 1, 1}),
       st = torch::tensor(sat).view({n, 1, 1, 1});
  auto grey = (out.select(1, 0) * 0.299 + out.select(1, 1) * 0.587 + out.select(1, 2) * 0.114).unsqueeze(1);
  out = grey + (out - grey) * st;                      // saturation
  auto mean = grey.mean({2, 3}, true);
  out = (mean + (out - mean) * ct) * bt;               // contrast, brightness
  return out.clamp_(0, 1).mul_(2).sub_(1);
}

torch::Tensor ToFloat(const torch::Tensor& u8) { return u8.to(torch::kFloat32).div_(127.5).sub_(1); }

}  // namespace

std::vector<std::vector<float>> ScoreCrops(BuiltinTagger& model, const std::vector<cv::Mat>& bgr, int batch) {
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < bgr.size(); i += static_cast<size_t>(batch)) {
    size_t e = std::min(bgr.size(), i + static_cast<size_t>(batch));
    std::vector<cv::Mat> chunk(bgr.begin() + static_cast<long>(i), bgr.begin() + static_cast<long>(e));
    auto p = model.Probabilities(model.ToInput(chunk)).contiguous();
    for (int64_t r = 0; r < p.size(0); ++r) {
      auto row = p[r];
      out.emplace_back(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
    }
  }
  return out;
}

Result<TrainOutcome> TrainOnCrops(const TagSchema& schema, const std::vector<LabeledCrop>& crops,
                                  const TrainCoreOptions& o) {
  if (crops.empty()) return Status::InvalidArgument("no labelled face crops to train the tagger on");
  torch::manual_seed(o.seed);
  std::mt19937_64 rng(o.seed);

  // Split by key: shuffle the distinct keys, hold out the first val_fraction of them.
  std::set<std::string> key_set;
  for (const auto& c : crops) key_set.insert(c.split_key);
  std::vector<std::string> keys(key_set.begin(), key_set.end());
  std::shuffle(keys.begin(), keys.end(), rng);
  size_t n_val_keys = static_cast<size_t>(std::floor(o.val_fraction * keys.size()));
  if (o.val_fraction > 0 && n_val_keys == 0 && keys.size() >= 2) n_val_keys = 1;
  std::set<std::string> val_keys(keys.begin(), keys.begin() + static_cast<long>(n_val_keys));

  TrainOutcome out;
  out.val_keys.assign(val_keys.begin(), val_keys.end());
  TaggerNetOptions net;
  net.width = o.width;
  net.pool = o.pool;
  net.blocks = o.blocks;
  out.model = std::make_shared<BuiltinTagger>(schema, net, o.input_size);
  BuiltinTagger& model = *out.model;

  std::vector<const cv::Mat*> tr_m, va_m;
  std::vector<float> tr_t;
  std::vector<float> tr_known;
  std::vector<std::vector<float>> va_t;
  bool any_binary_known = false;
  const int T = schema.size();
  for (const auto& c : crops) {
    if (static_cast<int>(c.target.size()) != T) return Status::Internal("label vector does not match the schema");
    if (val_keys.count(c.split_key)) {
      va_m.push_back(&c.bgr);
      va_t.push_back(c.target);
    } else {
      tr_m.push_back(&c.bgr);
      tr_t.insert(tr_t.end(), c.target.begin(), c.target.end());
      tr_known.push_back(c.binary_known ? 1.f : 0.f);
    }
    any_binary_known |= c.binary_known;
  }
  out.n_train = static_cast<int>(tr_m.size());
  out.n_val = static_cast<int>(va_m.size());
  if (tr_m.empty()) return Status::InvalidArgument("every labelled crop fell into the validation split");

  auto x_all = Stack(model, tr_m);
  auto y_all = torch::from_blob(tr_t.data(), {out.n_train, T}, torch::kFloat32).clone();
  auto known_all = torch::from_blob(tr_known.data(), {out.n_train}, torch::kFloat32).clone();

  // Column ranges of the groups; an exclusive group's loss counts only faces with
  // exactly one label in it.
  struct Range { int start, n; bool exclusive; };
  std::vector<Range> ranges;
  int col = 0;
  for (const auto& g : schema.groups()) {
    ranges.push_back({col, static_cast<int>(g.tags.size()), g.exclusive});
    col += static_cast<int>(g.tags.size());
  }

  auto& net_mod = model.net();
  torch::optim::AdamW opt(net_mod->parameters(), torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  const bool bf16 = o.bf16 && torch_common::CpuHasBf16();
  out.bf16 = bf16;
  int64_t steps_per_epoch = (out.n_train + o.batch - 1) / o.batch;
  int64_t total_steps = steps_per_epoch * o.epochs, step = 0;
  std::unique_ptr<Progress> progress;
  if (!o.quiet) progress = std::make_unique<Progress>("tag-train", total_steps);
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    net_mod->train();
    auto perm = torch::randperm(out.n_train, torch::TensorOptions().dtype(torch::kLong));
    double loss_sum = 0;
    for (int64_t b = 0; b < steps_per_epoch; ++b, ++step) {
      auto idx = perm.narrow(0, b * o.batch, std::min<int64_t>(o.batch, out.n_train - b * o.batch));
      if (idx.size(0) < 2) continue;  // BatchNorm needs two
      auto xb = x_all.index_select(0, idx);
      auto x = o.augment ? Augment(xb, rng) : ToFloat(xb);
      auto y = y_all.index_select(0, idx);
      auto known = known_all.index_select(0, idx);
      // Warm-up for one epoch, then cosine decay.
      double warm = std::min(1.0, (step + 1.0) / std::max<int64_t>(1, steps_per_epoch));
      double lr = o.lr * warm * 0.5 * (1 + std::cos(M_PI * step / std::max<int64_t>(1, total_steps)));
      for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
      torch::Tensor logits;
      {
        torch_common::CpuAutocast ac(bf16);
        logits = net_mod->forward(x);
      }
      logits = logits.to(torch::kFloat32);
      torch::Tensor loss = torch::zeros({});
      for (const auto& r : ranges) {
        auto lg = logits.narrow(1, r.start, r.n), yt = y.narrow(1, r.start, r.n);
        if (r.exclusive) {
          auto mask = (yt.sum(1) == 1);
          if (mask.sum().item<int64_t>() == 0) continue;
          auto target = yt.argmax(1);
          auto ce = torch::nn::functional::cross_entropy(
              lg, target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
          auto m = mask.to(torch::kFloat32);
          loss = loss + (ce * m).sum() / m.sum();
        } else if (known.sum().item<float>() > 0) {
          auto bce = torch::binary_cross_entropy_with_logits(lg, yt, {}, {}, at::Reduction::None).mean(1);
          loss = loss + (bce * known).sum() / known.sum() * 0.5 * r.n;
        }
      }
      opt.zero_grad();
      loss.backward();
      opt.step();
      loss_sum += loss.item<double>();
      char extra[64];
      std::snprintf(extra, sizeof extra, "epoch %d loss %.3f", epoch + 1, loss_sum / (b + 1));
      if (progress) progress->Advance(1, extra);
    }
  }
  if (progress) progress->Finish();
  net_mod->eval();

  if (!va_m.empty()) {
    std::vector<cv::Mat> vm;
    for (auto* m : va_m) vm.push_back(*m);
    auto scores = ScoreCrops(model, vm);
    auto th = any_binary_known ? CalibrateThresholds(schema, scores, va_t)
                               : std::vector<float>(static_cast<size_t>(T), 0.5f);
    model.set_thresholds(th);
    out.val = Evaluate(schema, scores, va_t, th, any_binary_known);
  }
  return out;
}

}  // namespace moeforge::tagger
