// The `moeforge serve` HTTP server: routes, parameter checks, and one generation at a
// time through trainer::Sample (the machine it is meant for has 2 cores).
#include "studio/server.h"
#include "core/http_server.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "core/tag_schema.h"
#include "db/db.h"
#include "studio/page.h"
#include "trainer/trainer.h"

namespace fs = std::filesystem;

namespace moeforge::server {

namespace {

// A run name becomes a folder under WS/runs/: refuse anything that could leave it.
Status CheckRunName(const std::string& run) {
  if (run.empty()) return Status::InvalidArgument("missing parameter 'run'");
  if (run == "." || run == ".." || run.find_first_of("/\\") != std::string::npos ||
      run.find('\0') != std::string::npos)
    return Status::InvalidArgument("bad run name '" + run + "'");
  return Status::Ok();
}

// The run's tag schema from WS/runs/<run>/config.json (what trainer::Sample reads).
Result<TagSchema> LoadRunSchema(const Workspace& ws, const std::string& run) {
  MF_RETURN_IF_ERROR(CheckRunName(run));
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

nlohmann::json SchemaJson(const std::string& run, const TagSchema& schema) {
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& g : schema.groups())
    groups.push_back({{"name", g.name}, {"exclusive", g.exclusive}, {"tags", g.tags}});
  return {{"run", run}, {"schema", schema.name()}, {"groups", groups}};
}

// A decimal integer in [lo, hi], the whole string.
Result<uint64_t> ParseUint(const std::string& name, const std::string& text, uint64_t lo, uint64_t hi) {
  if (text.empty() || text.size() > 20 || text.find_first_not_of("0123456789") != std::string::npos)
    return Status::InvalidArgument("'" + name + "' must be a whole number, got '" + text + "'");
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
  res.set_content(j.dump(), "application/json");
}

// Usage and input problems (exit status 2 on the command line) are the client's: 400.
void SendError(httplib::Response& res, const Status& s) {
  SendJson(res, s.ExitCode() == 2 ? 400 : 500, {{"error", s.message()}});
}

}  // namespace

struct SampleServer::Impl {
  Workspace ws;
  ServeOptions opt;
  httplib::Server http;
  std::thread listener;
  int port = 0;
  bool started = false;
  std::unique_ptr<db::Database> db;
  std::mutex db_mu;          // the connection and its cached statements
  std::mutex generate_mu;    // one model evaluation at a time
  std::atomic<int64_t> requests{0};
  std::atomic<int64_t> samples{0};
  std::atomic<int64_t> tmp_counter{0};

  Impl(Workspace w, ServeOptions o) : ws(std::move(w)), opt(std::move(o)) {}

  Result<std::vector<PageRun>> Runs() {
    std::lock_guard<std::mutex> lock(db_mu);
    MF_ASSIGN_OR_RETURN(db::Stmt * q, db->Cached("SELECT name, state, step, config_json, dir, updated_at FROM runs "
                                                 "ORDER BY updated_at DESC, id DESC"));
    std::vector<PageRun> runs;
    while (true) {
      MF_ASSIGN_OR_RETURN(bool row, q->Step());
      if (!row) break;
      PageRun r;
      r.name = q->Text(0);
      r.state = q->Text(1);
      r.step = q->Int(2);
      r.updated_at = q->Text(5);
      auto cfg = nlohmann::json::parse(q->Text(3), nullptr, false);
      if (cfg.is_object() && cfg.contains("gan") && cfg["gan"].is_object())
        r.resolution = cfg["gan"].value("resolution", 0);
      std::error_code ec;
      r.has_checkpoint = fs::exists(ws.Abs(q->Text(4)) + "/checkpoint.pt", ec);
      runs.push_back(std::move(r));
    }
    q->Reset();
    return runs;
  }

  void HandlePage(const httplib::Request& req, httplib::Response& res) {
    auto runs = Runs();
    if (!runs.ok()) return SendError(res, runs.status());
    PageModel m;
    m.runs = *runs;
    m.max_n = opt.max_n;
    m.default_n = std::min(16, opt.max_n);
    if (req.has_param("run"))
      m.run = req.get_param_value("run");
    else if (!opt.run.empty())
      m.run = opt.run;
    else if (!m.runs.empty())
      m.run = m.runs.front().name;
    Result<TagSchema> schema = Status::NotFound("");
    if (!m.run.empty()) {
      schema = LoadRunSchema(ws, m.run);
      if (schema.ok())
        m.schema = &*schema;
      else
        m.error = schema.status().message();
    }
    res.set_header("Cache-Control", "no-store");
    res.set_content(RenderPage(m), "text/html; charset=utf-8");
  }

