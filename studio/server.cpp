// The studio's HTTP server: request limits, routes, parameter checks; the queries are
// catalog.*, the generations generation_queue.*, the pages web/ (assets.h).
#include "studio/server.h"

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/http_server.h"
#include "core/tag_schema.h"
#include "studio/assets.h"
#include "studio/catalog.h"
#include "studio/generation_queue.h"
#include "trainer/trainer.h"

namespace fs = std::filesystem;

namespace moeforge::studio {

namespace {

// A decimal integer in [lo, hi], the whole string.
Result<uint64_t> ParseUint(const std::string& name, const std::string& text, uint64_t lo, uint64_t hi) {
  if (text.empty() || text.size() > 20 || text.find_first_not_of("0123456789") != std::string::npos)
    return Status::InvalidArgument("'" + name + "' must be a whole number, got '" + text.substr(0, 40) + "'");
  uint64_t v = 0;
  try {
    v = std::stoull(text);
  } catch (const std::exception&) {
    return Status::InvalidArgument("'" + name + "' is out of range: '" + text + "'");
  }
  if (v < lo || v > hi)
    return Status::InvalidArgument("'" + name + "' must lie in " + std::to_string(lo) + ".." + std::to_string(hi) +
                                   ", got " + text);
  return v;
}

void SendJson(httplib::Response& res, int code, const nlohmann::json& j) {
  res.status = code;
  res.set_header("Cache-Control", "no-store");
  res.set_content(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

// Usage problems are the client's (400), a missing thing 404, the rest ours (500).
void SendError(httplib::Response& res, const Status& s) {
  int code = s.code() == Status::Code::kInvalidArgument ? 400 : s.code() == Status::Code::kNotFound ? 404 : 500;
  SendJson(res, code, {{"error", s.message()}});
}

// The run's tag schema from WS/runs/<run>/config.json (what trainer::Sample reads).
Result<TagSchema> LoadRunSchema(const Workspace& ws, const std::string& run) {
  std::string path = ws.runs_dir() + "/" + run + "/config.json";
  if (!fs::exists(path))
    return Status::NotFound("run '" + run + "' has no " + path + " (train it first: moeforge train --run " + run + ")");
  MF_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("schema_toml") || !j["schema_toml"].is_string())
    return Status::Corrupt(path + " has no tag schema (schema_toml)");
  auto schema = TagSchema::FromToml(j["schema_toml"].get<std::string>());
  if (!schema.ok()) return schema.status().WithContext(path);
  return schema;
}

// A file's bytes, answered with `type` (files are immutable once written: crops, blobs,
// sample grids; a day of caching is safe).
void SendFile(httplib::Response& res, const Result<std::string>& path, const char* type) {
  if (!path.ok()) return SendError(res, path.status());
  auto bytes = ReadFile(*path);
  if (!bytes.ok()) return SendError(res, bytes.status());
  res.set_header("Cache-Control", "private, max-age=86400");
  res.set_content(std::move(*bytes), type);
}

}  // namespace

struct Studio::Impl {
  Workspace ws;
  StudioOptions opt;
  httplib::Server http;
  std::thread listener;
  int port = 0;
  bool started = false;
  std::unique_ptr<Catalog> catalog;
  GenerationQueue queue;
  SamplerCache samplers;
  std::string tmp_dir;  // private, outside the workspace
  std::atomic<int64_t> requests{0};
  std::atomic<int64_t> samples{0};
  std::atomic<int64_t> tmp_counter{0};

  Impl(Workspace w, StudioOptions o)
      : ws(std::move(w)), opt(std::move(o)), queue(opt.max_queued), samplers(ws, 4) {}

  // -- pages and assets --------------------------------------------------------------

  void SendAsset(httplib::Response& res, const std::string& name) {
    const Asset* a = FindAsset(name);
    if (a == nullptr) return SendJson(res, 404, {{"error", "no such file: " + name}});
    res.set_header("Cache-Control", "no-cache");
    res.set_content(a->data, a->size, a->content_type);
  }

  // -- dataset -----------------------------------------------------------------------

