#include "crawler/work_pool.h"
#include "core/process.h"

namespace moeforge::crawler {

WorkPool::WorkPool(int threads) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

WorkPool::~WorkPool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkPool::Submit(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(mu_);
    q_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

void WorkPool::Wait() {
  std::unique_lock<std::mutex> l(mu_);
  idle_cv_.wait(l, [this] { return q_.empty() && busy_ == 0; });
}

int64_t WorkPool::queued() const {
  std::lock_guard<std::mutex> l(mu_);
  return static_cast<int64_t>(q_.size()) + busy_;
}

void WorkPool::Loop() {
  SetThreadName("mf-crawl-work");
  while (true) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [this] { return stop_ || !q_.empty(); });
      if (q_.empty()) return;  // stopping and drained
      fn = std::move(q_.front());
      q_.pop_front();
      busy_++;
    }
    fn();
    {
      std::lock_guard<std::mutex> l(mu_);
      busy_--;
      if (q_.empty() && busy_ == 0) idle_cv_.notify_all();
    }
  }
}

}  // namespace moeforge::crawler
