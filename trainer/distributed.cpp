// c10d rendezvous and collectives for data-parallel training (see distributed.h).
#include "trainer/distributed.h"

#include <algorithm>
#include <cstdlib>

#include <torch/version.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef MOEFORGE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace moeforge::trainer {

namespace {

Result<int> EnvInt(const char* name, int fallback, bool required) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    if (required) return Status::InvalidArgument(std::string(name) + " is not set (a rank needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)");
    return fallback;
  }
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > 1 << 30) return Status::InvalidArgument(std::string(name) + "=" + v + " is not a count");
  return static_cast<int>(x);
}

// Gradients (or state) are reduced through flat buffers of at most this many elements:
// a few large collectives instead of one per tensor (DDP's buckets, 25 MB there).
constexpr int64_t kBucketElems = int64_t(4) << 20;

// Adds the wall time of its scope to a counter.
class Timed {
 public:
  explicit Timed(double& total) : total_(total), t0_(std::chrono::steady_clock::now()) {}
  ~Timed() { total_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }

 private:
  double& total_;
  std::chrono::steady_clock::time_point t0_;
};

// Copies `tensors` into flat buckets (one dtype each), runs `collective` on each bucket
// and copies the results back. Works for any memory layout.
template <typename Collective>
void ThroughBuckets(const std::vector<torch::Tensor>& tensors, Collective collective) {
  size_t i = 0;
  while (i < tensors.size()) {
    std::vector<torch::Tensor> group{tensors[i]};
    int64_t elems = tensors[i].numel();
    size_t j = i + 1;
    for (; j < tensors.size() && tensors[j].scalar_type() == tensors[i].scalar_type() &&
           tensors[j].device() == tensors[i].device() && elems + tensors[j].numel() <= kBucketElems;
         ++j) {
      group.push_back(tensors[j]);
      elems += tensors[j].numel();
    }
    std::vector<torch::Tensor> flat_parts;
    for (auto& t : group) flat_parts.push_back(t.reshape({-1}));
    std::vector<torch::Tensor> bucket{torch::cat(flat_parts)};
    collective(bucket);
    int64_t off = 0;
    for (auto& t : group) {
      t.copy_(bucket[0].narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
    i = j;
  }
}

// x summed over ranks; its gradient is the ranks' gradients summed (each rank's loss
// depends on every rank's x through the shared statistics).
struct SumAcrossRanksFn : torch::autograd::Function<SumAcrossRanksFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, int64_t comm) {
    ctx->saved_data["comm"] = comm;
    std::vector<torch::Tensor> v{x.detach().clone()};
    reinterpret_cast<ProcessGroupComm*>(comm)->AllReduceSum(v);
    return v[0];
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* comm = reinterpret_cast<ProcessGroupComm*>(ctx->saved_data["comm"].toInt());
    std::vector<torch::Tensor> v{grads[0].contiguous().clone()};
    comm->AllReduceSum(v);
    return {v[0], torch::Tensor()};
  }
};

}  // namespace

Result<RankEnv> RankEnvFromEnvironment() {
  RankEnv e;
  MF_ASSIGN_OR_RETURN(e.world, EnvInt("WORLD_SIZE", 1, false));
  if (e.world <= 1) {
    e.world = 1;
    return e;
  }
  MF_ASSIGN_OR_RETURN(e.rank, EnvInt("RANK", 0, true));
  MF_ASSIGN_OR_RETURN(e.local_rank, EnvInt("LOCAL_RANK", e.rank, false));
  MF_ASSIGN_OR_RETURN(e.master_port, EnvInt("MASTER_PORT", 0, true));
  const char* addr = std::getenv("MASTER_ADDR");
  if (addr == nullptr || *addr == '\0') return Status::InvalidArgument("MASTER_ADDR is not set (the host of rank 0)");
  e.master_addr = addr;
  if (e.rank >= e.world)
    return Status::InvalidArgument("RANK=" + std::to_string(e.rank) + " is not below WORLD_SIZE=" + std::to_string(e.world));
  if (e.master_port < 1 || e.master_port > 65535) return Status::InvalidArgument("MASTER_PORT must be 1..65535");
  return e;
}

// LibTorch 2.x made the Gloo and NCCL groups c10d::Backend (ProcessGroup dispatches to
// them); the collectives we call have the same signatures on both.
#if TORCH_VERSION_MAJOR >= 2
using GroupBase = c10d::Backend;
#else
using GroupBase = c10d::ProcessGroup;
#endif

