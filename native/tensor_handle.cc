#include "tensor_handle.h"

#include <ATen/ATen.h>

#include <mutex>
#include <unordered_set>

#include "addon_state.h"
#include "dtype.h"
#include "errors.h"
#include "host_data.h"

namespace torch_dpo {

namespace {
constexpr napi_type_tag kTensorTag = {0x7c0a3d1e5b9f4a21ULL, 0x9d3e6f0b2c8a4e57ULL};

// Handles of every environment, so that memory() sees the whole process.
std::mutex liveMutex;
std::unordered_set<TensorHandle*> liveHandles;

bool IsLive(TensorHandle* handle) {
  std::lock_guard<std::mutex> lock(liveMutex);
  return liveHandles.count(handle) > 0;
}

bool GradFlag(const Napi::CallbackInfo& info, size_t index) {
  return info.Length() <= index || !info[index].IsBoolean() || info[index].As<Napi::Boolean>().Value();
}
}  // namespace

Napi::Function TensorHandle::DefineClass(Napi::Env env) {
  return ObjectWrap<TensorHandle>::DefineClass(
      env, "NativeTensor",
      {
          InstanceAccessor<&TensorHandle::Shape>("shape"),
          InstanceAccessor<&TensorHandle::Dtype>("dtype"),
          InstanceAccessor<&TensorHandle::Device>("device"),
          InstanceAccessor<&TensorHandle::Numel>("numel"),
          InstanceAccessor<&TensorHandle::RequiresGrad>("requiresGrad"),
          InstanceAccessor<&TensorHandle::Disposed>("disposed"),
          InstanceMethod<&TensorHandle::Dispose>("dispose"),
          InstanceMethod<&TensorHandle::Detach>("detach"),
          InstanceMethod<&TensorHandle::To>("to"),
          InstanceMethod<&TensorHandle::ToTypedArray>("toTypedArray"),
          InstanceMethod<&TensorHandle::Item>("item"),
          InstanceMethod<&TensorHandle::Backward>("backward"),
          InstanceMethod<&TensorHandle::Grad>("grad"),
          InstanceMethod<&TensorHandle::SetRequiresGrad>("setRequiresGrad"),
      });
}

Napi::Object TensorHandle::Wrap(Napi::Env env, at::Tensor tensor) {
  return AddonState::Of(env).tensorConstructor.New({Napi::External<at::Tensor>::New(env, &tensor)});
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : ObjectWrap<TensorHandle>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeTensor is created by torch-dpo, not with new");
  }
  tensor_ = *info[0].As<Napi::External<at::Tensor>>().Data();
  requiresGrad_ = tensor_.requires_grad();
  info.This().As<Napi::Object>().TypeTag(&kTensorTag);
  env_ = info.Env();
  // Only big storages are worth GC pressure: reporting every small tensor made V8 collect so often
  // that the pauses showed in the event loop's p99 latency while training.
  constexpr int64_t kReportedBytes = int64_t{1} << 20;
  // CUDA storages too: on a GPU nothing else would make V8 collect forgotten logits in time.
  const int64_t bytes = tensor_.has_storage() ? static_cast<int64_t>(tensor_.storage().nbytes()) : 0;
  externalBytes_ = bytes >= kReportedBytes ? bytes : 0;
  int64_t ignored;
  if (externalBytes_ > 0) napi_adjust_external_memory(env_, externalBytes_, &ignored);
  std::lock_guard<std::mutex> lock(liveMutex);
  liveHandles.insert(this);
}

TensorHandle::~TensorHandle() { Release(); }

void TensorHandle::Release() {
  if (externalBytes_ > 0) {
    int64_t ignored;
    napi_adjust_external_memory(env_, -externalBytes_, &ignored);  // C API: never throws, even at teardown
    externalBytes_ = 0;
  }
  {
    std::lock_guard<std::mutex> lock(liveMutex);
    liveHandles.erase(this);
  }
  tensor_ = at::Tensor();
}

TensorHandle::LiveStats TensorHandle::Live() {
  std::lock_guard<std::mutex> lock(liveMutex);
  std::unordered_set<const void*> storages;
  LiveStats stats{0, 0};
  for (TensorHandle* handle : liveHandles) {
    const at::Tensor& t = handle->tensor_;
    if (!t.defined()) continue;
    stats.tensors += 1;
    if (t.has_storage() && storages.insert(t.storage().unsafeGetStorageImpl()).second) {
      stats.bytes += t.storage().nbytes();
    }
  }
  return stats;
}

at::Tensor& TensorHandle::FromJs(Napi::Value value, const char* what) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kTensorTag)) {
    throw Napi::TypeError::New(env, std::string(what) + " must be a Tensor");
  }
  return ObjectWrap<TensorHandle>::Unwrap(value.As<Napi::Object>())->Checked(env);
}

at::Tensor& TensorHandle::Checked(Napi::Env env) {
  if (!tensor_.defined()) throw Napi::Error::New(env, "Tensor was disposed: it can no longer be used");
  return tensor_;
}

