#include "logps_outputs.h"

namespace torch_dpo {

RowAccumulator::RowAccumulator(int64_t rows, at::ScalarType acc, c10::Device device, bool metrics, bool wpoWanted) {
  auto opts = at::TensorOptions().dtype(acc).device(device);
  lse = at::empty({rows}, opts);
  logp = at::empty({rows}, opts);
  if (metrics) {
    entropy = at::empty({rows}, opts);
    meanLogit = at::empty({rows}, opts);
    hit = at::empty({rows}, opts);
  }
  if (wpoWanted) wpo = at::empty({rows}, opts);
}

void RowAccumulator::Store(int64_t start, const ChunkStats& chunk) {
  const int64_t len = chunk.lse.size(0);
  lse.narrow(0, start, len).copy_(chunk.lse);
  logp.narrow(0, start, len).copy_(chunk.logp);
  if (entropy.defined()) {
    entropy.narrow(0, start, len).copy_(chunk.entropy);
    meanLogit.narrow(0, start, len).copy_(chunk.meanLogit);
    hit.narrow(0, start, len).copy_(chunk.hit);
  }
  if (wpo.defined()) wpo.narrow(0, start, len).copy_(chunk.logp - chunk.wpoLogNorm);
}

torch::autograd::variable_list RowAccumulator::Scatter(const at::Tensor& sequence, const at::Tensor& labelIndex,
                                                       const at::Tensor& counts, int64_t sequences, int64_t length,
                                                       bool tokenOut) const {
  auto perSequence = [&](const at::Tensor& rows) {
    return rows.defined() ? at::zeros({sequences}, rows.options()).index_add_(0, sequence, rows) : at::empty({0}, logp.options());
  };
  torch::autograd::variable_list out(kLogpsOutputCount);
  out[kLogpsOutput] = perSequence(logp);
  out[kTokenLogpsOutput] = tokenOut ? at::zeros({sequences * length}, logp.options()).index_copy_(0, labelIndex, logp).view({sequences, length})
                                    : at::empty({0}, logp.options());
  out[kCountsOutput] = counts.clone();  // an input returned as an output would alias it
  out[kEntropyOutput] = perSequence(entropy);
  out[kMeanLogitOutput] = perSequence(meanLogit);
  out[kHitsOutput] = perSequence(hit);
  out[kWpoOutput] = perSequence(wpo);
  return out;
}

torch::autograd::variable_list NonDifferentiableOutputs(const torch::autograd::variable_list& outputs) {
  return {outputs[kCountsOutput], outputs[kEntropyOutput], outputs[kMeanLogitOutput], outputs[kHitsOutput],
          outputs[kWpoOutput]};
}

LogpsResult ToResult(const torch::autograd::variable_list& outputs) {
  LogpsResult r;
  r.logps = outputs[kLogpsOutput];
  r.tokenLogps = outputs[kTokenLogpsOutput];
  r.counts = outputs[kCountsOutput];
  r.entropySum = outputs[kEntropyOutput];
  r.meanLogitSum = outputs[kMeanLogitOutput];
  r.argmaxHits = outputs[kHitsOutput];
  r.wpoLogSum = outputs[kWpoOutput];
  return r;
}

}  // namespace torch_dpo