  void HandleFaces(const httplib::Request& req, httplib::Response& res) {
    FaceQuery q;
    q.view = req.get_param_value("view");
    q.filter = req.get_param_value("filter");
    if (req.has_param("sort") && !req.get_param_value("sort").empty()) q.sort = req.get_param_value("sort");
    q.desc = req.get_param_value("desc") == "1";
    q.after = req.get_param_value("after");
    if (req.has_param("limit")) {
      auto n = ParseUint("limit", req.get_param_value("limit"), 1, static_cast<uint64_t>(opt.page_max));
      if (!n.ok()) return SendError(res, n.status());
      q.limit = static_cast<int>(*n);
    }
    auto out = catalog->Faces(q);
    if (!out.ok()) return SendError(res, out.status());
    SendJson(res, 200, *out);
  }

  void HandleHistogram(const httplib::Request& req, httplib::Response& res) {
    auto out = catalog->Histogram(req.get_param_value("view"), req.get_param_value("filter"));
    if (!out.ok()) return SendError(res, out.status());
    SendJson(res, 200, *out);
  }

  Result<int64_t> IdOf(const httplib::Request& req) {
    MF_ASSIGN_OR_RETURN(uint64_t id, ParseUint("id", req.matches[1].str(), 1, INT64_MAX));
    return static_cast<int64_t>(id);
  }

  void HandleFace(const httplib::Request& req, httplib::Response& res) {
    auto id = IdOf(req);
    if (!id.ok()) return SendError(res, id.status());
    auto out = catalog->Face(*id);
    if (!out.ok()) return SendError(res, out.status());
    SendJson(res, 200, *out);
  }

  void HandleCrop(const httplib::Request& req, httplib::Response& res) {
    auto id = IdOf(req);
    if (!id.ok()) return SendError(res, id.status());
    SendFile(res, catalog->CropPath(*id), "image/png");
  }

  // The face's source illustration, at most `max` px on its longer side, every box its
  // detector drew there outlined and this face's box in a second colour.
  void HandleImage(const httplib::Request& req, httplib::Response& res) {
    auto id = IdOf(req);
    if (!id.ok()) return SendError(res, id.status());
    int max_side = 1024;
    if (req.has_param("max")) {
      auto m = ParseUint("max", req.get_param_value("max"), 64, 4096);
      if (!m.ok()) return SendError(res, m.status());
      max_side = static_cast<int>(*m);
    }
    std::vector<FaceBox> boxes;
    auto path = catalog->ImagePath(*id, &boxes);
    if (!path.ok()) return SendError(res, path.status());
    cv::Mat img = cv::imread(*path, cv::IMREAD_COLOR);
    if (img.empty()) return SendJson(res, 415, {{"error", "OpenCV cannot decode the stored image of face " +
                                                              std::to_string(*id) + " (GIF?)"}});
    double s = std::min(1.0, double(max_side) / std::max(img.cols, img.rows));
    if (s < 1.0) cv::resize(img, img, cv::Size(), s, s, cv::INTER_AREA);
    int thick = std::max(2, static_cast<int>(std::lround(std::max(img.cols, img.rows) / 300.0)));
    for (int pass = 0; pass < 2; ++pass)  // this face last, on top
      for (const auto& b : boxes) {
        bool self = b.face_id == *id;
        if (self != (pass == 1)) continue;
        cv::Rect r(cv::Point(int(b.x * s), int(b.y * s)), cv::Point(int((b.x + b.w) * s), int((b.y + b.h) * s)));
        cv::rectangle(img, r, self ? cv::Scalar(40, 40, 255) : cv::Scalar(255, 200, 0), thick);
      }
    std::vector<uchar> jpg;
    if (!cv::imencode(".jpg", img, jpg, {cv::IMWRITE_JPEG_QUALITY, 88}))
      return SendJson(res, 500, {{"error", "cannot encode the image"}});
    res.set_header("Cache-Control", "private, max-age=3600");
    res.set_content(reinterpret_cast<const char*>(jpg.data()), jpg.size(), "image/jpeg");
  }

  void HandleViews(const httplib::Request&, httplib::Response& res) {
    auto out = catalog->Views();
    if (!out.ok()) return SendError(res, out.status());
    SendJson(res, 200, *out);
  }

