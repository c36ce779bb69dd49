// Turns fetched bytes into workspace state: the checks (X-Robots-Tag, magic bytes, header
// dimensions against the pixel limit, the site's MD5), the content address, exact and
// near duplicate decisions, the blob write and the database rows. Shared by every source.
//
// Decisions are made in sequence order (the frontier id), whatever order transfers finish
// in, so which of two duplicates becomes the stored original is the same in every run,
// interrupted or not. A blob is written (temporary file + rename) before the row that
// names it is submitted, and made durable (crawler/blob_store.h) before that row commits;
// a duplicate's row is submitted after its original's.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
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
  void Skipped(const std::string& why);
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

 private:
  struct Analysis {
    std::string fail_reason, fail_detail;
    std::string sha, format;
    int64_t width = 0, height = 0;
    uint64_t phash = 0;
    bool have_phash = false;
  };
  struct Claim {
    std::string link;    // the stored original's sha (itself when this is an original)
    int distance = 0;    // to the original
    bool submitted = false;  // its images row is queued in the writer
    std::vector<std::function<void()>> parked;  // rows waiting for this original's
  };
  struct Ready {
    FetchedItem item;
    Analysis a;
  };
  Analysis Analyse(const FetchedItem& item);
  // Under mu_: decides one item; may append a blob store to `stores`.
  void DecideLocked(Ready r, std::vector<Ready>& stores);
  void StoreBlob(Ready r);
  void SubmitFailLocked(const FetchedItem& item, const std::string& reason, const std::string& detail);
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
};

}  // namespace moeforge::crawler
