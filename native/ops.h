// The generic op entry point: op(name, inputs, attrs) → Promise<Tensor>. The table of ops lives in
// ops.cc; the TypeScript Tensor class gives each a typed method.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <napi.h>

#include <string>
#include <vector>

#include "op_attrs.h"

namespace torch_dpo {

// The JS-side arguments of op(name, inputs, attrs?, gradEnabled?), read on the JS thread.
struct OpCall {
  std::string name;
  std::vector<at::Tensor> inputs;
  OpAttrs attrs;
  bool gradEnabled;
  c10::Device device;  // of the first input, else the `device` attribute (default cpu)
};
OpCall ParseOpCall(const Napi::CallbackInfo& info);
void CheckInputCount(const OpCall& call, size_t minInputs, size_t maxInputs);

Napi::Value RunOp(const Napi::CallbackInfo& info);
Napi::Value ListOps(const Napi::CallbackInfo& info);

}  // namespace torch_dpo