  // -- runs --------------------------------------------------------------------------

  void HandleRuns(const httplib::Request&, httplib::Response& res) {
    auto out = catalog->Runs();
    if (!out.ok()) return SendError(res, out.status());
    SendJson(res, 200, *out);
  }

  void HandleMetrics(const httplib::Request& req, httplib::Response& res) {
    const std::string run = req.matches[1].str();
    if (Status s = catalog->CheckRun(run); !s.ok()) return SendError(res, s);
    int64_t since = -1;
    if (req.has_param("since") && !req.get_param_value("since").empty()) {
      auto v = ParseUint("since", req.get_param_value("since"), 0, INT64_MAX);
      if (!v.ok()) return SendError(res, v.status());
      since = static_cast<int64_t>(*v);
    }
    int points = 1000;
    if (req.has_param("points")) {
      auto v = ParseUint("points", req.get_param_value("points"), 2, 10000);
      if (!v.ok()) return SendError(res, v.status());
      points = static_cast<int>(*v);
    }
    auto out = catalog->Metrics(run, since, points);
    if (!out.ok()) return SendError(res, out.status());
    SendJson(res, 200, *out);
  }

  void HandleRunFiles(const httplib::Request& req, httplib::Response& res) {
    auto out = catalog->RunFiles(req.matches[1].str());
    if (!out.ok()) return SendError(res, out.status());
    SendJson(res, 200, *out);
  }

  void HandleSampleFile(const httplib::Request& req, httplib::Response& res) {
    auto step = ParseUint("step", req.matches[2].str(), 0, INT64_MAX);
    if (!step.ok()) return SendError(res, step.status());
    SendFile(res, catalog->SamplePath(req.matches[1].str(), static_cast<int64_t>(*step)), "image/png");
  }

  // -- generate ----------------------------------------------------------------------

  void HandleSchema(const httplib::Request& req, httplib::Response& res) {
    std::string run = req.get_param_value("run");
    if (Status s = catalog->CheckRun(run); !s.ok()) return SendError(res, s);
    auto schema = LoadRunSchema(ws, run);
    if (!schema.ok()) return SendError(res, schema.status());
    nlohmann::json groups = nlohmann::json::array();
    for (const auto& g : schema->groups())
      groups.push_back({{"name", g.name}, {"exclusive", g.exclusive}, {"tags", g.tags}});
    SendJson(res, 200, {{"run", run}, {"schema", schema->name()}, {"groups", groups}, {"max_n", opt.max_n}});
  }

  void HandleSample(const httplib::Request& req, httplib::Response& res) {
    trainer::SampleOptions so;
    so.run = req.get_param_value("run");
    if (Status s = catalog->CheckRun(so.run); !s.ok()) return SendError(res, s);
    so.tags = req.get_param_value("tags");
    if (so.tags.size() > 2048) return SendError(res, Status::InvalidArgument("'tags' is too long"));
    // A '+' a client left undecoded still separates tags (no schema tag contains one).
    for (auto& c : so.tags)
      if (c == '+') c = ' ';
    so.n = 16;
    if (req.has_param("n")) {
      auto n = ParseUint("n", req.get_param_value("n"), 1, static_cast<uint64_t>(opt.max_n));
      if (!n.ok()) return SendError(res, n.status());
      so.n = static_cast<int>(*n);
    }
    if (req.has_param("seed") && !req.get_param_value("seed").empty()) {
      auto seed = ParseUint("seed", req.get_param_value("seed"), 0, UINT64_MAX);
      if (!seed.ok()) return SendError(res, seed.status());
      so.seed = *seed;
    } else {
      so.seed = std::random_device{}();  // 32 bits: exact in a JavaScript number
    }
    so.snapshot = opt.snapshot;
    if (req.has_param("snapshot") && !req.get_param_value("snapshot").empty()) {
      auto step = ParseUint("snapshot", req.get_param_value("snapshot"), 0, INT64_MAX);
      if (!step.ok()) return SendError(res, step.status());
      so.snapshot = static_cast<int64_t>(*step);
    }
    if (req.has_param("truncation") && !req.get_param_value("truncation").empty()) {
      const std::string v = req.get_param_value("truncation");
      char* end = nullptr;
      so.truncation = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(so.truncation >= 0 && so.truncation <= 2))
        return SendError(res, Status::InvalidArgument("truncation must be a number in [0, 2]"));
    }
    so.threads = opt.sample_threads;
    so.out = tmp_dir + "/sample-" + std::to_string(tmp_counter++) + ".png";

