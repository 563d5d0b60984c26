// Activation checkpointing of one TorchScript submodule call (a decoder layer): the forward keeps
// only the call's inputs; the backward re-runs the call with the RNG states of the first run (so
// dropout draws the same masks) and backpropagates through it.
#pragma once

#include <torch/script.h>

#include <memory>
#include <string>
#include <vector>

namespace torch_dpo {

// The submodule at a dotted path ("model.layers.3"); throws std::invalid_argument naming the path.
torch::jit::Module SubmoduleAt(const torch::jit::Module& root, const std::string& path);

class ShardedUnits;

// ZeRO-3: the layer's parameters are unit `unit` of `units`: gathered around the forward and around
// the re-run in backward (its gradients reduce-scattered after), freed after each; `next` (forward)
// and `previous` (backward) are prefetched (−1: none).
struct UnitCall {
  std::shared_ptr<ShardedUnits> units;
  int64_t unit = -1;
  int64_t next = -1;
  int64_t previous = -1;
};

// module.<path>.<method>(inputs) → its tensor output, checkpointed. `path` is a dotted submodule
// path ("model.layers.3"); inputs are tensors (float ones get gradients).
at::Tensor CheckpointedCall(const torch::jit::Module& root, const std::string& path, const std::string& method, const std::vector<at::Tensor>& inputs, const UnitCall& zero = {});

}  // namespace torch_dpo
