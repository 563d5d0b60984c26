#include "sequence_logps.h"

#include <torch/csrc/autograd/custom_function.h>

#include "completion_positions.h"
#include "logps_outputs.h"

namespace torch_dpo {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Gradient of the logits: never materialises log_softmax. Forward keeps one logsumexp per counted
// row; backward recomputes softmax chunk by chunk into one gradient buffer (or into the logits).
struct SequenceLogpsFunction : public torch::autograd::Function<SequenceLogpsFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& rows,
                               const at::Tensor& labels, const at::Tensor& sequence, const at::Tensor& labelIndex,
                               const at::Tensor& counts, int64_t chunk, bool inplace, bool tokenOut, bool metrics,
                               bool wpo, bool allowNonFinite) {
    const int64_t vocab = logits.size(2);
    const at::ScalarType acc = AccumulationType(logits.scalar_type());
    at::Tensor flat = logits.reshape({-1, vocab});
    RowAccumulator rowsOut(rows.numel(), acc, logits.device(), metrics, wpo);
    for (int64_t start = 0; start < rows.numel(); start += chunk) {
      int64_t len = std::min(chunk, rows.numel() - start);
      at::Tensor z = flat.index_select(0, rows.narrow(0, start, len)).to(acc);
      rowsOut.Store(start, ChunkForward(z, labels.narrow(0, start, len), metrics, wpo));
    }
    if (!allowNonFinite) CheckFinite(rowsOut.logp, rows, logits.size(1), "sequenceLogps");
    ctx->save_for_backward({logits, rows, labels, sequence, labelIndex, rowsOut.lse});
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["inplace"] = inplace;
    variable_list out = rowsOut.Scatter(sequence, labelIndex, counts, logits.size(0), logits.size(1), tokenOut);
    ctx->mark_non_differentiable(NonDifferentiableOutputs(out));
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &logits = saved[0], &rows = saved[1], &labels = saved[2], &sequence = saved[3],
                     &labelIndex = saved[4], &lse = saved[5];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const int64_t vocab = logits.size(2);
    const at::ScalarType acc = lse.scalar_type();
    at::Tensor coef = RowCoefficients(sequence, labelIndex, grads[kLogpsOutput], grads[kTokenLogpsOutput], acc);

    // In place only where it is safe: a contiguous buffer we may overwrite row by row, since each
    // chunk reads its rows before writing their gradient back.
    const bool inplace = ctx->saved_data["inplace"].toBool() && logits.is_contiguous();
    at::Tensor grad = inplace ? logits : at::zeros_like(logits, at::MemoryFormat::Contiguous);
    at::Tensor gradFlat = grad.view({-1, vocab});
    at::Tensor flat = logits.reshape({-1, vocab});
    for (int64_t start = 0; start < rows.numel(); start += chunk) {
      int64_t len = std::min(chunk, rows.numel() - start);
      at::Tensor r = rows.narrow(0, start, len);
      at::Tensor z = flat.index_select(0, r).to(acc);
      at::Tensor g = ChunkLogitGrad(z, lse.narrow(0, start, len), labels.narrow(0, start, len), coef.narrow(0, start, len));
      gradFlat.index_copy_(0, r, g.to(logits.scalar_type()));
    }
    if (inplace) {
      // Rows that predict no completion token have zero gradient.
      at::Tensor counted = at::zeros({gradFlat.size(0)}, rows.options().dtype(at::kBool)).index_fill_(0, rows, true);
      gradFlat.masked_fill_(counted.logical_not().unsqueeze(1), 0);
    }
    variable_list out(12);
    out[0] = grad;
    return out;
  }
};

}  // namespace

LogpsResult SequenceLogps(const at::Tensor& logits, const at::Tensor& inputIds, const at::Tensor& completionMask,
                          const LogpsOptions& options) {
  if (logits.dim() != 3) throw std::invalid_argument("sequenceLogps: logits must be [N,T,V]");
  if (!at::isFloatingType(logits.scalar_type())) throw std::invalid_argument("sequenceLogps: logits must be floating point");
  if (logits.size(0) != inputIds.size(0) || logits.size(1) != inputIds.size(1) || inputIds.dim() != 2) {
    throw std::invalid_argument("sequenceLogps: logits [N,T,V] and inputIds [N,T] disagree on N or T");
  }
  CompletionPositions pos = SelectCompletionPositions(inputIds.to(logits.device()), completionMask.to(logits.device()),
                                                      logits.size(2), "sequenceLogps");
  variable_list out = SequenceLogpsFunction::apply(logits, pos.rows, pos.labels, pos.sequence, pos.labelIndex,
                                                   pos.counts, ChunkRows(options.chunkRows, logits.size(2)),
                                                   options.inplaceBackward, options.tokenLogps, options.metrics,
                                                   options.wpo, options.allowNonFinite);
  return ToResult(out);
}

}  // namespace torch_dpo
