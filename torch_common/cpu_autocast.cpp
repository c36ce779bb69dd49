#include "torch_common/cpu_autocast.h"

#include <fstream>
#include <string>

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace moeforge::torch_common {

namespace {
// LibTorch 2.4 replaced the per-device autocast switches with ones taking the device
// (the old names remain, deprecated); 1.13 (Debian 12) has only the old ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool CpuAutocastEnabled() { return at::autocast::is_autocast_enabled(at::kCPU); }
void SetCpuAutocast(bool on) {
  at::autocast::set_autocast_enabled(at::kCPU, on);
  if (on) at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
}
#else
bool CpuAutocastEnabled() { return at::autocast::is_cpu_enabled(); }
void SetCpuAutocast(bool on) {
  at::autocast::set_cpu_enabled(on);
  if (on) at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
}
#endif
}  // namespace

bool CpuHasBf16() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("flags", 0) == 0)
      return line.find(" avx512_bf16") != std::string::npos || line.find(" amx_bf16") != std::string::npos;
  return false;
}

CpuAutocast::CpuAutocast(bool on) : on_(on) {
  if (!on_) return;
  prev_ = CpuAutocastEnabled();
  SetCpuAutocast(true);
  at::autocast::increment_nesting();
}

CpuAutocast::~CpuAutocast() {
  if (!on_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  SetCpuAutocast(prev_);
}

}  // namespace moeforge::torch_common
