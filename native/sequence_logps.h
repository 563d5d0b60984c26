// Per-sequence summed log-probabilities of completion tokens, fused and chunked, with custom
// backward passes: from logits [N,T,V], or from last hidden states and the lm_head (never building
// [N,T,V]).
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace torch_dpo {

struct LogpsOptions {
  int64_t chunkRows = 0;          // rows per chunk; 0 = about 16M logits
  bool inplaceBackward = false;   // write the logits gradient into the logits' storage
  bool tokenLogps = false;        // also return differentiable per-token log-probs [N,T]
  bool metrics = false;           // entropy, vocab-mean logit and argmax-hit sums per sequence
  bool wpo = false;               // Σ_t (logp_t − log Σ_v p_v²) per sequence, for WPO weights
  bool allowNonFinite = false;    // the trainer counts non-finite steps itself instead of failing
};

// Named outputs, each [N] unless noted; absent ones are empty tensors.
struct LogpsResult {
  at::Tensor logps;          // Σ completion log-probs (differentiable)
  at::Tensor counts;         // completion tokens (int64)
  at::Tensor tokenLogps;     // [N,T], label-aligned: position t holds log p(token t) (differentiable)
  at::Tensor entropySum;     // Σ_t entropy of the predictive distribution
  at::Tensor meanLogitSum;   // Σ_t mean_v logits
  at::Tensor argmaxHits;     // Σ_t [argmax = label]
  at::Tensor wpoLogSum;      // Σ_t (logp_t − log Σ_v p_v²)
};

LogpsResult SequenceLogps(const at::Tensor& logits, const at::Tensor& inputIds, const at::Tensor& completionMask,
                          const LogpsOptions& options);

LogpsResult SequenceLogpsFromHidden(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& bias,
                                    const at::Tensor& inputIds, const at::Tensor& completionMask,
                                    const LogpsOptions& options);

}  // namespace torch_dpo
