// The studio's read-only queries (private to studio/): dataset pages, a face and its
// source illustration, views, runs and their metrics, each answered as the JSON its route
// sends. Connections are opened read-only with query_only set: the studio never writes a
// workspace. Files are found by row id, never by a path a client sent.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "core/workspace.h"
#include "db/db.h"
#include "db/filter.h"

namespace moeforge::studio {

struct FaceQuery {
  std::string view;    // "" = every face of the newest detector
  std::string filter;  // the filter language (docs/filters.md), ANDed with the view's
  std::string sort = "face_id";  // face_id | score | sharpness | face_size | mono_score | tag:NAME
  bool desc = false;
  std::string after;   // the `next` cursor of the previous page ("" = the first page)
  int limit = 60;
};

struct FaceBox {
  int64_t face_id = 0;
  double x = 0, y = 0, w = 0, h = 0;
};

class Catalog {
 public:
  // Opens read-only connections to WS's database: `connections` for the queries that scan
  // (pages, histograms, view counts) and two more for lookups by id (files, a face, a run),
  // so that a crop never waits behind a scan. NotFound without a database; Unsupported when
  // its schema is not the one this build reads.
  static Result<std::unique_ptr<Catalog>> Open(const Workspace& ws, int connections);
  ~Catalog();

  // {"faces":[{id, post_id, w, h, score, sharpness, mono_score, rating, crop, tags:[{tag, score, on}]}],
  //  "next": cursor|null, "tagger", "detector"}: one page in keyset order, `limit` faces at most.
  Result<nlohmann::json> Faces(const FaceQuery& q);
  // {"total", "tags": {tag: faces decided to have it}, "groups": [{name, exclusive, tags}]}.
  // Kept until the database changes (any commit, seen through PRAGMA data_version), like Views().
  Result<nlohmann::json> Histogram(const std::string& view, const std::string& filter);
  // A face: its row, the post(s) of its image with their source tags, every box the same
  // detector drew on the image, and its tags.
  Result<nlohmann::json> Face(int64_t face_id);
  // [{name, filter, detector, tagger, selected, of}].
  Result<nlohmann::json> Views();
  // [{name, state, step, view, tagger, created_at, updated_at, resolution, has_checkpoint}],
  // newest first.
  Result<nlohmann::json> Runs();
  // {"run", "state", "step", "metrics": {key: [[step, value]...]}} for steps > since_step;
  // at most `max_points` per key (evenly thinned, the last kept).
  Result<nlohmann::json> Metrics(const std::string& run, int64_t since_step, int max_points);
  // {"run", "samples": [step...], "snapshots": [step...], "eval": {...}|null}: what the run
  // left in its folder (eval: WS/runs/<run>/eval.json when someone saved `moeforge eval --json` there).
  Result<nlohmann::json> RunFiles(const std::string& run);

  // Absolute paths of files served by id.
  Result<std::string> CropPath(int64_t face_id);
  // The face's source image and every box its detector drew there.
  Result<std::string> ImagePath(int64_t face_id, std::vector<FaceBox>* boxes);
  Result<std::string> SamplePath(const std::string& run, int64_t step);

  // A run name as it may appear in a URL: one existing run, no path characters.
  Status CheckRun(const std::string& run);

 private:
  class Lease;
  enum class Lane { kScan, kLookup };
  explicit Catalog(Workspace ws) : ws_(std::move(ws)) {}
  Lease Acquire(Lane lane);
  // `rel` (a path the database holds, relative to the workspace) made absolute; refused
  // when it would leave the workspace.
  Result<std::string> InsideWorkspace(const std::string& rel) const;

  // The cache generation after checking `d` for commits since it last looked: a commit by
  // any process bumps it, so an entry made before the commit is not used after it.
  Result<uint64_t> Generation(db::Database& d);
  Result<nlohmann::json> Cached(const std::string& key, uint64_t generation,
                                const std::function<Result<nlohmann::json>()>& compute);
  Result<nlohmann::json> HistogramOf(db::Database& d, const db::FaceSelection& sel);
  Result<nlohmann::json> ViewsOf(db::Database& d);

  Workspace ws_;
  std::mutex cache_mu_;
  uint64_t generation_ = 0;
  std::map<const db::Database*, int64_t> data_version_;
  std::map<std::string, std::pair<uint64_t, nlohmann::json>> cache_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<db::Database>> free_[2];  // by Lane
};

}  // namespace moeforge::studio
