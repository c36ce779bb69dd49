// The built-in LibTorch tagger behind the TaggerBackend interface.
#include <algorithm>
#include <filesystem>
#include <thread>

#include "core/models.h"
#include "tagger/backend.h"
#include "tagger/builtin/builtin_tagger.h"

namespace moeforge::tagger {

namespace {

class BuiltinBackend : public TaggerBackend {
 public:
  BuiltinBackend(std::shared_ptr<BuiltinTagger> m, std::string name) : m_(std::move(m)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  std::string model_sha256() const override { return m_->sha256(); }
  nlohmann::json params() const override {
    return {{"input_size", m_->input_size()}, {"thresholds", m_->thresholds()}};
  }
  const TagSchema& schema() const override { return m_->schema(); }
  std::vector<float> thresholds() const override { return m_->thresholds(); }
  Result<std::vector<std::vector<float>>> Score(const std::vector<cv::Mat>& bgr) override {
    std::vector<std::vector<float>> out;
    if (bgr.empty()) return out;
    try {
      auto p = m_->Probabilities(m_->ToInput(bgr)).contiguous();
      const float* d = p.data_ptr<float>();
      for (int64_t r = 0; r < p.size(0); ++r) out.emplace_back(d + r * p.size(1), d + (r + 1) * p.size(1));
    } catch (const std::exception& e) {
      return Status::Internal(std::string("builtin tagger: ") + e.what());
    }
    return out;
  }

 private:
  std::shared_ptr<BuiltinTagger> m_;
  std::string name_;
};

}  // namespace

Result<std::unique_ptr<TaggerBackend>> OpenBuiltinTagger(const std::string& path) {
  MF_ASSIGN_OR_RETURN(std::string resolved, ResolveModel(path));
  MF_ASSIGN_OR_RETURN(auto model, BuiltinTagger::Load(resolved));
  std::string stem = std::filesystem::path(resolved).stem().string();
  return std::unique_ptr<TaggerBackend>(new BuiltinBackend(model, "builtin:" + stem));
}

}  // namespace moeforge::tagger

namespace moeforge::tagger {
void SetTorchThreads(int threads) {
  int n = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  torch::set_num_threads(std::max(1, n));
}
}  // namespace moeforge::tagger
