#include "dtype.h"

#include <stdexcept>

namespace torch_dpo {

namespace {
struct DtypeEntry {
  const char* name;
  c10::ScalarType type;
  napi_typedarray_type hostArray;
};
constexpr DtypeEntry kDtypes[] = {
    {"float32", c10::kFloat, napi_float32_array},   {"float64", c10::kDouble, napi_float64_array},
    {"float16", c10::kHalf, napi_uint16_array},     {"bfloat16", c10::kBFloat16, napi_uint16_array},
    {"int32", c10::kInt, napi_int32_array},         {"int64", c10::kLong, napi_bigint64_array},
    {"uint8", c10::kByte, napi_uint8_array},        {"bool", c10::kBool, napi_uint8_array},
};
}  // namespace

std::optional<c10::ScalarType> ParseDtype(const std::string& name) {
  for (const auto& entry : kDtypes) {
    if (name == entry.name) return entry.type;
  }
  return std::nullopt;
}

std::string DtypeName(c10::ScalarType type) {
  for (const auto& entry : kDtypes) {
    if (entry.type == type) return entry.name;
  }
  return c10::toString(type);
}

napi_typedarray_type HostArrayType(c10::ScalarType type) {
  for (const auto& entry : kDtypes) {
    if (entry.type == type) return entry.hostArray;
  }
  throw std::invalid_argument(std::string("dtype ") + c10::toString(type) + " has no host array form; convert it with to()");
}

}  // namespace torch_dpo
