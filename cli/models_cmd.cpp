// moeforge models list | path NAME | pull NAME... | pull --demo
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "cli/command.h"
#include "core/hash.h"
#include "core/http.h"
#include "core/models.h"
#include "core/workspace.h"

namespace moeforge::cli {

namespace {

// The models `moeforge demo` needs.
const std::vector<std::string> kDemoModels = {"lbpcascade_animeface", "yunet"};

// Downloads one known model into the cache, verifying its SHA-256. A verified copy on the
// search path is enough (the offline path: CI, air-gapped machines); a copy whose hash
// does not match is never used, so when the download fails too, the pull fails and says
// which file is wrong.
Status Pull(const ModelInfo& m, bool force) {
  std::string dest = ModelCacheDir() + "/" + m.file;
  auto existing = ResolveModel(m.name);  // only a copy with the registry's sha256
  if (existing.ok() && !force) {
    std::printf("%s: have %s (sha256 ok)\n", m.name.c_str(), existing->c_str());
    return Status::Ok();
  }
  if (!existing.ok() && existing.status().code() == Status::Code::kCorrupt)
    std::fprintf(stderr, "%s: fetching again: %s\n", m.name.c_str(), existing.status().message().c_str());
  http::Client client;
  http::Request req;
  req.url = m.url;
  req.max_bytes = m.bytes > 0 ? m.bytes * 2 : 0;
  std::fprintf(stderr, "%s: fetching %s\n", m.name.c_str(), m.url.c_str());
  http::Response r = client.Get(req);
  if (!r.ok()) {
    if (existing.ok()) {
      std::printf("%s: download failed (%s); using the verified copy at %s (sha256 ok)\n", m.name.c_str(),
                  r.Reason().c_str(), existing->c_str());
      return Status::Ok();
    }
    if (existing.status().code() == Status::Code::kCorrupt)
      return Status::Network(fmt::format("{}: cannot download {} ({} {}), and the local copy is not usable: {}",
                                         m.name, m.url, r.Reason(), r.error_detail, existing.status().message()));
    return Status::Network(fmt::format(
        "{}: cannot download {} ({} {}), and no copy on the model search path. Offline? Put {} in a folder "
        "and set MOEFORGE_MODEL_PATH to it.",
        m.name, m.url, r.Reason(), r.error_detail, m.file));
  }
  std::string sha = Sha256Hex(r.body);
  if (sha != m.sha256)
    return Status::Corrupt(fmt::format("{}: downloaded {} bytes with sha256 {}, expected {}; not saved", m.name,
                                       r.body.size(), sha, m.sha256));
  MF_RETURN_IF_ERROR(WriteFileAtomic(dest, r.body.data(), r.body.size()));
  std::printf("%s: saved %s (%zu bytes, sha256 ok)\n", m.name.c_str(), dest.c_str(), r.body.size());
  return Status::Ok();
}

}  // namespace

Command AddModelsCommand(CLI::App& root) {
  auto* app = root.add_subcommand("models", "List, locate and download the models moeforge knows");
  app->require_subcommand(1);
  auto* list = app->add_subcommand("list", "Known models, and where each is found on this machine");
  auto* path = app->add_subcommand("path", "Print the path a model name resolves to");
  auto* pull = app->add_subcommand("pull", "Download models into the cache, verifying SHA-256");
  struct Opts {
    std::string name;
    std::vector<std::string> names;
    bool demo = false;
    bool force = false;
  };
  auto o = std::make_shared<Opts>();
  path->add_option("NAME", o->name, "Registry name, file name or path")->required();
  pull->add_option("NAME", o->names, "Registry names (see `moeforge models list`)");
  pull->add_flag("--demo", o->demo, "Pull what `moeforge demo` needs");
  pull->add_flag("--force", o->force, "Download even when a verified copy exists");
  return {app, [=]() -> int {
            if (list->parsed()) {
              for (const auto& m : KnownModels()) {
                auto where = ResolveModel(m.name);
                std::printf("%-24s %-9s %s\n    %s\n    %s\n", m.name.c_str(), m.kind.c_str(), m.note.c_str(),
                            m.url.c_str(),
                            where.ok()                                            ? ("found: " + *where).c_str()
                            : where.status().code() == Status::Code::kCorrupt ? where.status().message().c_str()
                                                                              : "not on this machine");
              }
              std::string dirs;
              for (const auto& d : ModelSearchPath()) dirs += (dirs.empty() ? "" : ":") + d;
              std::printf("search path: %s\n", dirs.c_str());
              return 0;
            }
            if (path->parsed()) {
              auto p = ResolveModel(o->name);
              if (!p.ok()) return Fail("models path", p.status());
              std::printf("%s\n", p->c_str());
              return 0;
            }
            std::vector<std::string> names = o->names;
            if (o->demo) names.insert(names.end(), kDemoModels.begin(), kDemoModels.end());
            if (names.empty()) return Fail("models pull", Status::InvalidArgument("name a model, or --demo"));
            int rc = 0;
            for (const auto& n : names) {
              const ModelInfo* m = FindKnownModel(n);
              if (m == nullptr) {
                rc = std::max(rc, Fail("models pull", Status::NotFound("no known model '" + n + "' (see `moeforge models list`)")));
                continue;
              }
              Status s = Pull(*m, o->force);
              if (!s.ok()) rc = std::max(rc, Fail("models pull", s));
            }
            return rc;
          }};
}

}  // namespace moeforge::cli
