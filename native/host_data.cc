#include "host_data.h"

#include <ATen/ATen.h>

#include <cstring>
#include <string>
#include <vector>

#include "dtype.h"
#include "errors.h"
#include "tensor_handle.h"

namespace torch_dpo {

namespace {

const char* ArrayName(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "typed array";
  }
}

std::vector<int64_t> ParseShape(Napi::Env env, Napi::Value value) {
  if (!value.IsArray()) throw Napi::TypeError::New(env, "shape must be an array of non-negative integers");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value dim = array.Get(i);
    double d = dim.IsNumber() ? dim.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0) || d != static_cast<double>(static_cast<int64_t>(d)) || d > 9007199254740991.0) {
      throw Napi::TypeError::New(env, "shape[" + std::to_string(i) + "] must be a non-negative integer");
    }
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

struct HostBytes {
  const uint8_t* data;
  size_t length;
  std::string kind;
};

HostBytes ViewBytes(Napi::Env env, Napi::Value data, c10::ScalarType dtype) {
  const bool sixteenBit = dtype == c10::kHalf || dtype == c10::kBFloat16;
  if (data.IsArrayBuffer() && sixteenBit) {
    auto buffer = data.As<Napi::ArrayBuffer>();
    return {static_cast<const uint8_t*>(buffer.Data()), buffer.ByteLength(), "ArrayBuffer"};
  }
  if (!data.IsTypedArray()) {
    throw Napi::TypeError::New(env, "data for a " + DtypeName(dtype) + " tensor must be a " +
                                        ArrayName(HostArrayType(dtype)) + (sixteenBit ? " of raw bits, a Uint8Array or an ArrayBuffer" : ""));
  }
  auto array = data.As<Napi::TypedArray>();
  napi_typedarray_type expected = HostArrayType(dtype);
  bool accepted = array.TypedArrayType() == expected || (sixteenBit && array.TypedArrayType() == napi_uint8_array);
  if (!accepted) {
    throw Napi::TypeError::New(env, std::string("a ") + DtypeName(dtype) + " tensor needs a " + ArrayName(expected) +
                                        ", got a " + ArrayName(array.TypedArrayType()));
  }
  const auto* bytes = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  return {bytes, array.ByteLength(), ArrayName(array.TypedArrayType())};
}

}  // namespace

Napi::Value TensorFromHostData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[2].IsString()) throw Napi::TypeError::New(env, "fromData(data, shape, dtype)");
  std::string dtypeName = info[2].As<Napi::String>().Utf8Value();
  auto dtype = ParseDtype(dtypeName);
  if (!dtype) throw Napi::TypeError::New(env, "unknown dtype '" + dtypeName + "'");
  std::vector<int64_t> shape = ParseShape(env, info[1]);
  HostBytes bytes = ViewBytes(env, info[0], *dtype);

  const size_t itemSize = c10::elementSize(*dtype);
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  if (bytes.length % itemSize != 0) {
    throw Napi::RangeError::New(env, std::to_string(bytes.length) + " bytes is not a whole number of " +
                                         std::to_string(itemSize) + "-byte " + dtypeName + " values");
  }
  if (bytes.length / itemSize != static_cast<size_t>(numel)) {
    throw Napi::RangeError::New(env, "data holds " + std::to_string(bytes.length / itemSize) + " " + dtypeName +
                                         " values but shape needs " + std::to_string(numel));
  }
  if (*dtype == c10::kBool) {
    for (size_t i = 0; i < bytes.length; ++i) {
      if (bytes.data[i] > 1) {
        throw Napi::RangeError::New(env, "bool data must hold 0 or 1, found " + std::to_string(bytes.data[i]) +
                                             " at index " + std::to_string(i));
      }
    }
  }
  bool requiresGrad = info.Length() > 3 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  return Guarded(env, [&]() -> Napi::Value {
    at::Tensor tensor = at::empty(shape, at::TensorOptions().dtype(*dtype));
    if (bytes.length > 0) std::memcpy(tensor.data_ptr(), bytes.data, bytes.length);
    if (requiresGrad) tensor.set_requires_grad(true);
    return TensorHandle::Wrap(env, tensor);
  });
}

Napi::Value HostTypedArray(Napi::Env env, const at::Tensor& host, napi_typedarray_type type) {
  const size_t byteLength = host.numel() * host.element_size();
  const size_t elementSize = type == napi_uint8_array ? 1 : host.element_size();
  Napi::ArrayBuffer buffer;
  if (byteLength == 0) {
    buffer = Napi::ArrayBuffer::New(env, 0);
  } else {
    // Zero-copy: the JS buffer owns a reference to the tensor's storage until it is collected.
    auto* owner = new at::Tensor(host);
    try {
      buffer = Napi::ArrayBuffer::New(env, owner->data_ptr(), byteLength,
                                      [](Napi::Env, void*, at::Tensor* t) { delete t; }, owner);
    } catch (const Napi::Error&) {
      delete owner;  // runtimes that forbid external buffers (e.g. Electron's sandbox) get a copy
      buffer = Napi::ArrayBuffer::New(env, byteLength);
      std::memcpy(buffer.Data(), host.data_ptr(), byteLength);
    }
  }
  napi_value array;
  napi_status status = napi_create_typedarray(env, type, byteLength / elementSize, buffer, 0, &array);
  NAPI_THROW_IF_FAILED(env, status, Napi::Value());
  return Napi::Value(env, array);
}

}  // namespace torch_dpo
