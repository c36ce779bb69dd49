#include "core/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace moeforge {

namespace {
bool IsSmartTerminal() {
  if (!isatty(STDERR_FILENO)) return false;
  const char* term = std::getenv("TERM");
  return term != nullptr && std::strcmp(term, "dumb") != 0;
}

size_t TerminalWidth() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}
}  // namespace

std::string FormatDuration(double seconds) {
  if (seconds < 0 || seconds > 1e7) return "?";
  auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

Progress::Progress(std::string stage, int64_t total, double plain_interval_s)
    : stage_(std::move(stage)),
      total_(total),
      plain_interval_s_(plain_interval_s),
      smart_(IsSmartTerminal()),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { Finish(); }

void Progress::set_total(int64_t total) {
  std::lock_guard<std::mutex> lock(mu_);
  total_ = total;
}

void Progress::Advance(int64_t n, const std::string& extra) {
  std::lock_guard<std::mutex> lock(mu_);
  done_ += n;
  if (!extra.empty()) extra_ = extra;
  MaybeDraw(false);
}

void Progress::Update(int64_t done, const std::string& extra) {
  std::lock_guard<std::mutex> lock(mu_);
  done_ = done;
  if (!extra.empty()) extra_ = extra;
  MaybeDraw(false);
}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::Render() const {
  double el = elapsed_s();
  double rate = el > 0 ? done_ / el : 0.0;
  std::string line = total_ > 0 ? fmt::format("[{} {}/{} {:.1f}/s", stage_, done_, total_, rate)
                                : fmt::format("[{} {} {:.1f}/s", stage_, done_, rate);
  if (total_ > 0 && rate > 0 && done_ < total_) line += " eta " + FormatDuration((total_ - done_) / rate);
  line += "]";
  if (!extra_.empty()) line += " " + extra_;
  return line;
}

void Progress::MaybeDraw(bool force) {
  if (finished_) return;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (smart_) {
    if (!force && since < 0.1) return;
    std::string line = Render();
    size_t width = TerminalWidth();
    if (line.size() >= width && width > 4) line = line.substr(0, width - 4) + "...";
    std::fprintf(stderr, "\r%s\x1B[K", line.c_str());
    std::fflush(stderr);
  } else {
    if (!force && since < plain_interval_s_) return;
    std::fprintf(stderr, "%s\n", Render().c_str());
  }
  last_draw_ = now;
}

void Progress::Finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  if (smart_) {
    std::fprintf(stderr, "\r\x1B[K");
    std::fflush(stderr);
  }
  finished_ = true;
}

}  // namespace moeforge
