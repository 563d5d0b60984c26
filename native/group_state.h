// The state behind a process group handle, shared by the collectives (process_group.cc) and the
// gradient reducer that all-reduces buckets during backward (grad_reducer.cc).
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#ifdef TORCH_DPO_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace torch_dpo {

enum class Reduce { Sum, Avg, Max, Min };

// Gloo has no AVG: callers sum, then divide, for every backend, so results agree.
c10d::ReduceOp ToC10d(Reduce op);

// A collective's pending work, as the backends of libtorch 1.13 and 2.x both return it.
using WorkPtr = decltype(std::declval<c10d::ProcessGroupGloo&>().barrier());

// Like PyTorch's default "cpu:gloo,cuda:nccl" group: Gloo for CPU tensors (and for CUDA tensors
// when NCCL is not built), NCCL for CUDA tensors. Both share one TCPStore under separate prefixes.
struct GroupState {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef TORCH_DPO_WITH_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  int rank = 0;
  int size = 1;
  // Bytes per bucket of coalesced collectives and of the gradient reducer; chosen by the caller
  // (lib/distributed/buckets.ts holds the rule: DDP's 25 MB, or ddp_bucket_cap_mb).
  int64_t bucketBytes = 0;

  bool UsesNccl(const c10::Device& device) const {
#ifdef TORCH_DPO_WITH_NCCL
    return device.is_cuda() && nccl;
#else
    return false;
#endif
  }

  // Calls body with the backend for tensors on `device` (the backends share no base class across
  // libtorch 1.13 and 2.x, so this dispatches on the concrete types).
  template <typename Body>
  auto On(const c10::Device& device, Body&& body) {
#ifdef TORCH_DPO_WITH_NCCL
    if (UsesNccl(device)) return body(*nccl);
#endif
    return body(*gloo);
  }

  // One flat buffer per (slot, dtype, device), grown to the largest request and reused: a fresh
  // buffer per collective costs first-touch page faults that dwarf loopback transfer time on CPU.
  at::Tensor Scratch(int slot, const at::TensorOptions& options, int64_t numel);

  std::vector<std::string> Backends() const;

 private:
  std::mutex scratchMutex_;
  std::map<std::tuple<int, at::ScalarType, std::string>, at::Tensor> scratch_;
};

// Consecutive runs of tensors with one dtype and device, up to bucketBytes each (as DDP's reducer).
std::vector<std::vector<at::Tensor>> Buckets(const std::vector<at::Tensor>& tensors, int64_t bucketBytes);

int64_t TotalNumel(const std::vector<at::Tensor>& tensors);

// Copies tensors end to end into flat (which may be longer), or back out of it.
void Pack(const std::vector<at::Tensor>& tensors, at::Tensor flat);
void Unpack(const at::Tensor& flat, const std::vector<at::Tensor>& tensors);

}  // namespace torch_dpo
