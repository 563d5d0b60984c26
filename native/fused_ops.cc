#include "fused_ops.h"

#include <c10/core/DeviceGuard.h>

#include <functional>
#include <unordered_map>
#include <utility>

#include "addon_state.h"
#include "dpo_loss.h"
#include "errors.h"
#include "ops.h"
#include "optimizer_ops.h"
#include "sampling.h"
#include "sequence_logps.h"
#include "tensor_handle.h"

namespace torch_dpo {

namespace {

using NamedOutputs = std::vector<std::pair<std::string, at::Tensor>>;
using FusedFn = std::function<NamedOutputs(const OpCall&)>;

// Required: the defaults live in lib/ops/sequence-logps.ts.
LogpsOptions ReadLogpsOptions(const OpAttrs& a) {
  LogpsOptions o;
  o.chunkRows = a.Int("chunkRows");
  if (o.chunkRows < 0) throw std::invalid_argument("attribute 'chunkRows' must be positive");
  o.inplaceBackward = a.Bool("inplaceBackward");
  o.tokenLogps = a.Bool("tokenLogps");
  o.metrics = a.Bool("metrics");
  o.wpo = a.Bool("wpo");
  o.allowNonFinite = a.Bool("allowNonFinite");
  return o;
}

NamedOutputs Named(const LogpsResult& r, const LogpsOptions& o) {
  NamedOutputs out{{"logps", r.logps}, {"counts", r.counts}};
  if (o.tokenLogps) out.emplace_back("tokenLogps", r.tokenLogps);
  if (o.metrics) {
    out.emplace_back("entropySum", r.entropySum);
    out.emplace_back("meanLogitSum", r.meanLogitSum);
    out.emplace_back("argmaxHits", r.argmaxHits);
  }
  if (o.wpo) out.emplace_back("wpoLogSum", r.wpoLogSum);
  return out;
}

struct FusedSpec {
  size_t minInputs;
  size_t maxInputs;
  FusedFn fn;
};

const std::unordered_map<std::string, FusedSpec>& FusedTable() {
  static const std::unordered_map<std::string, FusedSpec> table = {
      // inputs: logits [N,T,V], inputIds [N,T], completionMask [N,T]
      {"sequence_logps", {3, 3, [](const OpCall& c) {
         LogpsOptions o = ReadLogpsOptions(c.attrs);
         return Named(SequenceLogps(c.inputs[0], c.inputs[1], c.inputs[2], o), o);
       }}},
      // inputs: hidden [N,T,H], lmHeadWeight [V,H], inputIds [N,T], completionMask [N,T], lmHeadBias [V]?
      {"sequence_logps_from_hidden", {4, 5, [](const OpCall& c) {
         LogpsOptions o = ReadLogpsOptions(c.attrs);
         if (o.inplaceBackward) throw std::invalid_argument("sequenceLogpsFromHidden builds no logits: inplaceBackward does not apply");
         at::Tensor bias = c.inputs.size() == 5 ? c.inputs[4] : at::Tensor();
         return Named(SequenceLogpsFromHidden(c.inputs[0], c.inputs[1], bias, c.inputs[2], c.inputs[3], o), o);
       }}},
      // inputs: policyChosen, policyRejected [B], then per the `layout` attribute (see dpo_loss.h)
      {"dpo_loss", {2, 16, [](const OpCall& c) { return DpoLoss(c.inputs, c.attrs); }}},
      // optimizer steps over whole parameter lists
      {"adamw_step", {0, SIZE_MAX, [](const OpCall& c) { return AdamWStep(c.inputs, c.attrs); }}},
      {"clip_grad_norm", {0, SIZE_MAX, [](const OpCall& c) { return ClipGradNorm(c.inputs, c.attrs); }}},
      {"sum_of_squares", {0, SIZE_MAX, [](const OpCall& c) { return SumOfSquares(c.inputs, c.attrs); }}},
      {"zero_grads", {0, SIZE_MAX, [](const OpCall& c) { return ZeroGrads(c.inputs, c.attrs); }}},
      {"accumulate_grads", {0, SIZE_MAX, [](const OpCall& c) { return AccumulateGrads(c.inputs, c.attrs); }}},
      {"copy_params", {0, SIZE_MAX, [](const OpCall& c) { return CopyParams(c.inputs, c.attrs); }}},
      // inputs: logits [B,V], uniforms [B] (sampling only); see sampling.h
      {"sample_tokens", {1, 2, [](const OpCall& c) { return SampleTokens(c.inputs, c.attrs); }}},
  };
  return table;
}

}  // namespace

Napi::Value RunFusedOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpCall call = ParseOpCall(info);
  auto it = FusedTable().find(call.name);
  if (it == FusedTable().end()) throw Napi::TypeError::New(env, "unknown fused op '" + call.name + "'");
  Guarded(env, [&] { CheckInputCount(call, it->second.minInputs, it->second.maxInputs); });
  FusedFn fn = it->second.fn;
  return AddonState::Of(env).WorkerFor(env, call.device).Submit(env, [fn, call] {
    c10::OptionalDeviceGuard guard(call.device.is_cpu() ? c10::optional<c10::Device>() : call.device);
    NamedOutputs outputs = fn(call);
    return Completer([outputs](Napi::Env env) -> Napi::Value {
      Napi::Object result = Napi::Object::New(env);
      for (const auto& [name, tensor] : outputs) result.Set(name, TensorHandle::Wrap(env, tensor));
      return result;
    });
  }, call.gradEnabled);
}

}  // namespace torch_dpo
