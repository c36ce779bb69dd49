// A fixed set of worker threads for the crawl's per-file work (hashing, decoding for the
// perceptual hash, writing blobs). More threads than cores on purpose: a good part of the
// time is spent waiting in fsync.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moeforge::crawler {

class WorkPool {
 public:
  explicit WorkPool(int threads);
  ~WorkPool();  // runs what is queued, then joins
  void Submit(std::function<void()> fn);
  // Blocks until every submitted task has finished.
  void Wait();
  int64_t queued() const;

 private:
  void Loop();
  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<std::function<void()>> q_;
  int busy_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace moeforge::crawler
