// Gradient all-reduce overlapped with backward, as DDP's reducer does: hooks on the parameters'
// gradient accumulators launch each ~25 MB bucket's all-reduce as soon as all its gradients are final,
// while backward goes on with earlier layers; finish() waits, averages and writes the gradients back.
#pragma once

#include <napi.h>

#include <memory>


namespace torch_dpo {

struct GroupState;

Napi::Function DefineGradReducerClass(Napi::Env env);
// group.gradReducer(params) → NativeGradReducer
Napi::Value CreateGradReducer(Napi::Env env, std::shared_ptr<GroupState> group, const Napi::Value& params);

}  // namespace torch_dpo
