// Copies between JS typed arrays and CPU tensors. Strict: the array kind must match the dtype and
// the element count must match the shape; nothing is converted or narrowed silently.
#pragma once

#include <ATen/core/Tensor.h>
#include <napi.h>

namespace torch_dpo {

// JS thread: (data, shape, dtype[, requiresGrad]) → a new CPU tensor holding a copy of data.
Napi::Value TensorFromHostData(const Napi::CallbackInfo& info);
// JS thread: a typed array over a contiguous CPU tensor that nothing else references.
Napi::Value HostTypedArray(Napi::Env env, const at::Tensor& host, napi_typedarray_type type);

}  // namespace torch_dpo