    auto png = queue.Run([&]() -> Result<std::string> {
      MF_ASSIGN_OR_RETURN(trainer::LoadedSampler * sampler, samplers.Get(so.run, so.snapshot));
      auto path = sampler->Sample(so);
      if (!path.ok()) return path.status();
      return ReadFile(*path);
    });
    std::error_code ec;
    fs::remove(so.out, ec);
    if (!png.has_value()) {
      res.set_header("Retry-After", "1");
      return SendJson(res, 503, {{"error", "busy: " + std::to_string(opt.max_queued) +
                                                " generations already wait; try again shortly"}});
    }
    if (!png->ok()) {
      // A missing snapshot, an unknown tag, two tags of one exclusive group: the request's.
      const Status& s = png->status();
      return SendError(res, s.code() == Status::Code::kNotFound ? Status::InvalidArgument(s.message()) : s);
    }
    samples += so.n;
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Moeforge-Seed", std::to_string(so.seed));
    res.set_content(std::move(**png), "image/png");
  }

  void HandleStatus(const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"requests", requests.load()}, {"samples", samples.load()},
                        {"model_loads", ModelLoads()}, {"generating", queue.running()}, {"queue_waiting", queue.waiting()},
                        {"run", opt.run}, {"snapshot", opt.snapshot}});
  }

  int64_t ModelLoads() const { return samplers.loads(); }

  // -- limits and routes -------------------------------------------------------------

  // Request line and header bounds the library does not let us set (Debian's cpp-httplib
  // 0.11 fixes 8 KiB per line at build time and counts no fields): checked once the
  // headers are in and before the body is read.
  httplib::Server::HandlerResponse CheckLimits(const httplib::Request& req, httplib::Response& res) {
    if (req.target.size() > opt.max_target) {
      SendJson(res, 414, {{"error", "request target longer than " + std::to_string(opt.max_target) + " bytes"}});
      return httplib::Server::HandlerResponse::Handled;
    }
    size_t bytes = 0;
    for (const auto& [k, v] : req.headers) bytes += k.size() + v.size() + 4;
    if (req.headers.size() > static_cast<size_t>(opt.max_headers) || bytes > opt.max_header_bytes) {
      SendJson(res, 431, {{"error", "request headers over the limit (" + std::to_string(opt.max_headers) +
                                        " fields, " + std::to_string(opt.max_header_bytes) + " bytes)"}});
      return httplib::Server::HandlerResponse::Handled;
    }
    // Refused before the body is read: the library would first read (and drop) all of it.
    if (req.has_header("Content-Length")) {
      const std::string len = req.get_header_value("Content-Length");
      if (len.size() > 18 || len.find_first_not_of("0123456789") != std::string::npos ||
          std::stoull(len.empty() ? "0" : len) > opt.max_body) {
        SendJson(res, 413, {{"error", "request body larger than " + std::to_string(opt.max_body) + " bytes"}});
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  }

  void Routes() {
    auto wrap = [this](void (Impl::*fn)(const httplib::Request&, httplib::Response&)) {
      return [this, fn](const httplib::Request& req, httplib::Response& res) { (this->*fn)(req, res); };
    };
    auto page = [this](const char* name) {
      return [this, name](const httplib::Request&, httplib::Response& res) { SendAsset(res, name); };
    };
    http.Get("/", page("dataset.html"));
    http.Get("/runs", page("runs.html"));
    http.Get("/generate", page("generate.html"));
    http.Get(R"(/static/([a-z0-9_-]{1,40}\.(?:js|css)))",
             [this](const httplib::Request& req, httplib::Response& res) { SendAsset(res, req.matches[1].str()); });
    http.Get("/api/views", wrap(&Impl::HandleViews));
    http.Get("/api/faces", wrap(&Impl::HandleFaces));
    http.Get("/api/histogram", wrap(&Impl::HandleHistogram));
    http.Get(R"(/api/face/(\d{1,19}))", wrap(&Impl::HandleFace));
    http.Get("/api/runs", wrap(&Impl::HandleRuns));
    http.Get(R"(/api/runs/([^/]{1,200})/metrics)", wrap(&Impl::HandleMetrics));
    http.Get(R"(/api/runs/([^/]{1,200})/files)", wrap(&Impl::HandleRunFiles));
    http.Get("/api/schema", wrap(&Impl::HandleSchema));
    http.Get("/api/sample.png", wrap(&Impl::HandleSample));
    http.Get("/api/status", wrap(&Impl::HandleStatus));
    http.Get(R"(/files/crop/(\d{1,19}))", wrap(&Impl::HandleCrop));
    http.Get(R"(/files/image/(\d{1,19}))", wrap(&Impl::HandleImage));
    http.Get(R"(/files/sample/([^/]{1,200})/(\d{1,19}))", wrap(&Impl::HandleSampleFile));
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      ++requests;
      return CheckLimits(req, res);
    });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      SendJson(res, 500, {{"error", "internal error: " + what}});
    });
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string what = res.status == 413 ? "request body larger than the studio accepts"
                         : res.status == 404 ? "no such page: " + req.method + " " + req.path
                                             : "request refused";
      SendJson(res, res.status, {{"error", what}});
    });
    http.set_payload_max_length(opt.max_body);
    http.set_read_timeout(10, 0);
    http.set_write_timeout(30, 0);
    http.set_keep_alive_max_count(1000);
    http.set_keep_alive_timeout(5);
  }
};

