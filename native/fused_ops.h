// fusedOp(name, inputs, attrs, gradEnabled) → Promise<{ [output]: NativeTensor }>: the ops with
// several named outputs (fused log-probs, the DPO loss family).
#pragma once

#include <napi.h>

namespace torch_dpo {

Napi::Value RunFusedOp(const Napi::CallbackInfo& info);

}  // namespace torch_dpo