Napi::Value TensorHandle::Shape(const Napi::CallbackInfo& info) {
  auto sizes = Checked(info.Env()).sizes();
  Napi::Array shape = Napi::Array::New(info.Env(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) shape.Set(i, Napi::Number::New(info.Env(), static_cast<double>(sizes[i])));
  return shape;
}

Napi::Value TensorHandle::Dtype(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), DtypeName(Checked(info.Env()).scalar_type()));
}

Napi::Value TensorHandle::Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), Checked(info.Env()).device().str());
}

Napi::Value TensorHandle::Numel(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(Checked(info.Env()).numel()));
}

Napi::Value TensorHandle::RequiresGrad(const Napi::CallbackInfo& info) {
  Checked(info.Env());
  return Napi::Boolean::New(info.Env(), requiresGrad_);
}

Napi::Value TensorHandle::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !tensor_.defined());
}

Napi::Value TensorHandle::Dispose(const Napi::CallbackInfo& info) {
  Release();  // idempotent: disposing twice is allowed, using afterwards is not
  return info.Env().Undefined();
}

Napi::Value TensorHandle::Detach(const Napi::CallbackInfo& info) {
  at::Tensor detached = Checked(info.Env()).detach();  // a view: no ATen compute
  return Wrap(info.Env(), detached);
}

Napi::Value TensorHandle::To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor source = Checked(env);
  c10::Device device = source.device();
  c10::ScalarType dtype = source.scalar_type();
  Guarded(env, [&] {
    if (info.Length() > 0 && info[0].IsString()) device = c10::Device(info[0].As<Napi::String>().Utf8Value());
  });
  if (info.Length() > 1 && info[1].IsString()) {
    auto parsed = ParseDtype(info[1].As<Napi::String>().Utf8Value());
    if (!parsed) throw Napi::TypeError::New(env, "unknown dtype '" + info[1].As<Napi::String>().Utf8Value() + "'");
    dtype = *parsed;
  }
  return AddonState::Of(env).WorkerFor(env, source.device()).Submit(env, [source, device, dtype] {
    at::Tensor moved = source.to(device, dtype);
    return Completer([moved](Napi::Env env) -> Napi::Value { return Wrap(env, moved); });
  }, GradFlag(info, 2));
}

Napi::Value TensorHandle::ToTypedArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor source = Checked(env);
  napi_typedarray_type arrayType = Guarded(env, [&] { return HostArrayType(source.scalar_type()); });
  return AddonState::Of(env).WorkerFor(env, source.device()).Submit(env, [source, arrayType] {
    // Always a private copy: the JS array must not alias memory that later ops may change.
    at::Tensor host = source.detach().to(at::kCPU, source.scalar_type(), false, /*copy=*/true).contiguous();
    return Completer([host, arrayType](Napi::Env env) -> Napi::Value { return HostTypedArray(env, host, arrayType); });
  }, false);
}

Napi::Value TensorHandle::Item(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor source = Checked(env);
  return AddonState::Of(env).WorkerFor(env, source.device()).Submit(env, [source] {
    c10::Scalar value = source.item();
    c10::ScalarType type = source.scalar_type();
    return Completer([value, type](Napi::Env env) -> Napi::Value {
      if (type == c10::kBool) return Napi::Boolean::New(env, value.toBool());
      if (type == c10::kLong) return Napi::BigInt::New(env, value.toLong());
      return Napi::Number::New(env, value.toDouble());
    });
  }, false);
}

Napi::Value TensorHandle::Backward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor source = Checked(env);
  at::Tensor gradient;
  if (info.Length() > 0 && !info[0].IsUndefined() && !info[0].IsNull()) gradient = FromJs(info[0], "gradient");
  bool retainGraph = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  return AddonState::Of(env).WorkerFor(env, source.device()).Submit(env, [source, gradient, retainGraph] {
    source.backward(gradient, retainGraph);
    return Completer();
  }, true);
}

Napi::Value TensorHandle::Grad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor source = Checked(env);
  return AddonState::Of(env).WorkerFor(env, source.device()).Submit(env, [source] {
    at::Tensor grad = source.grad();
    return Completer([grad](Napi::Env env) -> Napi::Value {
      return grad.defined() ? Napi::Value(Wrap(env, grad)) : env.Null();
    });
  }, false);
}

Napi::Value TensorHandle::SetRequiresGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor source = Checked(env);
  bool flag = info.Length() == 0 || !info[0].IsBoolean() || info[0].As<Napi::Boolean>().Value();
  TensorHandle* self = this;
  return AddonState::Of(env).WorkerFor(env, source.device()).Submit(env, [source, flag, self] {
    source.set_requires_grad(flag);
    return Completer([self, flag, source](Napi::Env env) -> Napi::Value {
      // The handle may have been disposed or collected meanwhile (and its address reused).
      if (IsLive(self) && self->tensor_.unsafeGetTensorImpl() == source.unsafeGetTensorImpl()) {
        self->requiresGrad_ = flag;
      }
      return env.Undefined();
    });
  }, false);
}

}  // namespace torch_dpo
