#include "crawler/blob_store.h"
#include "core/process.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
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
  MF_ASSIGN_OR_RETURN(bool linked, LinkUnnamed(path, data));
  if (!linked) MF_RETURN_IF_ERROR(WriteFileAtomic(path, data.data(), data.size(), /*fsync_file=*/false));
  return ++written_;
}

Result<bool> BlobStore::LinkUnnamed(const std::string& path, const std::string& data) {
  if (!tmpfile_ok_.load(std::memory_order_relaxed)) return false;
  std::string dir = path.substr(0, path.rfind('/'));
  int fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0 && errno == ENOENT) {
    // The folder is made on the first miss only: blobs/ab/cd, and blobs/ab when that is
    // missing too (plain mkdir: create_directories stats every level first).
    if (::mkdir(dir.c_str(), 0755) != 0 && errno == ENOENT) {
      ::mkdir(dir.substr(0, dir.rfind('/')).c_str(), 0755);
      ::mkdir(dir.c_str(), 0755);
    }
    fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
  }
  if (fd < 0) {
    // A file system without unnamed files (EOPNOTSUPP; EISDIR on old kernels): the
    // named temporary file, from now on. Any other error is WriteFileAtomic's to report.
    if (errno == EOPNOTSUPP || errno == EISDIR) tmpfile_ok_.store(false);
    return false;
  }
  if (!WriteAll(fd, data.data(), data.size())) {
    int e = errno;
    ::close(fd);
    return Status::IoError("writing " + path + ": " + std::strerror(e));
  }
  // Linking through /proc needs no privilege (AT_EMPTY_PATH does). A name already there
  // (the same blob from another thread, or a damaged copy of another size) or no /proc:
  // the rename path, which replaces.
  std::string self = "/proc/self/fd/" + std::to_string(fd);
  bool ok = ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0;
  int e = errno;
  if (::close(fd) != 0 && ok) return Status::IoError("writing " + path + ": " + std::strerror(errno));
  if (!ok && e == ENOENT) tmpfile_ok_.store(false);  // no /proc
  return ok;
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
  ++hurry_;
  cb_cv_.notify_all();
  idle_cv_.wait(l, [this] { return waiting_.empty() && !flushing_; });
  --hurry_;
}

void BlobStore::FlushLoop() {
  SetThreadName("mf-blob-flush");
  std::unique_lock<std::mutex> l(cb_mu_);
  while (true) {
    cb_cv_.wait(l, [this] { return stop_ || !waiting_.empty(); });
    if (waiting_.empty()) return;  // stopping, nothing left
    // Gather: one syncfs covers every blob renamed before it, and each costs CPU in
    // proportion to the file system's cached inodes, not to the blobs it covers (at
    // 3,000 images/s a flush per callback was ~700 syncfs per 2,000 images, ~5% of the
    // crawl's CPU). Rows wait at most kGatherMs more; WaitCallbacks() and stopping cut
    // the wait short.
    cb_cv_.wait_for(l, std::chrono::milliseconds(kGatherMs),
                    [this] { return stop_ || hurry_ > 0 || waiting_.size() >= kGatherBlobs; });
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
