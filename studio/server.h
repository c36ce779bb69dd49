// `moeforge serve`: a web page that generates faces with chosen attributes from a
// trained run (DESIGN.md, "sample / serve"), as make.girls.moe did. Loopback by default.
//
//   GET /                    the page (self-contained: no external scripts, styles or fonts);
//                            ?run=NAME picks the run shown, else --run, else the newest run
//   GET /api/runs            [{"name","state","step","resolution","updated_at","has_checkpoint"}...]
//   GET /api/schema?run=NAME {"run","schema","groups":[{"name","exclusive","tags":[...]}...]}
//   GET /api/sample.png?run=NAME&tags=a+b&seed=S&n=N
//                            a PNG grid from trainer::Sample; the seed used is in the
//                            X-Moeforge-Seed header (a random one when `seed` is absent)
// Bad parameters (unknown run or tag, two tags of one exclusive group, n outside 1..64)
// answer 400 with {"error": "<message>"}; other failures 500 likewise. One model
// evaluation runs at a time.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "core/workspace.h"

namespace moeforge::server {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8765;           // 0: a free port, see port()
  std::string run;           // the run the page shows first; "" = the newest
  int http_threads = 8;      // HTTP worker threads (a browser holds several keep-alive connections)
  int sample_threads = 0;    // CPU threads for one model evaluation (0: all cores)
  int max_n = 64;            // the largest grid one request may ask for
  int64_t snapshot = -1;     // >= 0: generate with that step's snapshot (a request's `snapshot` overrides)
};

class SampleServer {
 public:
  SampleServer(Workspace ws, ServeOptions options);
  ~SampleServer();  // Stop()s
  SampleServer(const SampleServer&) = delete;
  SampleServer& operator=(const SampleServer&) = delete;

  // Opens the workspace database, binds and serves on background threads. NotFound when
  // WS has no database or --run names no run; IoError when the port cannot be bound.
  Status Start();
  // The bound port and "http://HOST:PORT" (after Start()).
  int port() const;
  std::string base_url() const;
  // Stops accepting and joins the threads; a generation in progress finishes first.
  // Idempotent.
  void Stop();
  // Requests answered and images generated so far.
  int64_t requests() const;
  int64_t samples() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moeforge::server
