// `moeforge serve`, the studio: a local web app over one workspace (DESIGN.md, "sample /
// serve"), loopback by default, pages and scripts embedded in the binary.
//
// Pages:   /            Dataset: face grid, filter language, views, tag histogram, a face's source
//          /runs        Runs: state, metric curves, sample grids over time, eval figures (live)
//          /generate    Generate: tags grouped as the run's schema, seed, truncation, grid, download
//          /static/NAME their scripts and style
// Data:    /api/views  /api/faces?view=&filter=&sort=&desc=&after=&limit=  /api/histogram?view=&filter=
//          /api/face/ID  /api/runs  /api/runs/NAME/metrics?since=&points=  /api/runs/NAME/files
//          /api/schema?run=NAME  /api/sample.png?run=&tags=a+b&seed=&n=&truncation=&snapshot=
//          /api/status (counters; --run and --snapshot, the Generate page's defaults)
// Files:   /files/crop/FACE_ID  /files/image/FACE_ID (boxes drawn)  /files/sample/RUN/STEP
//
// Read-only: the database is opened read-only with query_only, nothing is written under
// the workspace (a generation's PNG goes through a private temporary folder), and files are
// found by row id or run name and step, never by a path from the request. Errors answer
// {"error": "..."}: 400 for a bad parameter (e.g. a filter that does not parse), 404 for an
// unknown id, run or page, 413/414/431 past the request limits, 503 when `max_queued`
// generations already wait.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "core/workspace.h"

namespace moeforge::studio {

struct StudioOptions {
  std::string host = "127.0.0.1";
  int port = 8765;            // 0: a free port, see port()
  std::string run;            // the run Generate shows first; "" = the newest
  int http_threads = 8;       // HTTP workers (a browser holds several keep-alive connections)
  int db_connections = 4;     // read-only SQLite connections shared by the workers
  int sample_threads = 0;     // CPU threads for one generation (0: all cores)
  int max_n = 64;             // the largest grid one generation may ask for
  int max_queued = 8;         // generations waiting behind the running one; more answer 503
  int64_t snapshot = -1;      // >= 0: generate with that step's snapshot (a request's `snapshot` overrides)
  int page_max = 200;         // faces one dataset page may ask for
  size_t max_body = 4096;     // request body bytes (413 past it; the studio takes no uploads)
  size_t max_target = 4096;   // request target bytes, path and query (414 past it)
  int max_headers = 64;       // request header fields (431 past it)
  size_t max_header_bytes = 16384;  // all request header fields together (431 past it)
};

class Studio {
 public:
  Studio(Workspace ws, StudioOptions options);
  ~Studio();  // Stop()s
  Studio(const Studio&) = delete;
  Studio& operator=(const Studio&) = delete;

  // Opens the workspace read-only, binds and serves on background threads. NotFound when WS
  // has no database or --run names no run; IoError when the port cannot be bound.
  Status Start();
  int port() const;               // after Start()
  std::string base_url() const;   // "http://HOST:PORT"
  // Stops accepting and joins the threads; a generation in progress finishes first. Idempotent.
  void Stop();
  int64_t requests() const;       // requests answered so far
  int64_t samples() const;        // images generated
  int64_t model_loads() const;    // generators read from disk (once per run and checkpoint file)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moeforge::studio
