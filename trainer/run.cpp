#include "trainer/run.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "trainer/snapshot_metrics.h"

namespace moeforge::trainer {

nlohmann::json RunConfig::ToJson() const {
  return {{"gan",
           {{"resolution", gan.resolution}, {"tags", gan.tags}, {"z_dim", gan.z_dim},
            {"g_channels", gan.g_channels}, {"g_blocks", gan.g_blocks}, {"d_channels", gan.d_channels},
            {"d_blocks", gan.d_blocks}, {"upsample", gan.upsample}, {"d_down", gan.d_down}, {"d_mbstd", gan.d_mbstd},
            {"template", gan.output_template}}},
          {"schema_toml", schema.ToToml()},
          {"tag_freq", tag_freq},
          {"options", options}};
}

Result<RunConfig> RunConfig::FromJson(const nlohmann::json& j) {
  RunConfig c;
  try {
    const auto& g = j.at("gan");
    c.gan.resolution = g.at("resolution");
    c.gan.tags = g.at("tags");
    c.gan.z_dim = g.at("z_dim");
    c.gan.g_channels = g.at("g_channels");
    c.gan.g_blocks = g.at("g_blocks");
    c.gan.d_channels = g.at("d_channels");
    c.gan.d_blocks = g.at("d_blocks");
    c.gan.upsample = g.value("upsample", std::string("shuffle"));  // runs before the option had it
    c.gan.d_down = g.value("d_down", std::string("conv"));
    c.gan.d_mbstd = g.value("d_mbstd", 0);
    c.gan.output_template = g.value("template", std::string("none"));
    c.tag_freq = j.at("tag_freq").get<std::vector<double>>();
    c.options = j.value("options", nlohmann::json::object());
    MF_ASSIGN_OR_RETURN(c.schema, TagSchema::FromToml(j.at("schema_toml").get<std::string>()));
  } catch (const nlohmann::json::exception& e) {
    return Status::Corrupt(std::string("run config: ") + e.what());
  }
  if (c.schema.size() != c.gan.tags || c.tag_freq.size() != static_cast<size_t>(c.gan.tags))
    return Status::Corrupt("run config: the tag schema, tag count and frequencies disagree");
  return c;
}

std::string RunDir(const Workspace& ws, const std::string& run) { return ws.runs_dir() + "/" + run; }
std::string CheckpointPath(const Workspace& ws, const std::string& run) { return RunDir(ws, run) + "/checkpoint.pt"; }

Status SaveRunConfig(const Workspace& ws, const std::string& run, const RunConfig& c) {
  std::string text = c.ToJson().dump(2) + "\n";
  return WriteFileAtomic(RunDir(ws, run) + "/config.json", text.data(), text.size());
}

Result<RunConfig> LoadRunConfig(const Workspace& ws, const std::string& run) {
  std::string path = RunDir(ws, run) + "/config.json";
  if (!std::filesystem::exists(path))
    return Status::NotFound("run '" + run + "' has no " + path + " (train it first: moeforge train --run " + run + ")");
  MF_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return Status::Corrupt(path + " is not JSON");
  auto c = RunConfig::FromJson(j);
  if (!c.ok()) return c.status().WithContext(path);
  return c;
}

namespace {

void WriteModule(torch::serialize::OutputArchive& a, const char* key, const torch::nn::Module& m) {
  torch::serialize::OutputArchive sub;
  m.save(sub);
  a.write(key, sub);
}

}  // namespace

Status SaveCheckpoint(const std::string& path, Generator& g, Generator* g_ema, Discriminator& d,
                      torch::optim::Adam& opt_g, torch::optim::Adam& opt_d, const TrainState& st) {
  std::ostringstream bytes;
  try {
    torch::serialize::OutputArchive a, oga, oda;
    WriteModule(a, "G", *g);
    if (g_ema != nullptr) WriteModule(a, "G_ema", **g_ema);
    WriteModule(a, "D", *d);
    opt_g.save(oga);
    opt_d.save(oda);
    a.write("opt_G", oga);
    a.write("opt_D", oda);
    a.write("step", c10::IValue(st.step));
    a.write("epoch", c10::IValue(st.epoch));
    a.write("position", c10::IValue(st.position));
    a.write("data_rng", c10::IValue(st.data_rng));
    a.write("torch_rng", st.torch_rng);
    a.write("order", torch::tensor(st.order, torch::kInt64));
    a.save_to(bytes);
  } catch (const c10::Error& e) {
    return Status::Internal(std::string("serialising the checkpoint: ") + e.what_without_backtrace());
  }
  std::string data = bytes.str();
  return WriteFileAtomic(path, data.data(), data.size());
}

Status LoadCheckpoint(const std::string& path, Generator& g, Generator* g_ema, Discriminator& d,
                      torch::optim::Adam* opt_g, torch::optim::Adam* opt_d, TrainState* st, torch::Device device) {
  if (!std::filesystem::exists(path)) return Status::NotFound("no checkpoint " + path);
  try {
    torch::serialize::InputArchive a, ga, da;
    a.load_from(path, device);
    a.read("G", ga);
    a.read("D", da);
    g->load(ga);
    d->load(da);
    if (g_ema != nullptr) {
      torch::serialize::InputArchive ea;
      if (a.try_read("G_ema", ea)) {
        (*g_ema)->load(ea);
      } else {
        EmaUpdate(**g_ema, *g, 0.0);  // a checkpoint from before the moving average: G itself
      }
    }
    if (opt_g != nullptr) {
      torch::serialize::InputArchive oa;
      a.read("opt_G", oa);
      opt_g->load(oa);
    }
    if (opt_d != nullptr) {
      torch::serialize::InputArchive oa;
      a.read("opt_D", oa);
      opt_d->load(oa);
    }
    if (st != nullptr) {
      c10::IValue v;
      a.read("step", v);
      st->step = v.toInt();
      a.read("epoch", v);
      st->epoch = v.toInt();
      a.read("position", v);
      st->position = v.toInt();
      a.read("data_rng", v);
      st->data_rng = v.toStringRef();
      a.read("torch_rng", st->torch_rng);
      st->torch_rng = st->torch_rng.cpu();
      torch::Tensor order;
      a.read("order", order);
      order = order.cpu().contiguous();
      st->order.assign(order.data_ptr<int64_t>(), order.data_ptr<int64_t>() + order.numel());
    }
  } catch (const c10::Error& e) {
    return Status::Corrupt("checkpoint " + path + ": " + e.what_without_backtrace());
  }
  return Status::Ok();
}

std::string SamplePath(const Workspace& ws, const std::string& run, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "/samples/step_%06lld.png", static_cast<long long>(step));
  return RunDir(ws, run) + name;
}