Studio::Studio(Workspace ws, StudioOptions options)
    : impl_(std::make_unique<Impl>(std::move(ws), std::move(options))) {}

Studio::~Studio() {
  Stop();
  std::error_code ec;
  if (!impl_->tmp_dir.empty()) fs::remove_all(impl_->tmp_dir, ec);
}

Status Studio::Start() {
  Impl& d = *impl_;
  if (d.started) return Status::InvalidArgument("server already started");
  if (d.opt.port < 0 || d.opt.port > 65535)
    return Status::InvalidArgument("--port must lie in 0..65535, got " + std::to_string(d.opt.port));
  if (d.opt.http_threads < 1) return Status::InvalidArgument("http_threads must be >= 1");
  if (d.opt.max_n < 1) return Status::InvalidArgument("max_n must be >= 1");
  if (d.opt.max_queued < 0) return Status::InvalidArgument("max_queued must be >= 0");
  if (d.opt.page_max < 1) return Status::InvalidArgument("page_max must be >= 1");
  MF_ASSIGN_OR_RETURN(d.catalog, Catalog::Open(d.ws, d.opt.db_connections));
  if (!d.opt.run.empty()) {
    if (Status s = d.catalog->CheckRun(d.opt.run); !s.ok()) return s.WithContext("--run");
    auto schema = LoadRunSchema(d.ws, d.opt.run);
    if (!schema.ok()) return schema.status().WithContext("--run");
  }
  if (d.tmp_dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "moeforge-serve-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return Status::IoError("cannot create a temporary folder in " + tmpl);
    d.tmp_dir = tmpl;
  }
  int threads = d.opt.http_threads;
  d.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  d.Routes();
  auto bound = BindAndListen(d.http, d.opt.host, d.opt.port, &d.listener);
  if (!bound.ok()) return bound.status();
  d.port = *bound;
  d.started = true;
  return Status::Ok();
}

int Studio::port() const { return impl_->port; }

std::string Studio::base_url() const { return HttpBaseUrl(impl_->opt.host, impl_->port); }

void Studio::Stop() {
  Impl& d = *impl_;
  if (!d.started) return;
  d.http.stop();
  if (d.listener.joinable()) d.listener.join();
  d.started = false;
}

int64_t Studio::requests() const { return impl_->requests.load(); }
int64_t Studio::samples() const { return impl_->samples.load(); }
int64_t Studio::model_loads() const { return impl_->ModelLoads(); }

}  // namespace moeforge::studio
