#include "crawler/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace moeforge::crawler {

BlobStore::BlobStore(const Workspace& ws) : ws_(ws) {
  dir_fd_ = ::open(ws_.blobs_dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

BlobStore::~BlobStore() {
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
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(tmp_counter_++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError("cannot create " + tmp + ": " + std::strerror(errno));
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t w = ::write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Status::IoError("writing " + tmp + ": " + std::strerror(e));
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  if (::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Status::IoError("storing " + path + ": " + std::strerror(e));
  }
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

}  // namespace moeforge::crawler
