// WD14 (ONNX) and Illustration2Vec (Caffe) taggers through OpenCV dnn.
#include "tagger/external/external.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/dnn.hpp>
#include <opencv2/imgproc.hpp>

#include "core/hash.h"
#include "core/models.h"
#include "core/workspace.h"
#include "tagger/backend.h"

namespace fs = std::filesystem;

namespace moeforge::tagger {

const double kI2vMeanBgr[3] = {164.76139251, 167.47864617, 181.13838569};

namespace {

cv::Mat AsBgr(const cv::Mat& in) {
  cv::Mat out;
  if (in.channels() == 1) cv::cvtColor(in, out, cv::COLOR_GRAY2BGR);
  else if (in.channels() == 4) cv::cvtColor(in, out, cv::COLOR_BGRA2BGR);
  else out = in;
  return out;
}

cv::Mat ResizeTo(const cv::Mat& m, int size, int grow_interp) {
  if (m.cols == size && m.rows == size) return m.clone();
  cv::Mat out;
  bool shrink = m.cols > size || m.rows > size;
  cv::resize(m, out, cv::Size(size, size), 0, 0, shrink ? cv::INTER_AREA : grow_interp);
  return out;
}

// The useful part of a cv::Exception from the dnn importers: the layer type it could not
// create when that is the reason, else the first error message.
std::string FirstLine(const std::string& s) {
  auto t = s.find("of type \"");
  if (t != std::string::npos) {
    auto e = s.find('"', t + 9);
    return "unsupported layer type '" + s.substr(t + 9, e - t - 9) + "'";
  }
  std::string msg = s;
  // "OpenCV(4.6.0) file:line: error: (-2:...) message in function 'f'"
  auto p = msg.rfind("error: ");
  if (p != std::string::npos) msg = msg.substr(p + 7);
  auto nl = msg.find('\n');
  if (nl != std::string::npos) msg = msg.substr(0, nl);
  return msg.substr(0, 300);
}

// A model folder as given, else a file resolved on the model search path.
Result<std::string> ResolveModelOrDir(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return path;
  return ResolveModel(path);
}

// A folder's only file with this extension, or the path itself.
Result<std::string> FindFile(const std::string& path, const std::string& ext, const std::string& what) {
  if (!fs::is_directory(path)) return path;
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(path))
    if (e.path().extension() == ext) found.push_back(e.path().string());
  std::sort(found.begin(), found.end());
  if (found.empty()) return Status::NotFound(what + ": no *" + ext + " file in " + path);
  return found.front();
}

// Scores from an external vocabulary, remapped onto schema columns.
std::vector<std::vector<float>> Remap(const cv::Mat& out2d, const std::vector<int>& cols) {
  std::vector<std::vector<float>> rows;
  for (int r = 0; r < out2d.rows; ++r) {
    const float* p = out2d.ptr<float>(r);
    std::vector<float> row(cols.size(), kNoScore);
    for (size_t c = 0; c < cols.size(); ++c)
      if (cols[c] >= 0) row[c] = p[cols[c]];
    rows.push_back(std::move(row));
  }
  return rows;
}

Status CheckMapped(const std::string& name, const std::vector<int>& cols) {
  for (int c : cols)
    if (c >= 0) return Status::Ok();
  return Status::InvalidArgument(name + ": none of the schema's tags is in the tagger's vocabulary");
}

class DnnTagger : public TaggerBackend {
 public:
  std::string name() const override { return name_; }
  std::string model_sha256() const override { return sha_; }
  nlohmann::json params() const override { return params_; }
  const TagSchema& schema() const override { return schema_; }
  std::vector<float> thresholds() const override { return thresholds_; }
  int preferred_batch() const override { return 16; }

