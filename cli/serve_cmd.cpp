// moeforge serve -w WS [--host 127.0.0.1] [--port 8765] [--run NAME]: the generator web
// page (studio/server.h) until SIGINT/SIGTERM. The first stdout line is
// "listening on http://HOST:PORT", so that scripts and tests can start it with --port 0.

#include <chrono>
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "db/stage_run.h"
#include "studio/server.h"

namespace moeforge::cli {

Command AddServeCommand(CLI::App& root) {
  auto* app = root.add_subcommand("serve", "Serve a web page that generates faces with chosen attributes");
  struct Opts {
    std::string ws;
    server::ServeOptions serve;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  app->add_option("-w,--workspace", o->ws, "Workspace folder")->required();
  app->add_option("--host", o->serve.host, "Address to listen on")->capture_default_str();
  app->add_option("--port", o->serve.port, "Port (0: any free port; the first stdout line says which)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app->add_option("--run", o->serve.run, "Run the page shows first (default: the newest run)")
      ->capture_default_str();
  app->add_option("--max-n", o->serve.max_n, "Most images one request may ask for")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app->add_option("--snapshot", o->serve.snapshot, "Generate with the snapshot of this step (-1: the checkpoint)")
      ->capture_default_str();
  app->add_option("--threads", o->serve.sample_threads, "CPU threads for one generation (0: all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app->add_flag("--json", o->json, "Print the closing summary as JSON")->capture_default_str();

  return {app, [o]() -> int {
            BlockStopSignals();  // before any thread starts, so every thread inherits it

            auto t0 = std::chrono::steady_clock::now();
            server::SampleServer srv(Workspace(o->ws), o->serve);
            Status s = srv.Start();
            if (!s.ok()) return Fail("serve", s);
            std::printf("listening on %s\n", srv.base_url().c_str());
            std::fflush(stdout);
            std::fprintf(stderr, "serve: workspace %s; Ctrl-C stops\n", o->ws.c_str());

            WaitForStopSignal();
            srv.Stop();

            db::StageSummary sum;
            sum.stage = "serve";
            sum.done = srv.requests();
            sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            sum.params = {{"host", o->serve.host}, {"port", srv.port()}, {"run", o->serve.run}};
            sum.extra = {{"images", srv.samples()}};
            db::PrintSummary(sum, o->json);
            return 0;
          }};
}

}  // namespace moeforge::cli
