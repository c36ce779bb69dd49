// Turns fetched bytes into workspace state: the checks (X-Robots-Tag, magic bytes, header
// dimensions against the pixel limit, the site's MD5), the content address, exact and
// near duplicate decisions, the blob write and the database rows. Shared by every source.
//
// Of a group of near duplicates the best copy is kept: the most pixels, then lossless
// (PNG, GIF, BMP) over lossy, then the larger file, then the smaller SHA-256, so the kept
// copy does not depend on the order a site lists the group in. A copy better than the
// group's kept one replaces it: its blob is stored, and in the same transaction as its
// images row the old kept copy becomes a near duplicate of it (near_dup_of set, blob_path
// cleared) and every post and near duplicate that named the old copy names the new one;
// the old blob file is removed after the crawl (or by the orphan sweep of the next one,
// if this one is killed). Detect selects kept copies only, so it works on the best one.
//
// Decisions are made in sequence order (the frontier id), whatever order transfers finish
// in, so every run decides alike, interrupted or not. A blob is written (an unnamed file,
// then linked) and made durable (crawler/blob_store.h) before the row that names it is
// submitted; a duplicate's row is submitted after its original's, and a replacing copy's
// after the copy it replaces.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/workspace.h"
#include "crawler/blob_store.h"
#include "crawler/near_dup.h"
#include "crawler/work_pool.h"
#include "db/db.h"
#include "db/stage_run.h"

namespace moeforge::crawler {

struct FetchedItem {
  int64_t seq = 0;          // decision order; unique among Expect()ed items
  int64_t post_id = 0;
  int64_t frontier_id = 0;  // 0: not from the frontier (dir source)
  std::string expect_md5;   // the site's MD5 of the file, checked when 32 hex digits
  int http_status = 0;
  int attempts = 0;
  std::string content_type;
  std::string x_robots_tag;
  std::string body;
  std::string fail_reason;  // set when the fetch itself failed
  std::string fail_detail;
};

// Counts shared by the sources and the ingestor (thread-safe).
class CrawlCounters {
 public:
  void Stored() { stored_++; }
  // A copy stored in this run was replaced by a better one: it counts as a near duplicate.
  void Replaced();
  void Skipped(const std::string& why, int64_t n = 1);
  void Failed(const std::string& reason);
  void Bytes(int64_t n) { bytes_ += n; }
  void Page() { pages_++; }
  int64_t stored() const { return stored_; }
  int64_t skipped() const { return skipped_; }
  int64_t failed() const { return failed_; }
  int64_t bytes() const { return bytes_; }
  int64_t pages() const { return pages_; }
  int64_t finished() const { return stored_ + skipped_ + failed_; }
  void FillSummary(db::StageSummary& s) const;

 private:
  std::atomic<int64_t> stored_{0}, skipped_{0}, failed_{0}, bytes_{0}, pages_{0};
  mutable std::mutex mu_;
  std::map<std::string, int64_t> failures_, skips_;
};

class Ingestor {
 public:
  struct Options {
    int64_t max_pixels = 50'000'000;
    int near_dup_threshold = 4;  // <0: off
    bool honour_x_robots = true;
  };
  // Blob writes (which wait in fsync) run on `pool` when given, so that one thread
  // deciding a run of items does not write their blobs one after another.
  Ingestor(const Workspace& ws, db::BatchWriter& writer, Options opts, CrawlCounters& counters,
           WorkPool* pool = nullptr);

  // Loads the images already in the workspace (for dedupe and the near-dup index).
  Status Load(db::Database& db);
  // Announces an item that will be Process()ed (or Abandon()ed) later.
  void Expect(int64_t seq);
  // Takes a finished fetch (or a local file) through checks, dedupe and storage.
  // Thread-safe; blocks only on the item's own work.
  void Process(FetchedItem item);
  // Items Expect()ed but not yet decided.
  int64_t outstanding() const;
  int64_t stored_originals() const;
  int64_t blob_flushes() const { return blobs_.flushes(); }
  // Kept copies replaced by a better one in this run.
  int64_t superseded() const;
  // Waits until the rows of every blob stored so far are submitted (they wait for the
  // syncfs that makes their blob durable); call after the pool is idle, before the
  // writer's last Flush().
  void WaitStored();
  // Removes the blob files of replaced copies; call after every row is committed.
  void RemoveSupersededBlobs();

 private:
  struct Analysis {
    std::string fail_reason, fail_detail;
    bool skip = false;  // fail_reason is a format this build cannot decode: skipped, not failed
    std::string sha, format;
    int64_t width = 0, height = 0;
    uint64_t phash = 0;
    bool have_phash = false;
  };
  // What decides which copy of a group is kept.
  struct Quality {
    int64_t pixels = 0;
    bool lossless = false;
    int64_t bytes = 0;
  };
  struct Claim {
    std::string link;    // the kept copy's sha (itself when this is the kept copy)
    int distance = 0;    // dHash distance to the kept copy
    bool submitted = false;  // its images row is queued in the writer
    // Rows waiting for this one's; called with false when it failed to store.
    std::vector<std::function<void(bool)>> parked;
    uint64_t phash = 0;
    bool have_phash = false;
    bool this_run = false;             // decided in this run (not loaded)
    Quality quality;                   // kept copies
    std::vector<std::string> members;  // kept copies: the near duplicates linked to it
  };
  struct Ready {
    FetchedItem item;
    Analysis a;
    std::string replaces;  // the kept copy this one replaces ("" none)
  };
  static bool Better(const Quality& a, const std::string& sha_a, const Quality& b, const std::string& sha_b);
  static Quality QualityOf(const Analysis& a, int64_t bytes);
  Analysis Analyse(const FetchedItem& item);
  // Under mu_: decides one item; may append a blob store to `stores`.
  void DecideLocked(Ready r, std::vector<Ready>& stores);
  void StoreBlob(Ready r);
  // Submits a stored copy's rows (and, when it replaces one, the re-pointing).
  void SubmitStoredLocked(std::shared_ptr<FetchedItem> item, const Analysis& a, int64_t ticket,
                          const std::string& replaces);
  // Runs `fn` once `sha`'s images row is submitted (now, if it is).
  void WhenSubmittedLocked(const std::string& sha, std::function<void(bool)> fn);
  // Records the item as failed with `reason` (or, with `skip`, as skipped: never retried).
  void SubmitFailLocked(const FetchedItem& item, const std::string& reason, const std::string& detail,
                        bool skip = false);
  void SubmitLinkLocked(const FetchedItem& item, const Analysis& a, const std::string& link, int distance,
                        bool insert_image_row);
  void MarkSubmittedLocked(const std::string& sha);

  Workspace ws_;
  db::BatchWriter& writer_;
  Options opts_;
  CrawlCounters& counters_;
  WorkPool* pool_;
  BlobStore blobs_;
  mutable std::mutex mu_;
  std::set<int64_t> outstanding_;
  std::map<int64_t, Ready> ready_;
  std::unordered_map<std::string, Claim> claims_;
  NearDupIndex index_;
  std::vector<std::string> superseded_blobs_;  // relative paths, removed after the crawl
  int64_t superseded_ = 0;
};

}  // namespace moeforge::crawler
