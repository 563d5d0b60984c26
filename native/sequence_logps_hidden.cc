// The fused-linear path: logits are built chunk by chunk from hidden states and the lm_head, reduced,
// and rebuilt in backward, so [N,T,V] never exists. Rows whose label is not a completion token are
// skipped before the matmul.
#include <torch/csrc/autograd/custom_function.h>

#include "completion_positions.h"
#include "logps_outputs.h"
#include "sequence_logps.h"

namespace torch_dpo {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor ChunkLogits(const at::Tensor& h, const at::Tensor& weight, const at::Tensor& bias, at::ScalarType acc) {
  return at::linear(h, weight, bias.defined() && bias.numel() > 0 ? c10::optional<at::Tensor>(bias) : c10::nullopt).to(acc);
}

struct SequenceLogpsFromHiddenFunction : public torch::autograd::Function<SequenceLogpsFromHiddenFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                               const at::Tensor& bias, const at::Tensor& rows, const at::Tensor& labels,
                               const at::Tensor& sequence, const at::Tensor& labelIndex, const at::Tensor& counts,
                               int64_t chunk, bool tokenOut, bool metrics, bool wpo, bool allowNonFinite) {
    const at::ScalarType acc = AccumulationType(hidden.scalar_type());
    at::Tensor flat = hidden.reshape({-1, hidden.size(2)});
    RowAccumulator rowsOut(rows.numel(), acc, hidden.device(), metrics, wpo);
    for (int64_t start = 0; start < rows.numel(); start += chunk) {
      int64_t len = std::min(chunk, rows.numel() - start);
      at::Tensor z = ChunkLogits(flat.index_select(0, rows.narrow(0, start, len)), weight, bias, acc);
      rowsOut.Store(start, ChunkForward(z, labels.narrow(0, start, len), metrics, wpo));
    }
    if (!allowNonFinite) CheckFinite(rowsOut.logp, rows, hidden.size(1), "sequenceLogpsFromHidden");
    ctx->save_for_backward({hidden, weight, bias, rows, labels, sequence, labelIndex, rowsOut.lse});
    ctx->saved_data["chunk"] = chunk;
    variable_list out = rowsOut.Scatter(sequence, labelIndex, counts, hidden.size(0), hidden.size(1), tokenOut);
    ctx->mark_non_differentiable(NonDifferentiableOutputs(out));
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &weight = saved[1], &bias = saved[2], &rows = saved[3], &labels = saved[4],
                     &sequence = saved[5], &labelIndex = saved[6], &lse = saved[7];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const at::ScalarType acc = lse.scalar_type();
    const bool wantHidden = ctx->needs_input_grad(0), wantWeight = ctx->needs_input_grad(1);
    const bool wantBias = bias.defined() && bias.numel() > 0 && ctx->needs_input_grad(2);
    at::Tensor coef = RowCoefficients(sequence, labelIndex, grads[kLogpsOutput], grads[kTokenLogpsOutput], acc);

    at::Tensor flat = hidden.reshape({-1, hidden.size(2)});
    at::Tensor gradHidden = wantHidden ? at::zeros_like(hidden, at::MemoryFormat::Contiguous) : at::Tensor();
    // Weight and bias gradients sum over every chunk: accumulate them in fp32 (or fp64).
    at::Tensor gradWeight = wantWeight ? at::zeros(weight.sizes(), weight.options().dtype(acc)) : at::Tensor();
    at::Tensor gradBias = wantBias ? at::zeros(bias.sizes(), bias.options().dtype(acc)) : at::Tensor();
    for (int64_t start = 0; start < rows.numel(); start += chunk) {
      int64_t len = std::min(chunk, rows.numel() - start);
      at::Tensor r = rows.narrow(0, start, len);
      at::Tensor h = flat.index_select(0, r);
      at::Tensor dz = ChunkLogitGrad(ChunkLogits(h, weight, bias, acc), lse.narrow(0, start, len),
                                     labels.narrow(0, start, len), coef.narrow(0, start, len));
      if (wantHidden) gradHidden.view({-1, hidden.size(2)}).index_copy_(0, r, dz.to(weight.scalar_type()).matmul(weight));
      if (wantWeight) gradWeight.addmm_(dz.t(), h.to(acc));
      if (wantBias) gradBias.add_(dz.sum(0));
    }
    variable_list out(13);
    out[0] = gradHidden;
    out[1] = wantWeight ? gradWeight.to(weight.scalar_type()) : at::Tensor();
    out[2] = wantBias ? gradBias.to(bias.scalar_type()) : at::Tensor();
    return out;
  }
};

}  // namespace

LogpsResult SequenceLogpsFromHidden(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& bias,
                                    const at::Tensor& inputIds, const at::Tensor& completionMask,
                                    const LogpsOptions& options) {
  const char* op = "sequenceLogpsFromHidden";
  if (hidden.dim() != 3 || weight.dim() != 2 || hidden.size(2) != weight.size(1)) {
    throw std::invalid_argument(std::string(op) + ": needs hidden [N,T,H] and lmHeadWeight [V,H] with the same H");
  }
  if (bias.defined() && bias.numel() > 0 && (bias.dim() != 1 || bias.size(0) != weight.size(0))) {
    throw std::invalid_argument(std::string(op) + ": lmHeadBias must be [V]");
  }
  if (hidden.size(0) != inputIds.size(0) || inputIds.dim() != 2 || hidden.size(1) != inputIds.size(1)) {
    throw std::invalid_argument(std::string(op) + ": hidden [N,T,H] and inputIds [N,T] disagree on N or T");
  }
  CompletionPositions pos = SelectCompletionPositions(inputIds.to(hidden.device()), completionMask.to(hidden.device()),
                                                      weight.size(0), op);
  at::Tensor biasArg = bias.defined() ? bias : at::empty({0}, weight.options());
  variable_list out = SequenceLogpsFromHiddenFunction::apply(
      hidden, weight, biasArg, pos.rows, pos.labels, pos.sequence, pos.labelIndex, pos.counts,
      ChunkRows(options.chunkRows, weight.size(0)), options.tokenLogps, options.metrics, options.wpo, options.allowNonFinite);
  return ToResult(out);
}

}  // namespace torch_dpo
