// Which logit rows count for a sequence's log-probability, and the per-row math shared by the
// plain and the fused-linear log-prob ops. Logits at position t predict token t+1; a row counts when
// its label position t+1 is a completion token.
#pragma once

#include <ATen/ATen.h>

namespace torch_dpo {

struct CompletionPositions {
  int64_t sequences = 0;  // N
  int64_t length = 0;     // T
  at::Tensor rows;        // [M] int64, flat row n*T+t of the positions whose label counts
  at::Tensor labels;      // [M] int64, the token at t+1
  at::Tensor sequence;    // [M] int64, n
  at::Tensor labelIndex;  // [M] int64, flat n*T+t+1 (where per-token outputs live)
  at::Tensor counts;      // [N] int64, completion tokens per sequence
};

// Validates input_ids [N,T] / completion_mask [N,T] against the vocabulary and selects the rows.
CompletionPositions SelectCompletionPositions(const at::Tensor& inputIds, const at::Tensor& completionMask,
                                              int64_t vocab, const char* op);

// Rows per chunk: the caller's choice, or about 16M logits (64 MB in fp32) per chunk.
int64_t ChunkRows(int64_t requested, int64_t vocab);

// Float64 stays float64 (exact tests); everything else accumulates in float32.
inline at::ScalarType AccumulationType(at::ScalarType type) { return type == at::kDouble ? at::kDouble : at::kFloat; }

// What one chunk of rows z [C,V] (accumulation dtype) yields, each [C].
struct ChunkStats {
  at::Tensor lse;         // logsumexp over the vocabulary
  at::Tensor logp;        // log-probability of the label
  at::Tensor entropy;     // only with metrics
  at::Tensor meanLogit;   // only with metrics
  at::Tensor hit;         // only with metrics: argmax == label, as 0/1 in the accumulation dtype
  at::Tensor wpoLogNorm;  // only with wpo: log Σ_v p_v² = lse(2z) − 2·lse(z)
};
ChunkStats ChunkForward(const at::Tensor& z, const at::Tensor& labels, bool metrics, bool wpo);

// d(Σ coef·logp)/dz for one chunk: coef·(onehot(label) − softmax(z)), in the accumulation dtype.
at::Tensor ChunkLogitGrad(const at::Tensor& z, const at::Tensor& lse, const at::Tensor& labels, const at::Tensor& coef);

// Per-row gradient coefficients from the incoming gradients of the per-sequence sums [N] and of the
// per-token log-probs [N,T] (either may be undefined).
at::Tensor RowCoefficients(const at::Tensor& sequence, const at::Tensor& labelIndex, const at::Tensor& gradSeq,
                           const at::Tensor& gradTok, at::ScalarType acc);

// Throws naming the first sequence and label position whose log-probability [M] is not finite.
void CheckFinite(const at::Tensor& rowLogps, const at::Tensor& rows, int64_t length, const char* op);

}  // namespace torch_dpo
