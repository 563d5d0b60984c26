// The next token of each row of a batch being generated: greedy, or sampled after temperature,
// top-k and top-p (HF's warpers, in HF's order), with the caller's uniform draws.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "op_attrs.h"

namespace torch_dpo {

// inputs: logits [B,V] (any float dtype), uniforms [B] (float64 in [0,1), one per row: the caller
// keeps one seeded stream per row, so a row draws the same tokens alone or in any batch).
// attrs: temperature (0 = greedy: argmax, uniforms unused), top_k (0 = off), top_p (1 = off).
// outputs: ids [B] int64; logps [B] float32 (float64 for float64 logits): each chosen token's
// log-probability under the model's own distribution (log_softmax of the raw logits, not of the
// warped ones), which is what sequence log-probs and KL estimates need.
std::vector<std::pair<std::string, at::Tensor>> SampleTokens(const std::vector<at::Tensor>& inputs, const OpAttrs& attrs);

}  // namespace torch_dpo
