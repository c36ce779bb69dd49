// Content-addressed blobs with group commit. Put() writes a blob under its SHA-256
// (temporary file in the same folder, then rename: readers never see a partial file)
// without an fsync of its own; EnsureDurable(g) makes every blob written up to ticket g
// durable with ONE syncfs for all of them, called by the database op that names the blob
// just before it commits. So a row never outlives its blob, even across a power cut, and
// a crawl pays one flush per batch of rows instead of one per file (which is what bounds
// a per-file-fsync writer on ordinary disks: tens of milliseconds each).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

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
  int64_t flushes() const { return flushes_; }

 private:
  Workspace ws_;
  int dir_fd_ = -1;
  std::atomic<int64_t> written_{0};  // tickets handed out (renamed files)
  std::atomic<int64_t> durable_{0};  // tickets covered by a finished flush
  std::atomic<int64_t> flushes_{0};
  std::mutex flush_mu_;
};

}  // namespace moeforge::crawler
