// The JS handle of a TorchScript module: loaded from a file (traced/scripted HF exports) or assembled
// from TorchScript source (built-in architectures). Everything that touches the module runs on the
// worker of the device its parameters live on, so module state never races with running jobs.
#pragma once

#include <napi.h>
#include <torch/script.h>

#include <functional>
#include <memory>

#include "device_worker.h"

namespace torch_dpo {

// A module and the device its parameters live on; shared with in-flight jobs.
struct ModuleState {
  torch::jit::Module module;
  c10::Device device;
};

// info[index] as a string, or a TypeError naming `what`.
std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* what);

class ModuleHandle : public Napi::ObjectWrap<ModuleHandle> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, torch::jit::Module module, c10::Device device);
  static ModuleHandle& FromJs(Napi::Value value, const char* what);

  explicit ModuleHandle(const Napi::CallbackInfo& info);

  // Module-level functions exported by the addon: loadModule(path, device), createModule(name).
  static Napi::Value Load(const Napi::CallbackInfo& info);
  static Napi::Value Create(const Napi::CallbackInfo& info);

 private:
  std::shared_ptr<ModuleState> Checked(Napi::Env env);
  // Runs `work(state)` on the worker of the module's device.
  Napi::Promise Submit(Napi::Env env, std::function<Completer(ModuleState&)> work, bool gradEnabled = false);

  Napi::Value Device(const Napi::CallbackInfo& info);
  // runCheckpointed(path, method, inputs) → Promise<tensor>: submodule `path`'s method, with
  // activation checkpointing (layer_checkpoint.h); always records autograd history.
  Napi::Value RunCheckpointed(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value Describe(const Napi::CallbackInfo& info);
  Napi::Value NamedParameters(const Napi::CallbackInfo& info);
  Napi::Value NamedBuffers(const Napi::CallbackInfo& info);
  Napi::Value SetTraining(const Napi::CallbackInfo& info);
  Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info);
  // setFlag(name, on) → Promise<number>: sets the bool attribute `name` of this module and every
  // submodule that has one (LoRA's lora_enabled); resolves to how many were set.
  Napi::Value SetFlag(const Napi::CallbackInfo& info);
  // submodule(path) → Promise<NativeModule>: a handle on the submodule object (shares its state).
  Napi::Value Submodule(const Napi::CallbackInfo& info);
  // redirectCalls(child, from, to) → Promise<number>: in this module's method graphs, calls
  // self.<child>.<from>(…) become self.<child>.<to>(…) (a traced layer's call moved to a method
  // defined beside its traced forward); resolves to how many were changed. Only before the first run:
  // a method's execution plan is compiled from its graph once.
  Napi::Value RedirectCalls(const Napi::CallbackInfo& info);
  // forgetOptimizedGraphs() → Promise<void>: drops every method's cached optimized graph in the tree
  // (copies with callees inlined), so that graph edits take effect at the first run.
  Napi::Value ForgetOptimizedGraphs(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value DeepCopy(const Napi::CallbackInfo& info);
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value RegisterParameter(const Napi::CallbackInfo& info);
  Napi::Value RegisterModule(const Napi::CallbackInfo& info);
  Napi::Value RegisterAttribute(const Napi::CallbackInfo& info);
  Napi::Value Define(const Napi::CallbackInfo& info);

  // Shared so that a job still running keeps the module alive after dispose().
  std::shared_ptr<ModuleState> state_;
};

}  // namespace torch_dpo
