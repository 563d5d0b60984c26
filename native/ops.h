// The generic op entry point: op(name, inputs, attrs) → Promise<Tensor>. The table of ops lives in
// ops.cc; the TypeScript Tensor class gives each a typed method.
#pragma once

#include <napi.h>

namespace torch_dpo {

Napi::Value RunOp(const Napi::CallbackInfo& info);
Napi::Value ListOps(const Napi::CallbackInfo& info);

}  // namespace torch_dpo
