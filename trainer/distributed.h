// Data-parallel training over PyTorch's c10d (private to trainer/): the ranks meet in a
// TCPStore at MASTER_ADDR:MASTER_PORT (torchrun's variables), talk through a Gloo process
// group on CPU (NCCL in CUDA builds configured with MOEFORGE_C10D_NCCL), and give
// TrainStep the StepComm it needs. c10d's own headers stay in distributed.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/status.h"
#include "trainer/gan.h"

namespace moeforge::trainer {

// Where this process stands among the ranks: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT. Without WORLD_SIZE: one rank (world 1). An incomplete or inconsistent set
// is an error naming the variable.
struct RankEnv {
  int rank = 0;
  int world = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
};
Result<RankEnv> RankEnvFromEnvironment();

class ProcessGroupComm : public StepComm {
 public:
  // Rendezvous (rank 0 serves the TCPStore) and a process group for tensors on `device`.
  // `timeout` bounds every collective: a rank that stops answering makes the others fail
  // within it; one that dies (its sockets close) fails them at once.
  static Result<std::unique_ptr<ProcessGroupComm>> Connect(const RankEnv& env, const torch::Device& device,
                                                           std::chrono::seconds timeout);
  ~ProcessGroupComm() override;

  int world() const override { return world_; }
  int rank() const override { return rank_; }
  std::string backend() const;
  void AllReduceSum(std::vector<torch::Tensor>& tensors) override;
  void AverageGradients(const std::vector<torch::Tensor>& params) override;
  torch::Tensor SumAcrossRanks(const torch::Tensor& x) override;
  // Seconds this rank has spent inside collectives (sending, reducing, and waiting for
  // slower ranks): the communication share of a step, measured.
  double collective_seconds() const { return collective_s_; }
  // Rank 0's values into every rank's tensors (any layout), in place.
  void Broadcast(const std::vector<torch::Tensor>& tensors);

  // A word from rank 0 to the others through the store (e.g. "ok" once the run's data
  // is ready, or the error that stopped it); the others wait up to `timeout` for it.
  void Publish(const std::string& key, const std::string& value);
  Result<std::string> Await(const std::string& key, std::chrono::seconds timeout);

 private:
  struct Impl;
  ProcessGroupComm(int rank, int world, std::unique_ptr<Impl> impl);
  int rank_, world_;
  double collective_s_ = 0;
  std::unique_ptr<Impl> impl_;
};

// An exception's message without c10's backtrace (what a user reads).
std::string ErrorText(const std::exception& e);

// Every parameter and buffer of `m` (as the optimiser and checkpoint see them).
std::vector<torch::Tensor> ModuleState(const torch::nn::Module& m);

}  // namespace moeforge::trainer
