// The JS Tensor handle: owns one reference to an at::Tensor. Type-tagged so that a foreign object
// passed where a Tensor is expected is rejected; disposed handles throw on use.
#pragma once

#include <ATen/core/Tensor.h>
#include <napi.h>

namespace torch_dpo {

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, at::Tensor tensor);
  // The tensor behind a JS value, or a JS TypeError naming `what` when it is no live Tensor.
  static at::Tensor& FromJs(Napi::Value value, const char* what);

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;

  // Live handles across the process: count and bytes of distinct storages.
  struct LiveStats {
    size_t tensors;
    size_t bytes;
  };
  static LiveStats Live();

 private:
  at::Tensor& Checked(Napi::Env env);
  void Release();

  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value Dtype(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Numel(const Napi::CallbackInfo& info);
  Napi::Value RequiresGrad(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Detach(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value ToTypedArray(const Napi::CallbackInfo& info);
  Napi::Value Item(const Napi::CallbackInfo& info);
  Napi::Value Backward(const Napi::CallbackInfo& info);
  Napi::Value Grad(const Napi::CallbackInfo& info);
  Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info);

  at::Tensor tensor_;
  // Bytes reported to V8 as external memory, so undisposed tensors still prompt garbage collection.
  int64_t externalBytes_ = 0;
  napi_env env_ = nullptr;
  // Snapshot of requires_grad, updated only on the JS thread, so reading it never races a worker.
  bool requiresGrad_ = false;
};

}  // namespace torch_dpo
