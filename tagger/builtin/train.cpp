#include "tagger/builtin/train.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>

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

// Flip, and a small random zoom and shift (replicating the border), as a detector's
// boxes vary. No colour jitter: brightness, contrast or saturation would move silver
// towards grey or white, and the colours are what the tagger learns.
torch::Tensor Augment(const torch::Tensor& u8, std::mt19937_64& rng) {
  auto x = u8.to(torch::kFloat32).div_(127.5).sub_(1);
  int64_t n = x.size(0);
  std::uniform_real_distribution<float> zoom(0.9f, 1.1f), shift(-0.08f, 0.08f);
  std::bernoulli_distribution coin(0.5);
  // theta maps output to input coordinates in [-1, 1]: a scale below 1 zooms in.
  std::vector<float> theta(static_cast<size_t>(n) * 6, 0.f);
  for (int64_t i = 0; i < n; ++i) {
    float z = 1.0f / zoom(rng), flip = coin(rng) ? -1.f : 1.f;
    float* t = &theta[static_cast<size_t>(i) * 6];
    t[0] = z * flip, t[2] = shift(rng);
    t[4] = z, t[5] = shift(rng);
  }
  auto th = torch::from_blob(theta.data(), {n, 2, 3}, torch::kFloat32).clone();
  auto grid = torch::affine_grid_generator(th, x.sizes(), /*align_corners=*/false);
  return torch::grid_sampler(x, grid, /*bilinear*/ 0, /*border*/ 1, /*align_corners=*/false);
}

torch::Tensor ToFloat(const torch::Tensor& u8) { return u8.to(torch::kFloat32).div_(127.5).sub_(1); }

}  // namespace

TrainCoreOptions CoreOptions(const TagTrainOptions& o) {
  TrainCoreOptions co;
  co.epochs = o.epochs;
  co.patience = o.patience;
  co.augment = o.augment;
  co.label_smoothing = o.label_smoothing;
  co.multi_instance = o.multi_instance;
  co.flip_average = o.flip_average;
  co.input_size = o.input_size;
  co.batch = o.batch;
  co.lr = o.lr;
  co.width = o.width;
  co.blocks = o.blocks;
  co.pool = o.pool;
  co.bf16 = o.bf16;
  co.val_fraction = o.val_fraction;
  co.seed = o.seed;
  co.quiet = o.quiet;
  return co;
}

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

std::pair<torch::Tensor, torch::Tensor> MultiInstanceLoss(const torch::Tensor& logits, const torch::Tensor& bag,
                                                          const torch::Tensor& positive, const std::string& kind) {
  const int64_t T = logits.size(1);
  auto rows = (bag >= 0).nonzero().squeeze(1);
  if (rows.numel() == 0) return {torch::zeros({T}), torch::zeros({T})};
  auto z = logits.index_select(0, rows).to(torch::kFloat32);
  auto pos = positive.index_select(0, rows).to(torch::kFloat32);
  // Bags numbered 0..B-1 in this batch; member[b][i]: row i is of bag b.
  auto inverse = std::get<1>(at::_unique(bag.index_select(0, rows), /*sorted=*/true, /*return_inverse=*/true));
  const int64_t B = inverse.max().item<int64_t>() + 1;
  auto member = inverse.unsqueeze(0) == torch::arange(B, torch::kLong).unsqueeze(1);
  auto member_f = member.to(torch::kFloat32);
  // The labelled (bag, tag) pairs; every row of a bag says the same.
  auto labelled = (member_f.matmul(pos) > 0).to(torch::kFloat32);
  torch::Tensor log_p;  // B x T: log P(the bag has the tag)
  if (kind == "max") {
    auto zmax = z.unsqueeze(0).masked_fill(member.logical_not().unsqueeze(2), -1e4).amax(1);
    log_p = -torch::nn::functional::softplus(-zmax);  // log sigmoid
  } else if (kind == "noisy-or") {
    // log(1 - p_i) = -softplus(z_i), summed over the bag: log P(no face has it) = s;
    // log P(bag) = log(1 - e^s). s is held below 0 so a bag whose every face says a firm
    // "no" keeps a finite loss (and its gradient down to logits of about -46).
    auto s = member_f.matmul(-torch::nn::functional::softplus(z)).clamp_max(-1e-20);
    log_p = torch::log(-torch::expm1(s));
  } else {
    throw std::invalid_argument("multi-instance loss: unknown kind '" + kind + "'");
  }
  return {(-log_p * labelled).sum(0), labelled.sum(0)};
}

