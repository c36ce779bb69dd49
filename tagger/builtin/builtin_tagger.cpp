#include "tagger/builtin/builtin_tagger.h"

#include <algorithm>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "core/hash.h"
#include "core/workspace.h"

namespace moeforge::tagger {

namespace {
constexpr const char* kFormat = "moeforge-builtin-tagger/1";

void AddConvBlock(torch::nn::Sequential& seq, int in, int out) {
  auto conv = [](int i, int o) {
    return torch::nn::Conv2d(torch::nn::Conv2dOptions(i, o, 3).padding(1).bias(false));
  };
  seq->push_back(conv(in, out));
  seq->push_back(torch::nn::BatchNorm2d(out));
  seq->push_back(torch::nn::ReLU(true));
  seq->push_back(conv(out, out));
  seq->push_back(torch::nn::BatchNorm2d(out));
  seq->push_back(torch::nn::ReLU(true));
  seq->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)));
}
}  // namespace

TaggerNetImpl::TaggerNetImpl(const TaggerNetOptions& o) : opts(o) {
  body = torch::nn::Sequential();
  int in = 3, w = o.width;
  for (int b = 0; b < o.blocks; ++b) {
    AddConvBlock(body, in, w);
    in = w;
    if (b + 1 < o.blocks) w = std::min(w * 2, o.width * 8);
  }
  register_module("body", body);
  drop = register_module("drop", torch::nn::Dropout(0.2));
  head = register_module("head", torch::nn::Linear(o.pool == "avgmax" ? 2 * in : in, o.num_tags));
}

torch::Tensor TaggerNetImpl::features(const torch::Tensor& x) {
  auto h = body->forward(x);
  if (opts.pool == "avgmax") return torch::cat({h.mean({2, 3}), h.amax({2, 3})}, 1);
  return h.mean({2, 3});
}

torch::Tensor TaggerNetImpl::forward(const torch::Tensor& x) { return head->forward(drop->forward(features(x))); }

torch::Tensor GroupProbabilities(const TagSchema& schema, const torch::Tensor& logits) {
  auto probs = torch::sigmoid(logits);
  int col = 0;
  for (const auto& g : schema.groups()) {
    int n = static_cast<int>(g.tags.size());
    if (g.exclusive) probs.narrow(1, col, n).copy_(torch::softmax(logits.narrow(1, col, n), 1));
    col += n;
  }
  return probs;
}

BuiltinTagger::BuiltinTagger(TagSchema schema, TaggerNetOptions net_opts, int input_size)
    : schema_(std::move(schema)), net_opts_(net_opts), input_size_(input_size) {
  net_opts_.num_tags = schema_.size();
  thresholds_.assign(static_cast<size_t>(schema_.size()), 0.5f);
  net_ = TaggerNet(net_opts_);
}

Status BuiltinTagger::Save(const std::string& path) {
  nlohmann::json meta = {{"format", kFormat},
                         {"schema_toml", schema_.ToToml()},
                         {"thresholds", thresholds_},
                         {"input_size", input_size_},
                         {"width", net_opts_.width},
                         {"blocks", net_opts_.blocks},
                         {"pool", net_opts_.pool},
                         {"flip_average", flip_average_},
                         {"tags", schema_.tags()}};
  std::ostringstream bytes;
  try {
    torch::serialize::OutputArchive archive, weights;
    net_->save(weights);
    archive.write("net", weights);
    archive.write("meta", c10::IValue(meta.dump()));
    archive.save_to(bytes);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("serializing tagger: ") + e.what());
  }
  std::string data = bytes.str();
  MF_RETURN_IF_ERROR(WriteFileAtomic(path, data.data(), data.size()));
  sha256_ = Sha256Hex(data);
  return Status::Ok();
}

