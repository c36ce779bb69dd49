#include "studio/generation_queue.h"

#include <cstdio>
#include <filesystem>

namespace fs = std::filesystem;

namespace moeforge::studio {

std::optional<Result<std::string>> GenerationQueue::Run(const std::function<Result<std::string>()>& job) {
  std::unique_lock<std::mutex> lock(mu_);
  // A job that finds the runner free does not wait; otherwise it takes a place in line.
  const bool runner_free = next_ticket_ == serving_;
  if (!runner_free && waiting_ >= max_waiting_) return std::nullopt;
  const uint64_t ticket = next_ticket_++;
  if (!runner_free) {
    ++waiting_;
    cv_.wait(lock, [&] { return serving_ == ticket; });
    --waiting_;
  }
  lock.unlock();
  Result<std::string> out = Status::Internal("generation did not run");
  try {
    out = job();
  } catch (const std::exception& e) {
    out = Status::Internal(std::string("generation failed: ") + e.what());
  }
  lock.lock();
  ++serving_;
  cv_.notify_all();
  return out;
}

int GenerationQueue::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_;
}

bool GenerationQueue::running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return next_ticket_ != serving_;
}

namespace {

// The file a generator comes from (trainer/run.cpp names them; a missing one is the
// trainer's error to report, with the steps it has).
std::string WeightsPath(const Workspace& ws, const std::string& run, int64_t snapshot) {
  if (snapshot < 0) return ws.runs_dir() + "/" + run + "/checkpoint.pt";
  char name[64];
  std::snprintf(name, sizeof name, "/snapshots/g_%08lld.pt", static_cast<long long>(snapshot));
  return ws.runs_dir() + "/" + run + name;
}

}  // namespace

Result<trainer::LoadedSampler*> SamplerCache::Get(const std::string& run, int64_t snapshot) {
  const std::string path = WeightsPath(ws_, run, snapshot);
  std::error_code ec1, ec2;
  auto mtime = fs::last_write_time(path, ec1);
  auto size = fs::file_size(path, ec2);
  auto key = std::make_pair(run, snapshot);
  auto it = entries_.find(key);
  if (it != entries_.end() && !ec1 && !ec2 && it->second.mtime == mtime && it->second.size == size) {
    it->second.used = ++clock_;
    return it->second.sampler.get();
  }
  trainer::SampleOptions o;
  o.run = run;
  o.snapshot = snapshot;
  auto loaded = trainer::LoadedSampler::Load(ws_, o);
  if (!loaded.ok()) {
    if (it != entries_.end()) entries_.erase(it);
    return loaded.status();
  }
  ++loads_;
  if (it == entries_.end() && entries_.size() >= capacity_ && !entries_.empty()) {
    auto oldest = entries_.begin();
    for (auto e = entries_.begin(); e != entries_.end(); ++e)
      if (e->second.used < oldest->second.used) oldest = e;
    entries_.erase(oldest);
  }
  Entry& e = entries_[key];
  e.sampler = std::move(loaded).value();
  e.mtime = mtime;
  e.size = ec2 ? 0 : size;
  e.used = ++clock_;
  return e.sampler.get();
}

}  // namespace moeforge::studio