LabeledCrop LabelFromPostTags(const TagSchema& schema, const std::vector<std::string>& post_tags,
                              bool single_character, bool binaries_known) {
  LabeledCrop c;
  c.target = schema.Encode(post_tags);
  c.known.assign(c.target.size(), 0.f);
  c.complete = single_character;
  size_t col = 0;
  for (const auto& g : schema.groups()) {
    for (size_t k = col; k < col + g.tags.size(); ++k) {
      if (g.exclusive) continue;
      // A multi-character post's tag may belong to any of its characters.
      c.known[k] = binaries_known && (single_character || c.target[k] == 0.f) ? 1.f : 0.f;
    }
    col += g.tags.size();
  }
  return c;
}

namespace {

// Column ranges of the schema's groups.
struct Range {
  int start, n;
  bool exclusive;
};

std::vector<Range> GroupRanges(const TagSchema& schema) {
  std::vector<Range> ranges;
  int col = 0;
  for (const auto& g : schema.groups()) {
    ranges.push_back({col, static_cast<int>(g.tags.size()), g.exclusive});
    col += static_cast<int>(g.tags.size());
  }
  return ranges;
}

// The training loss. An exclusive group: -log of the probability the face's candidates
// get together (cross-entropy when there is one; nothing learnt when the group names
// none or all). A binary tag: BCE over the faces where it is known, per tag, and with
// `mil` the multiple-instance term of the bags that say one of their faces has it.
torch::Tensor Loss(const std::vector<Range>& ranges, const torch::Tensor& logits, const torch::Tensor& y,
                   const torch::Tensor& known, double smoothing, const torch::Tensor& bag, const std::string& mil) {
  torch::Tensor loss = torch::zeros({});
  for (const auto& r : ranges) {
    auto lg = logits.narrow(1, r.start, r.n), yt = y.narrow(1, r.start, r.n);
    if (r.exclusive) {
      auto named = yt.sum(1);
      auto m = ((named >= 1) & (named < r.n)).to(torch::kFloat32);
      if (m.sum().item<float>() == 0) continue;
      auto allowed = lg.masked_fill(yt < 0.5, -1e4);
      auto nll = torch::logsumexp(lg, 1) - torch::logsumexp(allowed, 1);
      loss = loss + (nll * m).sum() / m.sum();
    } else {
      auto kn = known.narrow(1, r.start, r.n);
      auto target = smoothing > 0 ? yt * (1 - smoothing) + 0.5 * smoothing : yt;
      auto bce = torch::binary_cross_entropy_with_logits(lg, target, {}, {}, at::Reduction::None);
      auto sum = (bce * kn).sum(0), count = kn.sum(0);
      if (mil != "none" && bag.defined()) {
        // A face of a bag whose post has the tag, not known for itself.
        auto positive = yt * (1 - kn) * (bag >= 0).to(torch::kFloat32).unsqueeze(1);
        auto [bag_sum, bags] = MultiInstanceLoss(lg, bag, positive, mil);
        sum = sum + bag_sum, count = count + bags;
      }
      if (count.sum().item<float>() == 0) continue;
      // Each tag's mean over the faces (and bags) that know it, summed: one unit per
      // tag, as the groups get one each (the 0.5 keeps the old balance between the two).
      loss = loss + (sum / count.clamp_min(1)).sum() * 0.5;
    }
  }
  return loss;
}

}  // namespace

