// The crawl stage: opens the workspace, picks the source (crawler/source.h) and runs it
// into a Frontier (crawler/frontier.h). See crawler.h for the contract.
#include "crawler/crawler.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/shard.h"
#include "crawler/frontier.h"
#include "crawler/near_dup.h"
#include "crawler/source.h"
#include "db/db.h"

namespace moeforge::crawler {

namespace fs = std::filesystem;

Result<std::unique_ptr<PostSource>> MakeSource(const CrawlOptions& o) {
  if (o.source == "dir") return MakeDirSource();
  if (o.source == "urls") return MakeUrlListSource();
  if (o.source == "html") return MakeHtmlSource();
  MF_ASSIGN_OR_RETURN(Dialect d, DialectFromName(o.source));
  return MakeBooruSource(d);
}

namespace {

// Removes blobs that no images row names, and temporary files: what a crawl killed
// between writing a blob and committing its row leaves behind.
Status SweepOrphanBlobs(const Workspace& ws, db::Database& db, int64_t* removed) {
  std::unordered_set<std::string> known;
  MF_ASSIGN_OR_RETURN(db::Stmt st, db.Prepare("SELECT sha256 FROM images WHERE blob_path IS NOT NULL"));
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    known.insert(st.Text(0));
  }
  std::error_code ec;
  if (!fs::exists(ws.blobs_dir(), ec)) return Status::Ok();
  std::vector<fs::path> doomed;
  for (auto it = fs::recursive_directory_iterator(ws.blobs_dir(), ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (ec) break;
    if (!it->is_regular_file()) continue;
    std::string name = it->path().filename().string();
    // A metadata sidecar (<sha256>.json, --write-metadata) lives as long as its blob.
    std::string key = name;
    if (key.size() > 5 && key.compare(key.size() - 5, 5, ".json") == 0) key.resize(key.size() - 5);
    if (name.find(".tmp.") != std::string::npos || !known.count(key)) doomed.push_back(it->path());
  }
  for (const auto& p : doomed) {
    fs::remove(p, ec);
    if (!ec) (*removed)++;
  }
  return Status::Ok();
}

Status Validate(const CrawlOptions& o) {
  static const char* kSources[] = {"danbooru", "moebooru", "gelbooru", "urls", "html", "dir"};
  if (std::find_if(std::begin(kSources), std::end(kSources), [&](const char* s) { return o.source == s; }) ==
      std::end(kSources))
    return Status::InvalidArgument("--source must be one of danbooru|moebooru|gelbooru|urls|html|dir, not '" +
                                   o.source + "'");
  if (o.url.empty()) return Status::InvalidArgument("--url is required");
  bool api = o.source == "danbooru" || o.source == "moebooru" || o.source == "gelbooru";
  if ((api || o.source == "html") && !IsHttpUrl(o.url))
    return Status::InvalidArgument("--url must be an http(s) URL for --source " + o.source);
  if (o.limit < 0) return Status::InvalidArgument("--limit must be >= 0");
  MF_RETURN_IF_ERROR(Shard::Parse(o.shard).status());
  if (o.concurrency < 1 || o.concurrency > 256) return Status::InvalidArgument("--concurrency must be in 1..256");
  if (o.rate < 0) return Status::InvalidArgument("--rate must be >= 0");
  if (o.robots != "auto" && o.robots != "obey" && o.robots != "ignore")
    return Status::InvalidArgument("--robots must be auto|obey|ignore");
  if (o.max_bytes <= 0) return Status::InvalidArgument("--max-bytes must be > 0");
  if (o.max_pixels <= 0) return Status::InvalidArgument("--max-pixels must be > 0");
  if (o.near_dup_threshold > NearDupIndex::kMaxThreshold)
    return Status::InvalidArgument("--near-dup-threshold must be <= " + std::to_string(NearDupIndex::kMaxThreshold));
  if (o.timeout_s <= 0) return Status::InvalidArgument("--timeout must be > 0");
  if (o.retries < 0) return Status::InvalidArgument("--retries must be >= 0");
  if (o.depth < 0) return Status::InvalidArgument("--depth must be >= 0");
  return Status::Ok();
}

}  // namespace

Result<db::StageSummary> Crawl(const Workspace& ws, const CrawlOptions& opts) {
  auto t0 = std::chrono::steady_clock::now();
  MF_RETURN_IF_ERROR(Validate(opts));
  MF_RETURN_IF_ERROR(ws.CheckExists());
  MF_RETURN_IF_ERROR(ws.CreateDirs());
  CrawlOptions o = opts;
  if (o.source == "dir") {
    std::error_code ec;
    o.url = fs::weakly_canonical(o.url, ec).string();
  } else if (o.source == "urls") {
    std::error_code ec;
    o.url = fs::weakly_canonical(o.url, ec).string();
  } else if (o.source != "html") {
    o.url = StripSlash(o.url);
  }

  // One crawl per workspace at a time: a second would race on blobs and the frontier.
  std::string lock_path = ws.root() + "/crawl.lock";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) return Status::IoError("cannot open " + lock_path + ": " + std::strerror(errno));
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd);
    return Status::InvalidArgument("another crawl is running in " + ws.root() + " (" + lock_path + " is locked)");
  }
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{lock_fd};

  MF_ASSIGN_OR_RETURN(auto wdb, db::OpenWorkspace(ws));
  MF_ASSIGN_OR_RETURN(auto rdb, db::Database::Open(ws.db_path()));

  // A crawl that never finished (killed) may have left a blob without its row.
  MF_ASSIGN_OR_RETURN(int64_t unfinished,
                      wdb->QueryInt("SELECT count(*) FROM stage_runs WHERE stage='crawl' AND finished_at IS NULL"));
  if (unfinished > 0) {
    int64_t removed = 0;
    MF_RETURN_IF_ERROR(SweepOrphanBlobs(ws, *wdb, &removed));
    MF_RETURN_IF_ERROR(wdb->Exec("UPDATE stage_runs SET finished_at='" + db::NowIso() +
                                 "', failures_json='{\"interrupted\":1}' WHERE stage='crawl' AND finished_at IS NULL"));
    if (removed)
      std::fprintf(stderr, "crawl: removed %lld unreferenced blob file(s) left by an interrupted crawl\n",
                   static_cast<long long>(removed));
  }

  nlohmann::json params = {{"source", o.source}, {"url", o.url},          {"tags", o.tags},
                           {"limit", o.limit},   {"concurrency", o.concurrency}, {"rate", o.rate},
                           {"robots", o.robots}, {"max_bytes", o.max_bytes}, {"max_pixels", o.max_pixels},
                           {"near_dup_threshold", o.near_dup_threshold}, {"variant", o.variant},
                           {"min_size", o.min_size}, {"aspect", o.aspect}, {"rating", o.rating},
                           {"exclude_tags", o.exclude_tags}, {"ext", o.ext},
                           {"max_posts_per_query", o.max_posts_per_query}};
  MF_ASSIGN_OR_RETURN(int64_t run_id, db::BeginStageRun(*wdb, "crawl", params));
  {
    MF_ASSIGN_OR_RETURN(db::Stmt st, wdb->Prepare("INSERT OR IGNORE INTO sources(kind, url) VALUES(?,?)"));
    MF_RETURN_IF_ERROR(st.BindAll(o.source, o.url).Run());
  }
  int64_t source_id = 0;
  {
    MF_ASSIGN_OR_RETURN(db::Stmt st, wdb->Prepare("SELECT id FROM sources WHERE kind=? AND url=?"));
    st.BindAll(o.source, o.url);
    MF_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return Status::Internal("source row missing");
    source_id = st.Int(0);
  }

  // Transient failures of earlier runs (timeouts, cut transfers, 5xx, 429) get another
  // chance; permanent ones (404, corrupt, too large, noai...) stay as they are.
  if (o.source != "dir") {
    MF_RETURN_IF_ERROR(wdb->Transaction([&]() -> Status {
      const std::string transient =
          "f.source_id=? AND f.kind='image' AND f.state='failed' AND f.attempts < 20 AND "
          "(f.error LIKE 'timeout%' OR f.error LIKE 'truncated%' OR f.error LIKE 'connect%' OR "
          "f.error LIKE 'transport%' OR f.error LIKE 'http_5%' OR f.error LIKE 'http_429%' OR "
          "f.error LIKE 'challenge%')";
      MF_ASSIGN_OR_RETURN(db::Stmt a, wdb->Prepare("UPDATE posts SET state='pending', error=NULL WHERE id IN "
                                                   "(SELECT f.post_id FROM frontier f WHERE " + transient + ")"));
      MF_RETURN_IF_ERROR(a.Bind(1, source_id).Run());
      MF_ASSIGN_OR_RETURN(db::Stmt b, wdb->Prepare("UPDATE frontier AS f SET state='queued' WHERE " + transient));
      return b.Bind(1, source_id).Run();
    }));
  }

  db::StageSummary sum;
  sum.stage = "crawl";
  sum.params = params;
  MF_ASSIGN_OR_RETURN(std::unique_ptr<PostSource> source, MakeSource(o));
  Status s;
  {
    Frontier frontier(ws, o, *wdb, *rdb, source_id);
    s = frontier.Run(*source);
    frontier.DropWriter();
    frontier.FillSummary(sum);
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MF_RETURN_IF_ERROR(db::FinishStageRun(*wdb, run_id, sum));
  if (!s.ok()) return s;
  return sum;
}

}  // namespace moeforge::crawler
