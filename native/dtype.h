// The dtype names the JS side uses, and how each maps to host memory.
#pragma once

#include <c10/core/ScalarType.h>
#include <napi.h>

#include <optional>
#include <string>

namespace torch_dpo {

std::optional<c10::ScalarType> ParseDtype(const std::string& name);
std::string DtypeName(c10::ScalarType type);
// The typed array kind that holds this dtype's host copy (raw 16-bit words for float16/bfloat16).
napi_typedarray_type HostArrayType(c10::ScalarType type);

}  // namespace torch_dpo