double ValidationScore(const TagSchema& schema, const std::vector<std::vector<float>>& scores,
                       const std::vector<std::vector<float>>& truth, bool binaries_known) {
  auto th = binaries_known ? CalibrateThresholds(schema, scores, truth)
                           : std::vector<float>(static_cast<size_t>(schema.size()), 0.5f);
  auto r = Evaluate(schema, scores, truth, th, binaries_known);
  double sum = 0;
  int n = 0;
  for (const auto& g : r.groups) sum += g.accuracy(), ++n;
  for (const auto& t : r.tags) sum += t.f1(), ++n;
  return n ? sum / n : 0.0;
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
  out.model->set_flip_average(o.flip_average);
  BuiltinTagger& model = *out.model;

  if (o.multi_instance != "none" && o.multi_instance != "noisy-or" && o.multi_instance != "max")
    return Status::InvalidArgument("multi-instance loss '" + o.multi_instance + "': none, noisy-or or max");
  std::vector<const cv::Mat*> tr_m, va_m;
  std::vector<float> tr_t, tr_known;
  // Each training crop's post (an index of its split_key), and whether the post is a bag
  // (a face not labelled for itself).
  std::map<std::string, int64_t> key_index;
  std::vector<int64_t> tr_key, tr_bag;
  std::vector<std::vector<float>> va_t;
  bool any_binary_known = false;
  const int T = schema.size();
  for (const auto& c : crops) {
    if (static_cast<int>(c.target.size()) != T || (!c.known.empty() && static_cast<int>(c.known.size()) != T))
      return Status::Internal("label vector does not match the schema");
    if (val_keys.count(c.split_key)) {
      // A partly labelled face cannot be scored; its post's side is validation, so it
      // is not trained on either.
      if (!c.complete) continue;
      va_m.push_back(&c.bgr);
      va_t.push_back(c.target);
    } else {
      tr_m.push_back(&c.bgr);
      int64_t k = key_index.emplace(c.split_key, static_cast<int64_t>(key_index.size())).first->second;
      tr_key.push_back(k);
      tr_bag.push_back(c.complete ? -1 : k);
      tr_t.insert(tr_t.end(), c.target.begin(), c.target.end());
      if (c.known.empty()) tr_known.insert(tr_known.end(), static_cast<size_t>(T), 1.f);
      else tr_known.insert(tr_known.end(), c.known.begin(), c.known.end());
    }
    for (size_t k = 0; k < c.known.size(); ++k)
      if (c.known[k] > 0 && !schema.groups()[static_cast<size_t>(schema.group_of()[k])].exclusive)
        any_binary_known = true;
    if (c.known.empty()) any_binary_known = true;
  }
  out.n_train = static_cast<int>(tr_m.size());
  out.n_val = static_cast<int>(va_m.size());
  if (tr_m.empty()) return Status::InvalidArgument("every labelled crop fell into the validation split");

  auto x_all = Stack(model, tr_m);
  auto y_all = torch::from_blob(tr_t.data(), {out.n_train, T}, torch::kFloat32).clone();
  auto known_all = torch::from_blob(tr_known.data(), {out.n_train, T}, torch::kFloat32).clone();
  const auto ranges = GroupRanges(schema);
  std::vector<cv::Mat> va_mats;
  for (auto* m : va_m) va_mats.push_back(*m);

  auto& net_mod = model.net();
  torch::optim::AdamW opt(net_mod->parameters(), torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  const bool bf16 = o.bf16 && torch_common::CpuHasBf16();
  out.bf16 = bf16;
  // Without a bag (no face of a multi-character post) there is nothing for the
  // multiple-instance loss to say, and the batches are drawn as without it: the same
  // model as "none", not one of another shuffle (which on a face folder of 5,141 faces
  // alone moved the held-out hair and eye accuracy by 1-1.6 points at 8 epochs).
  const bool mil = o.multi_instance != "none" &&
                   std::any_of(tr_bag.begin(), tr_bag.end(), [](int64_t b) { return b >= 0; });
  auto bag_all = torch::tensor(tr_bag, torch::kLong);
  // The batches of each epoch, as row indices. Without the multiple-instance loss, a
  // fresh permutation cut into runs of `batch` (drawn as each epoch starts). With it,
  // whole posts: their order shuffled, a batch closed before the post that would
  // overfill it, so each bag's faces are scored together.
  std::vector<std::vector<int64_t>> posts(key_index.size());
  for (int64_t i = 0; i < out.n_train; ++i) posts[static_cast<size_t>(tr_key[static_cast<size_t>(i)])].push_back(i);
  auto post_batches = [&]() {
    std::vector<torch::Tensor> batches;
    auto order = torch::randperm(static_cast<int64_t>(posts.size()), torch::TensorOptions().dtype(torch::kLong));
    std::vector<int64_t> cur;
    for (int64_t j = 0; j < order.size(0); ++j) {
      const auto& rows = posts[static_cast<size_t>(order[j].item<int64_t>())];
      if (!cur.empty() && static_cast<int64_t>(cur.size() + rows.size()) > o.batch)
        batches.push_back(torch::tensor(cur, torch::kLong)), cur.clear();
      cur.insert(cur.end(), rows.begin(), rows.end());
    }
    if (!cur.empty()) batches.push_back(torch::tensor(cur, torch::kLong));
    return batches;
  };
  std::vector<std::vector<torch::Tensor>> epoch_batches;
  int64_t steps_per_epoch = (out.n_train + o.batch - 1) / o.batch;
  int64_t total_steps = steps_per_epoch * o.epochs, step = 0;
  if (mil) {
    total_steps = 0;
    for (int e = 0; e < o.epochs; ++e) epoch_batches.push_back(post_batches()), total_steps += epoch_batches.back().size();
  }
  std::unique_ptr<Progress> progress;
  if (!o.quiet) progress = std::make_unique<Progress>("tag-train", total_steps);

  // The best epoch's weights and BatchNorm statistics, kept aside.
  double best_score = -1;
  std::vector<torch::Tensor> best_state;
  auto state = [&]() {
    std::vector<torch::Tensor> v;
    for (auto& p : net_mod->parameters()) v.push_back(p);
    for (auto& b : net_mod->buffers()) v.push_back(b);
    return v;
  };
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    net_mod->train();
    torch::Tensor perm;
    if (!mil) perm = torch::randperm(out.n_train, torch::TensorOptions().dtype(torch::kLong));
    const int64_t n_batches = mil ? static_cast<int64_t>(epoch_batches[static_cast<size_t>(epoch)].size()) : steps_per_epoch;
    double loss_sum = 0;
    for (int64_t b = 0; b < n_batches; ++b, ++step) {
      auto idx = mil ? epoch_batches[static_cast<size_t>(epoch)][static_cast<size_t>(b)]
                     : perm.narrow(0, b * o.batch, std::min<int64_t>(o.batch, out.n_train - b * o.batch));
      if (idx.size(0) < 2) continue;  // BatchNorm needs two
      auto xb = x_all.index_select(0, idx);
      auto x = o.augment ? Augment(xb, rng) : ToFloat(xb);
      auto y = y_all.index_select(0, idx);
      auto known = known_all.index_select(0, idx);
      // Warm-up for one epoch, then cosine decay.
      double warm = std::min(1.0, (step + 1.0) / std::max<int64_t>(1, n_batches));
      double lr = o.lr * warm * 0.5 * (1 + std::cos(M_PI * step / std::max<int64_t>(1, total_steps)));
      for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
      torch::Tensor logits;
      {
        torch_common::CpuAutocast ac(bf16);
        logits = net_mod->forward(x);
      }
      logits = logits.to(torch::kFloat32);
      auto loss = Loss(ranges, logits, y, known, o.label_smoothing, mil ? bag_all.index_select(0, idx) : torch::Tensor(),
                       o.multi_instance);
      opt.zero_grad();
      loss.backward();
      opt.step();
      loss_sum += loss.item<double>();
      char extra[64];
      std::snprintf(extra, sizeof extra, "epoch %d loss %.3f", epoch + 1, loss_sum / (b + 1));
      if (progress) progress->Advance(1, extra);
    }
    out.epochs_run = epoch + 1;
    if (va_mats.empty()) continue;
    // Early stopping: score this epoch on validation; keep the best weights (the first
    // of equals: fewer epochs fit less to the training faces).
    double score = ValidationScore(schema, ScoreCrops(model, va_mats), va_t, any_binary_known);
    out.val_curve.push_back(score);
    if (score > best_score) {
      best_score = score;
      out.best_epoch = epoch + 1;
      torch::NoGradGuard ng;
      best_state.clear();
      for (auto& t : state()) best_state.push_back(t.detach().clone());
    } else if (o.patience > 0 && epoch + 1 - out.best_epoch >= o.patience) {
      break;
    }
  }
  if (progress) progress->Finish();
  if (!best_state.empty()) {
    torch::NoGradGuard ng;
    auto cur = state();
    for (size_t i = 0; i < cur.size(); ++i) cur[i].copy_(best_state[i]);
  }
  net_mod->eval();

  if (!va_mats.empty()) {
    auto scores = ScoreCrops(model, va_mats);
    auto th = any_binary_known ? CalibrateThresholds(schema, scores, va_t)
                               : std::vector<float>(static_cast<size_t>(T), 0.5f);
    model.set_thresholds(th);
    out.val = Evaluate(schema, scores, va_t, th, any_binary_known);
  }
  return out;
}

}  // namespace moeforge::tagger
