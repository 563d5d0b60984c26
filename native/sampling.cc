#include "sampling.h"

#include <limits>
#include <stdexcept>

namespace torch_dpo {

namespace {

// Inverse-CDF draw over rows of probabilities sorted in descending order: the first position whose
// cumulative mass exceeds u · total (one uniform per row, no [B,V] of random numbers). Positions with
// zero mass are never chosen: the cumulative sum does not rise there.
at::Tensor DrawSortedPositions(const at::Tensor& sortedProbs, const at::Tensor& uniforms, const at::Tensor& kept) {
  at::Tensor cumulative = sortedProbs.cumsum(-1);
  at::Tensor total = cumulative.narrow(-1, cumulative.size(-1) - 1, 1);
  at::Tensor threshold = uniforms.to(cumulative.options()).unsqueeze(1) * total;
  at::Tensor positions = (cumulative <= threshold).sum(-1, /*keepdim=*/true);
  // u · total rounding up to the total would step past the last kept token.
  return at::minimum(positions, kept.sum(-1, /*keepdim=*/true) - 1);
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> SampleTokens(const std::vector<at::Tensor>& inputs, const OpAttrs& attrs) {
  const at::Tensor& raw = inputs[0];
  if (raw.dim() != 2) throw std::invalid_argument("sample_tokens: logits must be [rows, vocab], got " + std::to_string(raw.dim()) + " dimensions");
  if (!at::isFloatingType(raw.scalar_type())) throw std::invalid_argument("sample_tokens: logits must be floating point");
  const double temperature = attrs.Double("temperature");
  const int64_t topK = attrs.Int("top_k");
  const double topP = attrs.Double("top_p");
  if (temperature < 0) throw std::invalid_argument("sample_tokens: temperature must be ≥ 0 (0 = greedy)");
  if (topK < 0) throw std::invalid_argument("sample_tokens: top_k must be ≥ 0 (0 = off)");
  if (!(topP > 0 && topP <= 1)) throw std::invalid_argument("sample_tokens: top_p must be in (0, 1]");

  at::NoGradGuard noGrad;
  // fp32 maths for half-precision logits (HF's generate upcasts the last logits too); fp64 stays.
  at::Tensor logits = raw.scalar_type() == at::kDouble ? raw : raw.to(at::kFloat);
  at::Tensor modelLogps = at::log_softmax(logits, -1);
  at::Tensor ids;
  if (temperature == 0) {
    ids = logits.argmax(-1);
  } else {
    if (inputs.size() < 2 || inputs[1].numel() != logits.size(0)) throw std::invalid_argument("sample_tokens: sampling needs one uniform per row");
    const int64_t vocab = logits.size(-1);
    at::Tensor sorted, order;
    std::tie(sorted, order) = (logits / temperature).sort(-1, /*descending=*/true);
    at::Tensor kept = at::ones_like(sorted, sorted.options().dtype(at::kBool));
    // top-k keeps every logit ≥ the k-th largest (ties included), as HF's TopKLogitsWarper.
    if (topK > 0 && topK < vocab) kept = sorted >= sorted.narrow(-1, topK - 1, 1);
    const double negInf = -std::numeric_limits<double>::infinity();
    at::Tensor probs = at::softmax(sorted.masked_fill(kept.logical_not(), negInf), -1);
    if (topP < 1) {
      // top-p keeps the most probable tokens until their mass reaches top_p (the token that crosses
      // it included, at least one), over what top-k left, as HF's TopPLogitsWarper.
      at::Tensor massBefore = probs.cumsum(-1) - probs;
      kept = at::logical_and(kept, massBefore < topP);
      kept.select(-1, 0).fill_(true);
      probs = at::softmax(sorted.masked_fill(kept.logical_not(), negInf), -1);
    }
    ids = order.gather(-1, DrawSortedPositions(probs, inputs[1], kept)).squeeze(-1);
  }
  at::Tensor logps = modelLogps.gather(-1, ids.unsqueeze(-1)).squeeze(-1);
  return {{"ids", ids}, {"logps", logps}};
}

}  // namespace torch_dpo
