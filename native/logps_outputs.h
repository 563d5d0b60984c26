// Collects per-row results of the log-prob forward passes and turns them into per-sequence outputs,
// in one fixed order shared by the plain and the fused-linear autograd functions.
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/autograd/variable.h>

#include "completion_positions.h"
#include "sequence_logps.h"

namespace torch_dpo {

enum LogpsOutput : size_t {
  kLogpsOutput = 0,
  kTokenLogpsOutput,
  kCountsOutput,
  kEntropyOutput,
  kMeanLogitOutput,
  kHitsOutput,
  kWpoOutput,
  kLogpsOutputCount,
};

class RowAccumulator {
 public:
  RowAccumulator(int64_t rows, at::ScalarType acc, c10::Device device, bool metrics, bool wpo);
  void Store(int64_t start, const ChunkStats& chunk);
  // Outputs in LogpsOutput order; absent ones are empty tensors.
  torch::autograd::variable_list Scatter(const at::Tensor& sequence, const at::Tensor& labelIndex, const at::Tensor& counts,
                                         int64_t sequences, int64_t length, bool tokenOut) const;

  at::Tensor lse, logp, entropy, meanLogit, hit, wpo;
};

torch::autograd::variable_list NonDifferentiableOutputs(const torch::autograd::variable_list& outputs);
LogpsResult ToResult(const torch::autograd::variable_list& outputs);

}  // namespace torch_dpo