std::string SnapshotPath(const Workspace& ws, const std::string& run, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "/snapshots/g_%08lld.pt", static_cast<long long>(step));
  return RunDir(ws, run) + name;
}

Status SaveSnapshot(const std::string& path, Generator& g) {
  std::ostringstream bytes;
  try {
    torch::serialize::OutputArchive a;
    WriteModule(a, "G", *g);
    a.save_to(bytes);
  } catch (const c10::Error& e) {
    return Status::Internal(std::string("serialising a snapshot: ") + e.what_without_backtrace());
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return Status::IoError("creating " + std::filesystem::path(path).parent_path().string() + ": " + ec.message());
  std::string data = bytes.str();
  return WriteFileAtomic(path, data.data(), data.size());
}

std::vector<int64_t> ListSnapshots(const Workspace& ws, const std::string& run) {
  std::vector<int64_t> steps;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(RunDir(ws, run) + "/snapshots", ec)) {
    // g_<digits>.pt exactly; the temporary file of an interrupted write does not count.
    const std::string name = e.path().filename().string();
    if (name.size() <= 5 || name.compare(0, 2, "g_") != 0 || name.compare(name.size() - 3, 3, ".pt") != 0) continue;
    const std::string digits = name.substr(2, name.size() - 5);
    if (digits.find_first_not_of("0123456789") == std::string::npos) steps.push_back(std::stoll(digits));
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

Status PruneSnapshots(const Workspace& ws, const std::string& run, int keep) {
  auto steps = ListSnapshots(ws, run);
  for (size_t i = 0; i + static_cast<size_t>(std::max(keep, 0)) < steps.size(); ++i) {
    std::error_code ec;
    std::filesystem::remove(SnapshotPath(ws, run, steps[i]), ec);
    if (ec) return Status::IoError("removing " + SnapshotPath(ws, run, steps[i]) + ": " + ec.message());
  }
  return Status::Ok();
}

Result<Generator> LoadGenerator(const Workspace& ws, const std::string& run, RunConfig* config,
                                const GeneratorChoice& choice) {
  MF_ASSIGN_OR_RETURN(RunConfig c, LoadRunConfig(ws, run));
  Generator g(c.gan);
  GeneratorChoice chosen = choice;
  if (chosen.snapshot == kBestSnapshot) {
    MF_ASSIGN_OR_RETURN(chosen.snapshot, ResolveBestSnapshot(ws, run));
  }
  if (chosen.snapshot >= 0) {
    if (chosen.raw) return Status::InvalidArgument("--raw: snapshots keep only the sampling generator");
    const std::string path = SnapshotPath(ws, run, chosen.snapshot);
    if (!std::filesystem::exists(path)) {
      std::string have;
      for (int64_t s : ListSnapshots(ws, run)) have += (have.empty() ? "" : " ") + std::to_string(s);
      return Status::NotFound("run '" + run + "' has no snapshot of step " + std::to_string(chosen.snapshot) +
                              " (it has: " + (have.empty() ? "none" : have) + ")");
    }
    try {
      torch::serialize::InputArchive a, ga;
      a.load_from(path);
      a.read("G", ga);
      g->load(ga);
    } catch (const c10::Error& e) {
      return Status::Corrupt("snapshot " + path + ": " + e.what_without_backtrace());
    }
  } else {
    Generator g_ema(c.gan);
    Discriminator d(c.gan);
    MF_RETURN_IF_ERROR(LoadCheckpoint(CheckpointPath(ws, run), g, choice.raw ? nullptr : &g_ema, d, nullptr,
                                      nullptr, nullptr));
    if (!choice.raw) g = g_ema;
  }
  g->eval();
  if (config != nullptr) *config = std::move(c);
  return g;
}

torch::Tensor FixedTagRows(const TagSchema& schema, const std::vector<double>& freq, int rows,
                           std::vector<std::string>* labels) {
  // Columns of the exclusive groups' tags, most frequent first.
  std::vector<std::vector<int>> groups;
  int col = 0;
  for (const auto& g : schema.groups()) {
    if (g.exclusive) {
      std::vector<int> cols(g.tags.size());
      std::iota(cols.begin(), cols.end(), col);
      std::stable_sort(cols.begin(), cols.end(), [&](int a, int b) { return freq[a] > freq[b]; });
      // Only tags the data has (all of them when it has none).
      auto seen = std::find_if(cols.begin(), cols.end(), [&](int c) { return freq[c] <= 0; });
      if (seen != cols.begin()) cols.erase(seen, cols.end());
      groups.push_back(cols);
    }
    col += static_cast<int>(g.tags.size());
  }
  if (!groups.empty()) rows = std::min<int>(rows, static_cast<int>(groups[0].size()));
  auto t = torch::zeros({rows, schema.size()});
  if (labels != nullptr) labels->clear();
  for (int r = 0; r < rows; ++r) {
    std::string label;
    for (size_t k = 0; k < groups.size() && k < 2; ++k) {
      int c = groups[k][r % groups[k].size()];
      t[r][c] = 1.0f;
      label += (label.empty() ? "" : " ") + schema.tags()[c];
    }
    // Other exclusive groups: their most frequent tag.
    for (size_t k = 2; k < groups.size(); ++k) t[r][groups[k][0]] = 1.0f;
    if (labels != nullptr) labels->push_back(label);
  }
  return t;
}

Status WriteGrid(const torch::Tensor& images, int cols, const std::vector<std::string>& row_labels,
                 const std::string& path, int scale) {
  auto x = ((images.detach().cpu().to(torch::kFloat).clamp(-1, 1) + 1) * 127.5)
               .round()
               .to(torch::kUInt8)
               .permute({0, 2, 3, 1})
               .contiguous();
  scale = std::max(1, scale);
  const int n = static_cast<int>(x.size(0));
  const int src = static_cast<int>(x.size(1));
  const int r = src * scale;
  cols = std::max(1, std::min(cols, n));
  const int rows = (n + cols - 1) / cols;
  const int pad = 2 * scale;
  // Labels grow with the images, but stay readable at scale 1.
  const double font = 0.4 * std::max(1.0, scale * 0.75);
  const int thickness = scale >= 3 ? 2 : 1;
  int label_w = 0;
  for (const auto& l : row_labels) {
    int base = 0;
    label_w = std::max(label_w, cv::getTextSize(l, cv::FONT_HERSHEY_SIMPLEX, font, thickness, &base).width + 8 * scale);
  }
  cv::Mat grid(rows * (r + pad) + pad, label_w + cols * (r + pad) + pad, CV_8UC3, cv::Scalar(255, 255, 255));
  for (int i = 0; i < n; ++i) {
    cv::Mat rgb(src, src, CV_8UC3, x[i].data_ptr<uint8_t>());
    cv::Mat bgr;
    cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
    if (scale > 1) cv::resize(bgr, bgr, cv::Size(r, r), 0, 0, cv::INTER_CUBIC);
    bgr.copyTo(grid(cv::Rect(label_w + pad + (i % cols) * (r + pad), pad + (i / cols) * (r + pad), r, r)));
  }
  for (size_t k = 0; k < row_labels.size() && static_cast<int>(k) < rows; ++k) {
    int base = 0;
    const int text_h = cv::getTextSize(row_labels[k], cv::FONT_HERSHEY_SIMPLEX, font, thickness, &base).height;
    cv::putText(grid, row_labels[k], cv::Point(4 * scale, pad + static_cast<int>(k) * (r + pad) + (r + text_h) / 2),
                cv::FONT_HERSHEY_SIMPLEX, font, cv::Scalar(0, 0, 0), thickness, cv::LINE_AA);
  }
  std::vector<uchar> png;
  if (!cv::imencode(".png", grid, png)) return Status::Internal("PNG encoding failed for " + path);
  std::filesystem::create_directories(std::filesystem::path(path).parent_path().empty()
                                          ? std::filesystem::path(".")
                                          : std::filesystem::path(path).parent_path());
  return WriteFileAtomic(path, png.data(), png.size());
}

}  // namespace moeforge::trainer
