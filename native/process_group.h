// A c10d process group (Gloo over TCP on CPU) with a TCPStore rendezvous, as torchrun sets it up.
// Collectives run on the CPU device worker, never on the JS thread.
#pragma once

#include <napi.h>

namespace torch_dpo {

Napi::Function DefineProcessGroupClass(Napi::Env env);
// createProcessGroup({ rank, worldSize, masterAddr, masterPort, timeoutMs }) → Promise<NativeProcessGroup>
Napi::Value CreateProcessGroup(const Napi::CallbackInfo& info);

}  // namespace torch_dpo
