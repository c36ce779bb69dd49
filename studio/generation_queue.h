// Generations for the studio (private to studio/): one at a time, with a bounded number
// waiting (more answer 503 rather than pile up), and each run's generator read from disk
// once and kept until its checkpoint or snapshot file changes.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "core/status.h"
#include "core/workspace.h"
#include "trainer/trainer.h"

namespace moeforge::studio {

// Admission and order: at most one job runs; at most `max_waiting` wait for it, first come
// first served; a job beyond that is refused at once.
class GenerationQueue {
 public:
  explicit GenerationQueue(int max_waiting) : max_waiting_(max_waiting) {}
  // Runs `job` when its turn comes and returns its result; nullopt (not run) when
  // `max_waiting` jobs already wait.
  std::optional<Result<std::string>> Run(const std::function<Result<std::string>()>& job);
  int waiting() const;
  bool running() const;  // a job is running now

 private:
  const int max_waiting_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t next_ticket_ = 0;  // handed to the next job admitted
  uint64_t serving_ = 0;      // the ticket whose turn it is
  int waiting_ = 0;           // admitted, not yet running
};

// Loaded generators by (run, snapshot), each with the modification time and size of the
// file it came from; Get() reads the file again only when those changed. Keeps the
// `capacity` most recently used. Not thread-safe: used under the GenerationQueue.
class SamplerCache {
 public:
  SamplerCache(Workspace ws, size_t capacity) : ws_(std::move(ws)), capacity_(capacity) {}
  Result<trainer::LoadedSampler*> Get(const std::string& run, int64_t snapshot);
  int64_t loads() const { return loads_.load(); }  // times a generator was read from disk (any thread)

 private:
  struct Entry {
    std::unique_ptr<trainer::LoadedSampler> sampler;
    std::filesystem::file_time_type mtime;
    uintmax_t size = 0;
    uint64_t used = 0;
  };
  Workspace ws_;
  size_t capacity_;
  std::map<std::pair<std::string, int64_t>, Entry> entries_;
  uint64_t clock_ = 0;
  std::atomic<int64_t> loads_{0};
};

}  // namespace moeforge::studio