Result<std::shared_ptr<BuiltinTagger>> BuiltinTagger::Load(const std::string& path) {
  auto data = ReadFile(path);
  if (!data.ok()) return Status::NotFound("tagger model '" + path + "': " + data.status().message());
  nlohmann::json meta;
  torch::serialize::InputArchive archive, weights;
  try {
    std::istringstream in(*data);
    archive.load_from(in);
    c10::IValue v;
    if (!archive.try_read("meta", v) || !v.isString())
      return Status::Corrupt("'" + path + "' is not a moeforge tagger model (no metadata)");
    meta = nlohmann::json::parse(v.toStringRef());
  } catch (const std::exception& e) {
    return Status::Corrupt("'" + path + "' is not a moeforge tagger model: " + std::string(e.what()).substr(0, 200));
  }
  if (meta.value("format", "") != kFormat)
    return Status::Corrupt("'" + path + "': unknown tagger format '" + meta.value("format", "") + "'");
  auto schema = TagSchema::FromToml(meta.at("schema_toml").get<std::string>());
  if (!schema.ok()) return schema.status().WithContext(path);
  TaggerNetOptions o;
  o.width = meta.value("width", 32);
  o.blocks = meta.value("blocks", 4);
  o.pool = meta.value("pool", std::string("avg"));
  if (o.pool != "avg" && o.pool != "avgmax") return Status::Corrupt("'" + path + "': unknown pool '" + o.pool + "'");
  auto t = std::make_shared<BuiltinTagger>(*schema, o, meta.value("input_size", 64));
  auto thresholds = meta.at("thresholds").get<std::vector<float>>();
  if (static_cast<int>(thresholds.size()) != schema->size())
    return Status::Corrupt("'" + path + "': thresholds do not match the schema");
  t->thresholds_ = thresholds;
  t->flip_average_ = meta.value("flip_average", false);
  try {
    if (!archive.try_read("net", weights)) return Status::Corrupt("'" + path + "': no weights");
    t->net_->load(weights);
  } catch (const std::exception& e) {
    return Status::Corrupt("'" + path + "': weights do not fit the network: " + std::string(e.what()).substr(0, 200));
  }
  t->net_->eval();
  t->sha256_ = Sha256Hex(*data);
  return t;
}

torch::Tensor BuiltinTagger::Resize(const torch::Tensor& x) const {
  if (x.size(2) == input_size_ && x.size(3) == input_size_) return x;
  return torch::nn::functional::interpolate(
      x, torch::nn::functional::InterpolateFuncOptions()
             .size(std::vector<int64_t>{input_size_, input_size_})
             .mode(torch::kBilinear)
             .align_corners(false));
}

torch::Tensor BuiltinTagger::Logits(const torch::Tensor& x) {
  torch::NoGradGuard ng;
  net_->eval();
  auto in = Resize(x);
  if (!flip_average_) return net_->forward(in);
  return (net_->forward(in) + net_->forward(in.flip({3}))) * 0.5;
}

torch::Tensor BuiltinTagger::Features(const torch::Tensor& x) {
  torch::NoGradGuard ng;
  net_->eval();
  return net_->features(Resize(x));
}

torch::Tensor BuiltinTagger::Probabilities(const torch::Tensor& x) { return GroupProbabilities(schema_, Logits(x)); }

torch::Tensor BuiltinTagger::ToInput(const std::vector<cv::Mat>& bgr) const {
  auto out = torch::empty({static_cast<int64_t>(bgr.size()), 3, input_size_, input_size_});
  for (size_t i = 0; i < bgr.size(); ++i) {
    cv::Mat m;
    if (bgr[i].cols != input_size_ || bgr[i].rows != input_size_)
      cv::resize(bgr[i], m, cv::Size(input_size_, input_size_), 0, 0,
                 bgr[i].cols > input_size_ ? cv::INTER_AREA : cv::INTER_LINEAR);
    else
      m = bgr[i];
    cv::Mat rgb;
    cv::cvtColor(m, rgb, cv::COLOR_BGR2RGB);
    rgb.convertTo(rgb, CV_32FC3, 2.0 / 255.0, -1.0);
    auto hwc = torch::from_blob(rgb.data, {input_size_, input_size_, 3}, torch::kFloat32);
    out[static_cast<int64_t>(i)].copy_(hwc.permute({2, 0, 1}));
  }
  return out;
}

}  // namespace moeforge::tagger
