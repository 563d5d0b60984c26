// Process-level facts and knobs: versions, CUDA, threads, seeding, memory, build configuration.
#pragma once

#include <napi.h>

namespace torch_dpo {

void RegisterRuntime(Napi::Env env, Napi::Object exports);

}  // namespace torch_dpo
