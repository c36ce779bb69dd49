// Content-addressed blobs with group commit. Put() writes a blob under its SHA-256 (an
// unnamed file in its folder, then linked; or a temporary file, then renamed: readers
// never see a partial file) without an fsync of its own; EnsureDurable(g) makes every
// blob written up to ticket g durable with ONE syncfs for all of them, called by the
// database op that names the blob just before it commits. So a row never outlives its
// blob, even across a power cut, and a crawl pays one flush per batch of rows instead of
// one per file (which is what bounds a per-file-fsync writer on ordinary disks: tens of
// milliseconds each).
//
// WhenDurable(g, fn) runs `fn` (which submits the rows) on the store's flush thread once a
// syncfs has covered ticket g (the thread gathers callbacks for up to 10 ms first), so
// that the database writer does not wait in syncfs itself: a writer waiting there also
// held back every row queued behind the blob's (the posts of the next page, and so the
// next fetches). The rows still call EnsureDurable(), which then finds the ticket covered.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/workspace.h"

namespace moeforge::crawler {

class BlobStore {
 public:
  explicit BlobStore(const Workspace& ws);
  ~BlobStore();
  BlobStore(const BlobStore&) = delete;
  BlobStore& operator=(const BlobStore&) = delete;

  // Writes `data` as the blob `sha` (a no-op when it exists); returns its ticket.
  Result<int64_t> Put(const std::string& sha, const std::string& data);
  // Blocks until every blob with a ticket <= `ticket` is on stable storage.
  Status EnsureDurable(int64_t ticket);
  // Runs `fn` once every blob with a ticket <= `ticket` is on stable storage: at once when
  // it is, otherwise on the flush thread after the syncfs that covers it (one syncfs for
  // every blob written before it starts). After a failed syncfs `fn` runs all the same;
  // the row's own EnsureDurable() then reports the failure.
  void WhenDurable(int64_t ticket, std::function<void()> fn);
  // Blocks until every WhenDurable() callback has run.
  void WaitCallbacks();
  int64_t flushes() const { return flushes_; }

 private:
  void FlushLoop();
  // Writes `data` to an unnamed file in the blob's folder (O_TMPFILE) and links it at
  // `path`: one directory entry made, none renamed or removed, and nothing left behind by a
  // kill. False (nothing written) where that cannot be done: the caller then writes a named
  // temporary file and renames it.
  Result<bool> LinkUnnamed(const std::string& path, const std::string& data);

  Workspace ws_;
  int dir_fd_ = -1;
  std::atomic<int64_t> written_{0};  // tickets handed out (renamed files)
  std::atomic<int64_t> durable_{0};  // tickets covered by a finished flush
  std::atomic<int64_t> flushes_{0};
  std::mutex flush_mu_;
  // WhenDurable(): callbacks waiting for a flush, whether a flush is running them now.
  std::mutex cb_mu_;
  std::condition_variable cb_cv_, idle_cv_;
  std::vector<std::pair<int64_t, std::function<void()>>> waiting_;
  bool flushing_ = false, stop_ = false;
  std::atomic<bool> tmpfile_ok_{true};  // O_TMPFILE and /proc links work here
  int hurry_ = 0;  // WaitCallbacks() callers: flush without gathering
  // The flush thread waits up to kGatherMs, or until kGatherBlobs callbacks wait, before
  // its syncfs.
  static constexpr int kGatherMs = 10;
  static constexpr size_t kGatherBlobs = 64;
  std::thread flusher_;
};

}  // namespace moeforge::crawler
