// One progress printer for every stage (ninja style). On a smart terminal (stderr is a
// TTY and TERM is not "dumb") it rewrites one line with "\r...\x1B[K", elided to the
// terminal width; otherwise it prints a plain line at most every `plain_interval_s`.
// Output goes to stderr so stdout stays clean for summaries and --json.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace moeforge {

class Progress {
 public:
  // `stage` is the word shown first ("crawl"); total 0 means unknown.
  Progress(std::string stage, int64_t total = 0, double plain_interval_s = 5.0);
  ~Progress();

  void set_total(int64_t total);
  // Add to the done count and redraw if due. `extra` is shown after the rate
  // ("12 failed 3.1 MB/s"). Thread-safe.
  void Advance(int64_t n = 1, const std::string& extra = "");
  // Set the done count absolutely (for stages that track it themselves).
  void Update(int64_t done, const std::string& extra = "");
  // Clear the TTY line (the caller prints its summary next).
  void Finish();

  int64_t done() const { return done_; }
  double elapsed_s() const;
  // True when the progress line is being rewritten in place.
  bool smart_terminal() const { return smart_; }

 private:
  void MaybeDraw(bool force);
  std::string Render() const;

  std::string stage_;
  int64_t total_;
  int64_t done_ = 0;
  std::string extra_;
  double plain_interval_s_;
  bool smart_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  mutable std::mutex mu_;
};

// "0:24", "1:02:03".
std::string FormatDuration(double seconds);

}  // namespace moeforge
