// LibTorch helpers shared by the tagger's torch backend and the trainer (moeforge_torch_common):
// CPU bf16 autocast and whether this CPU does bf16 natively.
#pragma once

namespace moeforge::torch_common {

// True where the CPU has native bf16 arithmetic (AVX512-BF16 or AMX); elsewhere autocast
// emulates it and runs slower than fp32.
bool CpuHasBf16();

// Turns CPU bf16 autocast on for its scope (the C++ twin of torch.autocast("cpu",
// dtype=torch.bfloat16)); does nothing when constructed with false.
class CpuAutocast {
 public:
  explicit CpuAutocast(bool on);
  ~CpuAutocast();
  CpuAutocast(const CpuAutocast&) = delete;
  CpuAutocast& operator=(const CpuAutocast&) = delete;

 private:
  bool on_;
  bool prev_ = false;
};

}  // namespace moeforge::torch_common
