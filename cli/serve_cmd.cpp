// moeforge serve -w WS [--host 127.0.0.1] [--port 8765] [--run NAME]: the studio
// (studio/server.h) until SIGINT/SIGTERM. The first stdout line is
// "listening on http://HOST:PORT", so that scripts and tests can start it with --port 0.

#include <chrono>
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/options.h"
#include "db/stage_run.h"
#include "studio/server.h"

namespace moeforge::cli {

Command AddServeCommand(CLI::App& root) {
  auto* app = root.add_subcommand("serve", "The studio: browse the dataset, watch runs, generate faces (a local web app)");
  struct Opts {
    std::string ws;
    studio::StudioOptions serve;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  app->add_option("-w,--workspace", o->ws, "Workspace folder (opened read-only)")->required();
  ServeOptionTable(&o->serve).AddFlags(app);
  app->add_flag("--json", o->json, "Print the closing summary as JSON")->capture_default_str();

  return {app, [o]() -> int {
            BlockStopSignals();  // before any thread starts, so every thread inherits it

            auto t0 = std::chrono::steady_clock::now();
            if (o->serve.snapshot == trainer::kBestSnapshot) {
              // The best scored generator as it stands now: a step for the whole session.
              if (o->serve.run.empty())
                return Fail("serve", Status::InvalidArgument("--snapshot best needs --run"));
              auto best = trainer::ResolveBestSnapshot(Workspace(o->ws), o->serve.run);
              if (!best.ok()) return Fail("serve", best.status());
              o->serve.snapshot = *best;
              std::fprintf(stderr, "serve: --snapshot best is %s\n",
                           *best >= 0 ? ("snapshot " + std::to_string(*best)).c_str() : "the checkpoint");
            }
            studio::Studio srv(Workspace(o->ws), o->serve);
            Status s = srv.Start();
            if (!s.ok()) return Fail("serve", s);
            std::printf("listening on %s\n", srv.base_url().c_str());
            std::fflush(stdout);
            std::fprintf(stderr, "serve: workspace %s (read-only); Ctrl-C stops\n", o->ws.c_str());

            WaitForStopSignal();
            srv.Stop();

            db::StageSummary sum;
            sum.stage = "serve";
            sum.done = srv.requests();
            sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            sum.params = {{"host", o->serve.host}, {"port", srv.port()}, {"run", o->serve.run}};
            sum.extra = {{"images", srv.samples()}, {"model_loads", srv.model_loads()}};
            db::PrintSummary(sum, o->json);
            return 0;
          }};
}

}  // namespace moeforge::cli
