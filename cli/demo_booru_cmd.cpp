// moeforge demo-booru: serve the demo booru (demo_booru/server.h) until SIGINT/SIGTERM. The
// first stdout line is "listening on http://HOST:PORT" so that scripts and tests can
// start it with --port 0 and read where it went; with --dump-truth the truth file is
// complete before that line appears.

#include <chrono>
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "db/stage_run.h"
#include "demo_booru/server.h"

namespace moeforge::cli {

Command AddDemoBooruCommand(CLI::App& root) {
  auto* app = root.add_subcommand(
      "demo-booru", "Serve procedurally drawn illustrations behind Danbooru/Moebooru/Gelbooru APIs on loopback");
  struct Opts {
    demo::DemoBooru::Options booru;
    std::string dump_truth;
    bool lazy = false;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  app->add_option("--host", o->booru.host, "Address to listen on")->capture_default_str();
  app->add_option("--port", o->booru.port, "Port (0: any free port; the first stdout line says which)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app->add_option("--posts", o->booru.posts, "Number of posts (ids 1..N)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  app->add_option("--seed", o->booru.seed, "Seed: the same seed draws the same posts, bytes and faults")
      ->capture_default_str();
  app->add_option("--faults", o->booru.faults,
                  "Faults on image requests, e.g. \"rate429=0.05,5xx=0.05,stall=0.02,truncate=0.02\" "
                  "(names and parameters: demo_booru/faults.h; default: none)")
      ->capture_default_str();
  app->add_option("--dump-truth", o->dump_truth,
                  "Write every post's truth (md5, kind, face boxes + tags, fault) as JSON Lines to FILE (default: none)")
      ->capture_default_str();
  app->add_option("--threads", o->booru.threads, "HTTP worker threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app->add_flag("--lazy", o->lazy,
                "Render each post when first asked for instead of all before listening (faster start, "
                "slower first pages)")
      ->capture_default_str();
  app->add_option("--page-cap", o->booru.page_cap, "Highest numbered page served (Danbooru's is 1000)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app->add_flag("--anon-tag-limit", o->booru.anon_tag_limit,
                "Refuse anonymous searches of more than 2 (Danbooru) or 6 (Moebooru) terms");
  app->add_option("--challenge-after", o->booru.challenge_after,
                  "Answer every request after the first N with a Cloudflare-style challenge (-1: never)")
      ->capture_default_str();
  app->add_option("--gelbooru-key-status", o->booru.gelbooru_key_status,
                  "Answer Gelbooru API requests without user_id and api_key with this status, as Gelbooru has "
                  "since 2025 (0: never)")
      ->capture_default_str()
      ->check(CLI::IsMember({0, 401, 403}));
  app->add_option("--unavailable", o->booru.unavailable_rate,
                  "Share of posts deleted, banned, restricted, video or ugoira")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--webp", o->booru.webp_rate, "Share of posts whose original is WebP")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--sample-px", o->booru.sample_px,
                  "Serve a JPEG sample this large (longer side) for bigger posts (0: none; Danbooru's is 850)")
      ->capture_default_str();
  app->add_option("--file-host", o->booru.file_host, "Host name for file URLs (same port), e.g. localhost")
      ->capture_default_str();
  app->add_flag("--json", o->json, "Print the closing summary as JSON")->capture_default_str();

  return {app, [o]() -> int {
            BlockStopSignals();  // before any thread starts, so every thread inherits it

            o->booru.prerender = !o->lazy;
            auto t0 = std::chrono::steady_clock::now();
            demo::DemoBooru booru(o->booru);
            Status s = booru.Start();
            if (!s.ok()) return Fail("demo-booru", s);
            if (!o->dump_truth.empty()) {
              s = booru.WriteTruth(o->dump_truth);
              if (!s.ok()) return Fail("demo-booru", s);
            }
            std::printf("listening on %s\n", booru.base_url().c_str());
            std::fflush(stdout);
            std::fprintf(stderr, "demo-booru: %d posts, seed %llu, faults \"%s\"; Ctrl-C stops\n", o->booru.posts,
                         static_cast<unsigned long long>(o->booru.seed), booru.fault_spec().ToString().c_str());

            WaitForStopSignal();
            booru.Stop();

            demo::ServerStats st = booru.stats();
            db::StageSummary sum;
            sum.stage = "demo-booru";
            sum.done = st.requests;
            sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            sum.params = {{"host", o->booru.host},     {"port", booru.port()},
                          {"posts", o->booru.posts},   {"seed", o->booru.seed},
                          {"faults", booru.fault_spec().ToString()}};
            sum.extra = {{"api_requests", st.api_requests},
                         {"image_requests", st.image_requests},
                         {"faults_injected", st.faults_injected},
                         {"rendered", st.rendered}};
            db::PrintSummary(sum, o->json);
            return 0;
          }};
}

}  // namespace moeforge::cli