 protected:
  // Runs a 4-D blob through the net; returns N x K scores.
  Result<cv::Mat> Forward(const cv::Mat& blob, int n) {
    cv::Mat out;
    try {
      net_.setInput(blob);
      out = net_.forward();
    } catch (const cv::Exception& e) {
      return Status::Unsupported(name_ + ": OpenCV dnn cannot run the model: " + FirstLine(e.what()));
    }
    out = out.reshape(1, n);  // N x K (x 1 x 1)
    if (out.cols != static_cast<int>(vocab_.size()))
      return Status::Corrupt(name_ + ": the model outputs " + std::to_string(out.cols) + " scores but its tag list has " +
                             std::to_string(vocab_.size()) + " tags");
    return out;
  }
  std::string name_, sha_;
  nlohmann::json params_;
  TagSchema schema_;
  std::vector<float> thresholds_;
  std::vector<std::string> vocab_;
  std::vector<int> cols_;
  cv::dnn::Net net_;
};

class Wd14Tagger : public DnnTagger {
 public:
  static Result<std::unique_ptr<TaggerBackend>> Open(const std::string& path, const TagSchema& schema) {
    MF_ASSIGN_OR_RETURN(std::string resolved, ResolveModelOrDir(path));
    MF_ASSIGN_OR_RETURN(std::string onnx, FindFile(resolved, ".onnx", "wd14"));
    std::string csv = (fs::path(onnx).parent_path() / "selected_tags.csv").string();
    if (!fs::exists(csv)) return Status::NotFound("wd14: no selected_tags.csv beside " + onnx);
    auto t = std::make_unique<Wd14Tagger>();
    MF_ASSIGN_OR_RETURN(t->vocab_, ReadSelectedTags(csv));
    try {
      t->net_ = cv::dnn::readNetFromONNX(onnx);
    } catch (const cv::Exception& e) {
      return Status::Unsupported("wd14: OpenCV " CV_VERSION " cannot import " + onnx + ": " + FirstLine(e.what()));
    }
    if (t->net_.empty()) return Status::Unsupported("wd14: OpenCV " CV_VERSION " read an empty network from " + onnx);
    MF_ASSIGN_OR_RETURN(std::string sha_model, Sha256File(onnx));
    MF_ASSIGN_OR_RETURN(std::string sha_csv, Sha256File(csv));
    t->sha_ = Sha256Hex(sha_model + sha_csv);
    t->schema_ = schema;
    t->name_ = "wd14:" + fs::path(onnx).parent_path().filename().string();
    t->cols_ = MapVocabulary(schema, t->vocab_);
    MF_RETURN_IF_ERROR(CheckMapped(t->name_, t->cols_));
    t->thresholds_.assign(static_cast<size_t>(schema.size()), 0.35f);  // WD14's usual general threshold
    t->params_ = {{"input_size", t->size_}, {"thresholds", t->thresholds_}};
    return std::unique_ptr<TaggerBackend>(std::move(t));
  }

  Result<std::vector<std::vector<float>>> Score(const std::vector<cv::Mat>& bgr) override {
    int n = static_cast<int>(bgr.size());
    if (n == 0) return std::vector<std::vector<float>>{};
    // NHWC, as the Keras-exported WD14 graphs take it.
    int dims[4] = {n, size_, size_, 3};
    cv::Mat blob(4, dims, CV_32F);
    size_t per = static_cast<size_t>(size_) * size_ * 3;
    for (int i = 0; i < n; ++i) {
      cv::Mat m = Wd14Preprocess(bgr[static_cast<size_t>(i)], size_);
      std::memcpy(blob.ptr<float>() + per * i, m.ptr<float>(), per * sizeof(float));
    }
    MF_ASSIGN_OR_RETURN(cv::Mat out, Forward(blob, n));
    return Remap(out, cols_);
  }

 private:
  int size_ = 448;
};

class I2vTagger : public DnnTagger {
 public:
  static Result<std::unique_ptr<TaggerBackend>> Open(const std::string& path, const TagSchema& schema) {
    MF_ASSIGN_OR_RETURN(std::string resolved, ResolveModelOrDir(path));
    MF_ASSIGN_OR_RETURN(std::string proto, FindFile(resolved, ".prototxt", "i2v"));
    MF_ASSIGN_OR_RETURN(std::string weights, FindFile(resolved, ".caffemodel", "i2v"));
    std::string dir = fs::path(proto).parent_path().string();
    std::string tags_path = dir + "/tag_list.json";
    auto t = std::make_unique<I2vTagger>();
    auto text = ReadFile(tags_path);
    if (!text.ok()) return Status::NotFound("i2v: no tag_list.json beside " + proto);
    try {
      t->vocab_ = nlohmann::json::parse(*text).get<std::vector<std::string>>();
    } catch (const std::exception& e) {
      return Status::Corrupt("i2v: " + tags_path + " is not a JSON list of tag names");
    }
    try {
      t->net_ = cv::dnn::readNetFromCaffe(proto, weights);
    } catch (const cv::Exception& e) {
      return Status::Unsupported("i2v: OpenCV " CV_VERSION " cannot import " + proto + ": " + FirstLine(e.what()));
    }
    if (t->net_.empty()) return Status::Unsupported("i2v: OpenCV " CV_VERSION " read an empty network from " + proto);
    MF_ASSIGN_OR_RETURN(std::string s1, Sha256File(proto));
    MF_ASSIGN_OR_RETURN(std::string s2, Sha256File(weights));
    t->sha_ = Sha256Hex(s1 + s2 + Sha256Hex(*text));
    t->schema_ = schema;
    t->name_ = "i2v:" + fs::path(weights).stem().string();
    t->cols_ = MapVocabulary(schema, t->vocab_);
    MF_RETURN_IF_ERROR(CheckMapped(t->name_, t->cols_));
    t->thresholds_.assign(static_cast<size_t>(schema.size()), 0.5f);
    t->params_ = {{"input_size", 224}, {"thresholds", t->thresholds_}};
    return std::unique_ptr<TaggerBackend>(std::move(t));
  }

