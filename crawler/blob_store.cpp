#include "crawler/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace moeforge::crawler {

BlobStore::BlobStore(const Workspace& ws) : ws_(ws) {
  dir_fd_ = ::open(ws_.blobs_dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

BlobStore::~BlobStore() {
  {
    std::lock_guard<std::mutex> l(cb_mu_);
    stop_ = true;
  }
  cb_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

Result<int64_t> BlobStore::Put(const std::string& sha, const std::string& data) {
  std::string path = ws_.BlobPath(sha);
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && st.st_size == static_cast<off_t>(data.size())) {
    // Already there (an earlier run, or an identical file a moment ago): it may not be
    // flushed yet, so it still takes a ticket.
    return ++written_;
  }
  // No fsync per file: EnsureDurable() flushes them all at once before their rows commit.
  MF_RETURN_IF_ERROR(WriteFileAtomic(path, data.data(), data.size(), /*fsync_file=*/false));
  return ++written_;
}

Status BlobStore::EnsureDurable(int64_t ticket) {
  if (durable_.load() >= ticket) return Status::Ok();
  std::lock_guard<std::mutex> l(flush_mu_);
  if (durable_.load() >= ticket) return Status::Ok();
  int64_t covered = written_.load();  // every file renamed before this flush starts
  if (dir_fd_ < 0) return Status::IoError("cannot open " + ws_.blobs_dir());
  if (::syncfs(dir_fd_) != 0) return Status::IoError(std::string("syncfs on the blob store: ") + std::strerror(errno));
  durable_.store(covered);
  flushes_++;
  return Status::Ok();
}

void BlobStore::WhenDurable(int64_t ticket, std::function<void()> fn) {
  if (durable_.load() >= ticket) {
    fn();
    return;
  }
  {
    std::lock_guard<std::mutex> l(cb_mu_);
    if (!flusher_.joinable()) flusher_ = std::thread([this] { FlushLoop(); });
    waiting_.emplace_back(ticket, std::move(fn));
  }
  cb_cv_.notify_all();
}

void BlobStore::WaitCallbacks() {
  std::unique_lock<std::mutex> l(cb_mu_);
  idle_cv_.wait(l, [this] { return waiting_.empty() && !flushing_; });
}

void BlobStore::FlushLoop() {
  std::unique_lock<std::mutex> l(cb_mu_);
  while (true) {
    cb_cv_.wait(l, [this] { return stop_ || !waiting_.empty(); });
    if (waiting_.empty()) return;  // stopping, nothing left
    flushing_ = true;
    l.unlock();
    // Everything renamed so far, the waiting callbacks' blobs among them.
    bool ok = EnsureDurable(written_.load()).ok();
    l.lock();
    std::vector<std::pair<int64_t, std::function<void()>>> ready, later;
    for (auto& w : waiting_) (!ok || w.first <= durable_.load() ? ready : later).push_back(std::move(w));
    waiting_ = std::move(later);
    l.unlock();
    std::sort(ready.begin(), ready.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& r : ready) r.second();
    l.lock();
    flushing_ = false;
    idle_cv_.notify_all();
  }
}

}  // namespace moeforge::crawler
