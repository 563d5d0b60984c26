// Optimizer steps over many parameters in one job: AdamW (torch.optim.AdamW's math), global-norm
// gradient clipping and gradient reset. Everything runs without autograd, in place.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "op_attrs.h"

namespace torch_dpo {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// inputs: n parameters, n exp_avg, n exp_avg_sq. attrs: lr, beta1, beta2, eps, weight_decay,
// decay (n numbers, 1 = apply weight decay), step (1-based). Parameters without a gradient are skipped.
// explicit_grads: true takes a fourth list, the gradients, instead of each parameter's .grad.
NamedTensors AdamWStep(const std::vector<at::Tensor>& inputs, const OpAttrs& attrs);

// inputs: the parameters. attrs: max_norm. Output "norm": the total L2 norm of all gradients before
// clipping (0-d, float32/64); gradients are scaled in place when it exceeds max_norm and is finite.
NamedTensors ClipGradNorm(const std::vector<at::Tensor>& inputs, const OpAttrs& attrs);

// inputs: any tensors. Output "sum": the sum of their squared elements (0-d float64), for a global
// gradient norm assembled over ranks.
NamedTensors SumOfSquares(const std::vector<at::Tensor>& inputs, const OpAttrs& attrs);

// inputs: the parameters; their gradients are released (set to none).
NamedTensors ZeroGrads(const std::vector<at::Tensor>& inputs, const OpAttrs& attrs);

// Mixed precision. inputs: working parameters (bf16) then their fp32 masters: each working gradient
// is added into its master's gradient (created on the first micro-batch) and released.
NamedTensors AccumulateGrads(const std::vector<at::Tensor>& inputs, const OpAttrs& attrs);

// inputs: targets then sources of one length: target.copy_(source) (a dtype cast rounds to nearest even).
NamedTensors CopyParams(const std::vector<at::Tensor>& inputs, const OpAttrs& attrs);

}  // namespace torch_dpo
