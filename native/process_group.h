// A c10d process group with a TCPStore rendezvous, as torchrun sets it up: Gloo for CPU tensors,
// NCCL for CUDA tensors when libtorch has CUDA and nccl.h was found at build time (TORCH_DPO_WITH_NCCL).
// Collectives run on the worker of the tensors' device, never on the JS thread.
#pragma once

#include <napi.h>

namespace torch_dpo {

Napi::Function DefineProcessGroupClass(Napi::Env env);
// createProcessGroup({ rank, worldSize, masterAddr, masterPort, timeoutMs }) → Promise<NativeProcessGroup>
Napi::Value CreateProcessGroup(const Napi::CallbackInfo& info);

}  // namespace torch_dpo
