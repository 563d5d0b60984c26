#include "completion_positions.h"

#include <stdexcept>
#include <string>

namespace torch_dpo {

namespace {
std::string Shape(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s + "]";
}
}  // namespace

CompletionPositions SelectCompletionPositions(const at::Tensor& inputIds, const at::Tensor& completionMask,
                                              int64_t vocab, const char* op) {
  const std::string name(op);
  if (inputIds.dim() != 2) throw std::invalid_argument(name + ": inputIds must be [N,T], got " + Shape(inputIds));
  if (!completionMask.sizes().equals(inputIds.sizes())) {
    throw std::invalid_argument(name + ": completionMask " + Shape(completionMask) + " must match inputIds " + Shape(inputIds));
  }
  if (at::isFloatingType(inputIds.scalar_type()) || inputIds.scalar_type() == at::kBool) {
    throw std::invalid_argument(name + ": inputIds must hold integers");
  }
  CompletionPositions pos;
  pos.sequences = inputIds.size(0);
  pos.length = inputIds.size(1);
  if (pos.sequences == 0) throw std::invalid_argument(name + ": the batch is empty (N = 0)");
  at::Tensor ids = inputIds.to(at::kLong).contiguous();
  at::Tensor mask = completionMask.ne(0);
  auto longOpts = ids.options();
  if (pos.length < 2) {
    pos.rows = pos.labels = pos.sequence = pos.labelIndex = at::empty({0}, longOpts);
    pos.counts = at::zeros({pos.sequences}, longOpts);
    return pos;
  }
  at::Tensor labelMask = mask.narrow(1, 1, pos.length - 1);  // label positions 1..T-1
  at::Tensor nz = labelMask.nonzero();                          // [M,2]: (n, t) with label at t+1
  pos.sequence = nz.select(1, 0).contiguous();
  pos.rows = pos.sequence * pos.length + nz.select(1, 1);
  pos.labelIndex = pos.rows + 1;
  pos.labels = ids.reshape({-1}).index_select(0, pos.labelIndex);
  pos.counts = labelMask.sum(1).to(at::kLong);
  if (pos.labels.numel() > 0) {
    auto range = at::aminmax(pos.labels);
    int64_t lo = std::get<0>(range).item<int64_t>(), hi = std::get<1>(range).item<int64_t>();
    if (lo < 0 || hi >= vocab) {
      throw std::invalid_argument(name + ": a completion token id (" + std::to_string(lo < 0 ? lo : hi) +
                                  ") is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
  return pos;
}

int64_t ChunkRows(int64_t requested, int64_t vocab) {
  if (requested > 0) return requested;
  constexpr int64_t kLogitsPerChunk = int64_t{1} << 24;
  return std::max<int64_t>(1, kLogitsPerChunk / std::max<int64_t>(vocab, 1));
}

ChunkStats ChunkForward(const at::Tensor& z, const at::Tensor& labels, bool metrics, bool wpo) {
  ChunkStats s;
  s.lse = at::logsumexp(z, {1});
  s.logp = z.gather(1, labels.unsqueeze(1)).squeeze(1) - s.lse;
  if (metrics) {
    // H = −Σ p·log p = lse − Σ p·z, with Σ p·z as one batched dot product (no [C,V] product buffer).
    at::Tensor p = (z - s.lse.unsqueeze(1)).exp_();
    at::Tensor expected = at::bmm(p.unsqueeze(1), z.unsqueeze(2)).view({-1});
    // Where p = 0 and z = −inf (masked vocabulary) the dot is NaN: recompute those rows without the term.
    at::Tensor bad = expected.isnan();
    if (bad.any().item<bool>()) {
      expected = at::where(bad, at::nan_to_num(p * z, 0.0, 0.0, 0.0).sum(1), expected);
    }
    s.entropy = s.lse - expected;
    s.meanLogit = z.mean(1);
    s.hit = z.argmax(1).eq(labels).to(z.scalar_type());
  }
  if (wpo) s.wpoLogNorm = at::logsumexp(z * 2, {1}) - s.lse * 2;
  return s;
}

at::Tensor ChunkLogitGrad(const at::Tensor& z, const at::Tensor& lse, const at::Tensor& labels, const at::Tensor& coef) {
  at::Tensor grad = at::exp(z - lse.unsqueeze(1)).mul_(coef.neg().unsqueeze(1));
  grad.scatter_add_(1, labels.unsqueeze(1), coef.unsqueeze(1));
  return grad;
}

at::Tensor RowCoefficients(const at::Tensor& sequence, const at::Tensor& labelIndex, const at::Tensor& gradSeq,
                           const at::Tensor& gradTok, at::ScalarType acc) {
  at::Tensor coef = at::zeros({sequence.numel()}, sequence.options().dtype(acc));
  if (gradSeq.defined() && gradSeq.numel() > 0) coef.add_(gradSeq.to(acc).index_select(0, sequence));
  if (gradTok.defined() && gradTok.numel() > 0) coef.add_(gradTok.to(acc).reshape({-1}).index_select(0, labelIndex));
  return coef;
}

void CheckFinite(const at::Tensor& rowLogps, const at::Tensor& rows, int64_t length, const char* op) {
  at::Tensor bad = at::isfinite(rowLogps).logical_not().nonzero();
  if (bad.numel() == 0) return;
  int64_t row = rows[bad[0][0].item<int64_t>()].item<int64_t>();
  throw std::invalid_argument(std::string(op) + ": the log-probability of sequence " + std::to_string(row / length) +
                              ", position " + std::to_string(row % length + 1) +
                              " is not finite: its logits hold NaN or +Inf");
}

}  // namespace torch_dpo
