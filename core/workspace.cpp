#include "core/workspace.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace moeforge {

Workspace::Workspace(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

std::string Workspace::BlobPath(const std::string& sha, bool relative) const {
  std::string rel = "blobs/" + sha.substr(0, 2) + "/" + sha.substr(2, 2) + "/" + sha;
  return relative ? rel : root_ + "/" + rel;
}

Status Workspace::CreateDirs() const {
  std::error_code ec;
  for (const auto& d : {root_, blobs_dir(), crops_dir(), runs_dir(), models_dir(), tmp_dir()}) {
    fs::create_directories(d, ec);
    if (ec) return Status::IoError("cannot create " + d + ": " + ec.message());
  }
  return Status::Ok();
}

Status Workspace::CheckExists() const {
  if (!fs::exists(db_path()))
    return Status::NotFound("no workspace at '" + root_ + "' (run `moeforge init " + root_ + "` first)");
  return Status::Ok();
}

bool WriteAll(int fd, const void* data, size_t n) {
  const char* c = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    c += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

Status WriteFileAtomic(const std::string& path, const void* data, size_t n, bool fsync_file) {
  static std::atomic<uint64_t> counter{0};
  std::string tmp = path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 && errno == ENOENT) {
    // The folder is made on the first miss only: a crawl writes thousands of files into
    // folders that mostly exist, and create_directories costs a stat per level each time.
    fs::path p(path);
    std::error_code ec;
    if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  }
  if (fd < 0) return Status::IoError("cannot create " + tmp + ": " + std::strerror(errno));
  if (!WriteAll(fd, data, n)) {
    int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Status::IoError("writing " + tmp + ": " + std::strerror(e));
  }
  if ((fsync_file && ::fsync(fd) != 0) || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Status::IoError("flushing " + tmp + ": " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Status::IoError("renaming into " + path + ": " + std::strerror(e));
  }
  return Status::Ok();
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::IoError("error reading " + path);
  return ss.str();
}

}  // namespace moeforge
