#include "group_state.h"

namespace torch_dpo {

c10d::ReduceOp ToC10d(Reduce op) {
  return op == Reduce::Max ? c10d::ReduceOp::MAX : op == Reduce::Min ? c10d::ReduceOp::MIN : c10d::ReduceOp::SUM;
}

at::Tensor GroupState::Scratch(int slot, const at::TensorOptions& options, int64_t numel) {
  std::lock_guard<std::mutex> lock(scratchMutex_);  // workers of different devices may ask at once
  at::Tensor& buffer = scratch_[std::make_tuple(slot, options.dtype().toScalarType(), options.device().str())];
  if (!buffer.defined() || buffer.numel() < numel) buffer = at::empty({numel}, options);
  return buffer.narrow(0, 0, numel);
}

std::vector<std::string> GroupState::Backends() const {
  std::vector<std::string> out{"gloo"};
#ifdef TORCH_DPO_WITH_NCCL
  if (nccl) out.push_back("nccl");
#endif
  return out;
}

std::vector<std::vector<at::Tensor>> Buckets(const std::vector<at::Tensor>& tensors, int64_t bucketBytes) {
  std::vector<std::vector<at::Tensor>> out;
  int64_t bytes = 0;
  for (const auto& t : tensors) {
    const int64_t size = t.numel() * static_cast<int64_t>(t.element_size());
    if (out.empty() || out.back()[0].scalar_type() != t.scalar_type() || out.back()[0].device() != t.device() || bytes + size > bucketBytes) {
      out.emplace_back();
      bytes = 0;
    }
    out.back().push_back(t);
    bytes += size;
  }
  return out;
}

int64_t TotalNumel(const std::vector<at::Tensor>& tensors) {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.numel();
  return n;
}

void Pack(const std::vector<at::Tensor>& tensors, at::Tensor flat) {
  int64_t offset = 0;
  for (const auto& t : tensors) {
    flat.narrow(0, offset, t.numel()).copy_(t.reshape({-1}));
    offset += t.numel();
  }
}

void Unpack(const at::Tensor& flat, const std::vector<at::Tensor>& tensors) {
  int64_t offset = 0;
  for (const auto& t : tensors) {
    const_cast<at::Tensor&>(t).copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
    offset += t.numel();
  }
}

}  // namespace torch_dpo