  Result<std::vector<std::vector<float>>> Score(const std::vector<cv::Mat>& bgr) override {
    int n = static_cast<int>(bgr.size());
    if (n == 0) return std::vector<std::vector<float>>{};
    std::vector<cv::Mat> pre;
    for (const auto& m : bgr) pre.push_back(I2vPreprocess(m, 224));
    cv::Mat blob = cv::dnn::blobFromImages(pre, 1.0, cv::Size(), cv::Scalar(), false, false, CV_32F);  // NCHW
    MF_ASSIGN_OR_RETURN(cv::Mat out, Forward(blob, n));
    return Remap(out, cols_);
  }
};

}  // namespace

cv::Mat Wd14Preprocess(const cv::Mat& in, int size) {
  cv::Mat bgr = AsBgr(in);
  int side = std::max(bgr.cols, bgr.rows);
  cv::Mat square(side, side, CV_8UC3, cv::Scalar(255, 255, 255));
  int x = (side - bgr.cols) / 2, y = (side - bgr.rows) / 2;
  bgr.copyTo(square(cv::Rect(x, y, bgr.cols, bgr.rows)));
  cv::Mat out;
  ResizeTo(square, size, cv::INTER_CUBIC).convertTo(out, CV_32FC3);
  return out;
}

cv::Mat I2vPreprocess(const cv::Mat& in, int size) {
  cv::Mat out;
  ResizeTo(AsBgr(in), size, cv::INTER_LINEAR).convertTo(out, CV_32FC3);
  out -= cv::Scalar(kI2vMeanBgr[0], kI2vMeanBgr[1], kI2vMeanBgr[2]);
  return out;
}

Result<std::vector<std::string>> ReadSelectedTags(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("tag table " + path + " cannot be read");
  std::string line;
  std::vector<std::string> names;
  std::getline(in, line);
  if (line.rfind("tag_id,name", 0) != 0)
    return Status::Corrupt(path + ": expected the header 'tag_id,name,category,count'");
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto a = line.find(',');
    if (a == std::string::npos) continue;
    auto b = line.find(',', a + 1);
    std::string name = line.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
    if (name.empty() && line.find_first_not_of(',') == std::string::npos) continue;  // the ",,," row
    names.push_back(name);
  }
  if (names.empty()) return Status::Corrupt(path + ": no tags");
  return names;
}

std::vector<int> MapVocabulary(const TagSchema& schema, const std::vector<std::string>& vocab) {
  std::vector<int> cols(static_cast<size_t>(schema.size()), -1);
  // Exact schema names first, then aliases.
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t j = 0; j < vocab.size(); ++j) {
      std::string v = vocab[j];
      std::replace(v.begin(), v.end(), ' ', '_');
      int c = schema.IndexOf(v);
      if (c < 0 || cols[static_cast<size_t>(c)] >= 0) continue;
      bool exact = schema.tags()[static_cast<size_t>(c)] == v;
      if (exact == (pass == 0)) cols[static_cast<size_t>(c)] = static_cast<int>(j);
    }
  }
  return cols;
}

Result<std::unique_ptr<TaggerBackend>> OpenWd14Tagger(const std::string& path, const TagSchema& schema) {
  return Wd14Tagger::Open(path, schema);
}
Result<std::unique_ptr<TaggerBackend>> OpenI2vTagger(const std::string& path, const TagSchema& schema) {
  return I2vTagger::Open(path, schema);
}

Result<std::unique_ptr<TaggerBackend>> OpenTagger(const std::string& spec, const std::string& schema_name) {
  auto colon = spec.find(':');
  if (colon == std::string::npos || colon + 1 == spec.size())
    return Status::InvalidArgument("tagger '" + spec + "': expected builtin:MODEL, wd14:PATH or i2v:PATH");
  std::string kind = spec.substr(0, colon), path = spec.substr(colon + 1);
  if (kind == "builtin") return OpenBuiltinTagger(path);
  MF_ASSIGN_OR_RETURN(TagSchema schema, TagSchema::Load(schema_name));
  if (kind == "wd14") return OpenWd14Tagger(path, schema);
  if (kind == "i2v") return OpenI2vTagger(path, schema);
  return Status::InvalidArgument("tagger kind '" + kind + "': expected builtin, wd14 or i2v");
}

}  // namespace moeforge::tagger
