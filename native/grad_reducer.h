// Gradient all-reduce overlapped with backward, as DDP's reducer does: hooks on the parameters'
// gradient accumulators launch each ~25 MB bucket's all-reduce as soon as all its gradients are final,
// while backward goes on with earlier layers; finish() waits, averages and writes the gradients back.
// In shard mode (ZeRO-2) the buckets are reduce-scattered instead and the gradients freed.
#pragma once

#include <napi.h>

#include <memory>


namespace torch_dpo {

struct GroupState;

Napi::Function DefineGradReducerClass(Napi::Env env);
// group.gradReducer(params, { shard }) → NativeGradReducer; shard: ZeRO-2 (reduce-scatter into
// per-bucket slices of this rank, in every backward, gradients released as they are reduced).
Napi::Value CreateGradReducer(Napi::Env env, std::shared_ptr<GroupState> group, const Napi::Value& params, bool shard);

}  // namespace torch_dpo
