// The on-disk layout of one workspace (DESIGN.md):
//   WS/moeforge.db  WS/blobs/ab/cd/<sha256>  WS/crops/...  WS/runs/<name>/
#pragma once

#include <string>

#include "core/status.h"

namespace moeforge {

class Workspace {
 public:
  explicit Workspace(std::string root);

  const std::string& root() const { return root_; }
  std::string db_path() const { return root_ + "/moeforge.db"; }
  std::string blobs_dir() const { return root_ + "/blobs"; }
  std::string crops_dir() const { return root_ + "/crops"; }
  std::string runs_dir() const { return root_ + "/runs"; }
  std::string models_dir() const { return root_ + "/models"; }
  std::string tmp_dir() const { return root_ + "/tmp"; }
  // blobs/ab/cd/<sha256>; relative to the root when `relative`.
  std::string BlobPath(const std::string& sha256, bool relative = false) const;
  // An absolute path for a path stored relative to the workspace.
  std::string Abs(const std::string& relative) const { return root_ + "/" + relative; }

  // Creates the folders (idempotent). Does not touch the database.
  Status CreateDirs() const;
  // NotFound with an actionable message when WS has no moeforge.db.
  Status CheckExists() const;

 private:
  std::string root_;
};

// Writes `data` to `path` atomically: a temporary file in the same folder, fsync,
// rename, so a kill leaves the old file or the new one, never half of one. Parent
// folders are created. With `fsync_file` false the fsync is skipped: for files written
// many per second whose writer makes them durable in bulk afterwards (syncfs), as the
// crawler's blobs and the detector's crops are.
Status WriteFileAtomic(const std::string& path, const void* data, size_t n, bool fsync_file = true);
// Writes all `n` bytes to `fd`, past short writes and EINTR; false with errno set.
bool WriteAll(int fd, const void* data, size_t n);
Result<std::string> ReadFile(const std::string& path);

}  // namespace moeforge