  void HandleRuns(const httplib::Request&, httplib::Response& res) {
    auto runs = Runs();
    if (!runs.ok()) return SendError(res, runs.status());
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : *runs)
      out.push_back({{"name", r.name},
                     {"state", r.state},
                     {"step", r.step},
                     {"updated_at", r.updated_at},
                     {"resolution", r.resolution},
                     {"has_checkpoint", r.has_checkpoint}});
    SendJson(res, 200, out);
  }

  void HandleSchema(const httplib::Request& req, httplib::Response& res) {
    std::string run = req.get_param_value("run");
    auto schema = LoadRunSchema(ws, run);
    if (!schema.ok()) return SendError(res, schema.status());
    SendJson(res, 200, SchemaJson(run, *schema));
  }

  void HandleSample(const httplib::Request& req, httplib::Response& res) {
    trainer::SampleOptions so;
    so.run = req.get_param_value("run");
    if (Status s = CheckRunName(so.run); !s.ok()) return SendError(res, s);
    so.tags = req.get_param_value("tags");
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

    std::error_code ec;
    fs::create_directories(ws.tmp_dir(), ec);
    so.out = ws.tmp_dir() + "/serve-" + std::to_string(getpid()) + "-" + std::to_string(tmp_counter++) + ".png";
    Result<std::string> png = Status::Internal("not generated");
    {
      std::lock_guard<std::mutex> lock(generate_mu);
      auto path = trainer::Sample(ws, so);
      png = path.ok() ? ReadFile(*path) : Result<std::string>(path.status());
    }
    fs::remove(so.out, ec);
    if (!png.ok()) return SendError(res, png.status());
    samples += so.n;
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Moeforge-Seed", std::to_string(so.seed));
    res.set_content(std::move(*png), "image/png");
  }

  void Routes() {
    auto wrap = [this](void (Impl::*fn)(const httplib::Request&, httplib::Response&)) {
      return [this, fn](const httplib::Request& req, httplib::Response& res) {
        ++requests;
        try {
          (this->*fn)(req, res);
        } catch (const std::exception& e) {
          SendJson(res, 500, {{"error", std::string("internal error: ") + e.what()}});
        }
      };
    };
    http.Get("/", wrap(&Impl::HandlePage));
    http.Get("/api/runs", wrap(&Impl::HandleRuns));
    http.Get("/api/schema", wrap(&Impl::HandleSchema));
    http.Get("/api/sample.png", wrap(&Impl::HandleSample));
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (res.body.empty())
        SendJson(res, res.status, {{"error", "no such page: " + req.method + " " + req.path}});
    });
  }
};

SampleServer::SampleServer(Workspace ws, ServeOptions options)
    : impl_(std::make_unique<Impl>(std::move(ws), std::move(options))) {}

SampleServer::~SampleServer() { Stop(); }

Status SampleServer::Start() {
  Impl& d = *impl_;
  if (d.started) return Status::InvalidArgument("server already started");
  if (d.opt.port < 0 || d.opt.port > 65535)
    return Status::InvalidArgument("--port must lie in 0..65535, got " + std::to_string(d.opt.port));
  if (d.opt.http_threads < 1) return Status::InvalidArgument("http_threads must be >= 1");
  if (d.opt.max_n < 1) return Status::InvalidArgument("max_n must be >= 1");
  MF_RETURN_IF_ERROR(d.ws.CheckExists());
  MF_ASSIGN_OR_RETURN(d.db, db::OpenWorkspace(d.ws));
  if (!d.opt.run.empty()) {
    auto schema = LoadRunSchema(d.ws, d.opt.run);
    if (!schema.ok()) return schema.status().WithContext("--run");
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

int SampleServer::port() const { return impl_->port; }

std::string SampleServer::base_url() const { return HttpBaseUrl(impl_->opt.host, impl_->port); }

void SampleServer::Stop() {
  Impl& d = *impl_;
  if (!d.started) return;
  d.http.stop();
  if (d.listener.joinable()) d.listener.join();
  d.started = false;
}

int64_t SampleServer::requests() const { return impl_->requests.load(); }
int64_t SampleServer::samples() const { return impl_->samples.load(); }

}  // namespace moeforge::server
