// Entry point of the torch_dpo addon. Every export is declared, typed, in lib/native/binding.ts.
#include <napi.h>

#include "addon_state.h"
#include "cpu_caching_allocator.h"
#include "errors.h"
#include "fused_ops.h"
#include "host_data.h"
#include "ops.h"
#include "grad_reducer.h"
#include "process_group.h"
#include "sharded_units.h"
#include "runtime.h"
#include "script_module.h"
#include "tensor_handle.h"

namespace torch_dpo {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Before the first tensor: every CPU allocation from here on is cached (see cpu_caching_allocator.h).
  Guarded(env, [] { InstallCachingCpuAllocator(); });
  AddonState::Install(env);
  Napi::Function tensorClass = TensorHandle::DefineClass(env);
  AddonState::Of(env).tensorConstructor = Napi::Persistent(tensorClass);
  exports.Set("NativeTensor", tensorClass);
  Napi::Function moduleClass = ModuleHandle::DefineClass(env);
  AddonState::Of(env).moduleConstructor = Napi::Persistent(moduleClass);
  exports.Set("NativeModule", moduleClass);
  exports.Set("loadModule", Napi::Function::New<ModuleHandle::Load>(env, "loadModule"));
  exports.Set("createModule", Napi::Function::New<ModuleHandle::Create>(env, "createModule"));
  Napi::Function groupClass = DefineProcessGroupClass(env);
  AddonState::Of(env).processGroupConstructor = Napi::Persistent(groupClass);
  AddonState::Of(env).gradReducerConstructor = Napi::Persistent(DefineGradReducerClass(env));
  AddonState::Of(env).shardedUnitsConstructor = Napi::Persistent(DefineShardedUnitsClass(env));
  exports.Set("NativeProcessGroup", groupClass);
  exports.Set("createProcessGroup", Napi::Function::New<CreateProcessGroup>(env, "createProcessGroup"));
  exports.Set("fromData", Napi::Function::New<TensorFromHostData>(env, "fromData"));
  exports.Set("op", Napi::Function::New<RunOp>(env, "op"));
  exports.Set("listOps", Napi::Function::New<ListOps>(env, "listOps"));
  exports.Set("fusedOp", Napi::Function::New<RunFusedOp>(env, "fusedOp"));
  RegisterRuntime(env, exports);
  return exports;
}

}  // namespace torch_dpo

// The macro pastes the function name into an identifier, so it needs an unqualified one.
static Napi::Object InitTorchDpo(Napi::Env env, Napi::Object exports) { return torch_dpo::Init(env, exports); }
NODE_API_MODULE(torch_dpo, InitTorchDpo)