struct ProcessGroupComm::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<GroupBase> pg;
  std::string backend;
};

ProcessGroupComm::ProcessGroupComm(int rank, int world, std::unique_ptr<Impl> impl)
    : rank_(rank), world_(world), impl_(std::move(impl)) {}
ProcessGroupComm::~ProcessGroupComm() = default;

Result<std::unique_ptr<ProcessGroupComm>> ProcessGroupComm::Connect(const RankEnv& env, const torch::Device& device,
                                                                    std::chrono::seconds timeout) {
  auto impl = std::make_unique<Impl>();
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env.master_port);
    // Under torchrun with TORCHELASTIC_USE_AGENT_STORE=True the agent already serves the
    // store at MASTER_PORT and every rank is its client (as in PyTorch's env:// init).
    const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
    so.isServer = env.rank == 0 && !(agent != nullptr && std::string(agent) == "True");
    so.numWorkers = env.world;
    so.waitWorkers = true;
    so.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    impl->store = c10::make_intrusive<c10d::PrefixStore>("moeforge/", tcp);
    if (device.is_cuda()) {
#ifdef MOEFORGE_C10D_NCCL
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      impl->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, env.rank, env.world, opts);
      impl->backend = "nccl";
#else
      return Status::Unsupported(
          "data-parallel training on CUDA needs c10d's NCCL process group: configure a CUDA LibTorch build with "
          "-DMOEFORGE_C10D_NCCL=ON");
#endif
    } else {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      // Loopback ranks talk over loopback; across machines GLOO_SOCKET_IFNAME names the
      // interface (as in PyTorch), else the address this host's name resolves to.
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (ifname != nullptr && *ifname != '\0')
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (env.master_addr.rfind("127.", 0) == 0 || env.master_addr == "localhost")
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      impl->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.world, opts);
      impl->backend = "gloo";
    }
  } catch (const std::exception& e) {
    return Status::Network("rank " + std::to_string(env.rank) + " of " + std::to_string(env.world) +
                           ": rendezvous at " + env.master_addr + ":" + std::to_string(env.master_port) +
                           " failed within --dist-timeout " + std::to_string(timeout.count()) +
                           " s (did all WORLD_SIZE ranks start, and can they reach MASTER_ADDR?): " + ErrorText(e));
  }
  return std::unique_ptr<ProcessGroupComm>(new ProcessGroupComm(env.rank, env.world, std::move(impl)));
}

std::string ProcessGroupComm::backend() const { return impl_->backend; }

void ProcessGroupComm::AllReduceSum(std::vector<torch::Tensor>& tensors) {
  Timed t(collective_s_);
  for (auto& t : tensors) {
    if (!t.is_contiguous()) t = t.contiguous();
    std::vector<torch::Tensor> one{t};
    impl_->pg->allreduce(one)->wait();
  }
}

void ProcessGroupComm::AverageGradients(const std::vector<torch::Tensor>& params) {
  Timed t(collective_s_);
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  const double inv = 1.0 / world_;
  ThroughBuckets(grads, [&](std::vector<torch::Tensor>& bucket) {
    impl_->pg->allreduce(bucket)->wait();
    bucket[0].mul_(inv);
  });
}

torch::Tensor ProcessGroupComm::SumAcrossRanks(const torch::Tensor& x) {
  return SumAcrossRanksFn::apply(x, reinterpret_cast<int64_t>(this));
}

void ProcessGroupComm::Broadcast(const std::vector<torch::Tensor>& tensors) {
  Timed t(collective_s_);
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> plain;
  for (const auto& t : tensors) plain.push_back(t.detach());
  ThroughBuckets(plain, [&](std::vector<torch::Tensor>& bucket) { impl_->pg->broadcast(bucket)->wait(); });
}

void ProcessGroupComm::Publish(const std::string& key, const std::string& value) {
  impl_->store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
}

Result<std::string> ProcessGroupComm::Await(const std::string& key, std::chrono::seconds timeout) {
  try {
    impl_->store->wait({key}, timeout);
    auto v = impl_->store->get(key);
    return std::string(v.begin(), v.end());
  } catch (const std::exception& e) {
    return Status::Network("rank " + std::to_string(rank_) + ": no word from rank 0 on '" + key + "': " + ErrorText(e));
  }
}

std::string ErrorText(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

std::vector<torch::Tensor> ModuleState(const torch::nn::Module& m) {
  auto v = m.parameters();
  for (auto& b : m.buffers()) v.push_back(b);
  return v;
}

}  // namespace moeforge::trainer
