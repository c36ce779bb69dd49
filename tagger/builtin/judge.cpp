// LoadJudge (tagger/tagger.h): the built-in tagger behind the torch-free FaceJudge.
#include <algorithm>
#include <memory>

#include "tagger/builtin/builtin_tagger.h"
#include "tagger/tagger.h"

namespace moeforge::tagger {

namespace {

class BuiltinJudge : public FaceJudge {
 public:
  explicit BuiltinJudge(std::shared_ptr<BuiltinTagger> t) : t_(std::move(t)) {}
  const TagSchema& schema() const override { return t_->schema(); }
  const std::vector<float>& thresholds() const override { return t_->thresholds(); }
  const std::string& sha256() const override { return t_->sha256(); }
  void Score(const float* images, int64_t n, int size, std::vector<float>* probs,
             std::vector<float>* features) override {
    if (probs) probs->clear();
    if (features) features->clear();
    const int64_t per = int64_t(3) * size * size;
    for (int64_t i = 0; i < n; i += kBatch) {
      const int64_t m = std::min(kBatch, n - i);
      // from_blob does not copy; the tagger only reads its input.
      auto x = torch::from_blob(const_cast<float*>(images + i * per), {m, 3, size, size}, torch::kFloat32);
      if (probs) Append(t_->Probabilities(x), probs);
      if (features) Append(t_->Features(x), features);
    }
  }

 private:
  static constexpr int64_t kBatch = 128;
  static void Append(const torch::Tensor& t, std::vector<float>* out) {
    auto c = t.to(torch::kFloat32).contiguous();
    out->insert(out->end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  std::shared_ptr<BuiltinTagger> t_;
};

}  // namespace

Result<std::unique_ptr<FaceJudge>> LoadJudge(const std::string& model_path) {
  MF_ASSIGN_OR_RETURN(auto t, BuiltinTagger::Load(model_path));
  return std::unique_ptr<FaceJudge>(std::make_unique<BuiltinJudge>(std::move(t)));
}

}  // namespace moeforge::tagger
