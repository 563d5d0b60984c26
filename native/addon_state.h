// Per-environment state (the main thread and each worker_threads Worker get their own): the device
// workers that run ATen jobs and the Tensor class constructor.
#pragma once

#include <c10/core/Device.h>
#include <napi.h>

#include <map>
#include <memory>
#include <string>

#include "device_worker.h"

namespace torch_dpo {

class AddonState {
 public:
  static AddonState& Of(Napi::Env env);
  static void Install(Napi::Env env);

  // The worker for a device, started on first use. CPU has one; each CUDA device has its own.
  DeviceWorker& WorkerFor(Napi::Env env, const c10::Device& device);
  // Changes the intra-op thread count of every worker, now and for those started later.
  Napi::Promise SetNumThreads(Napi::Env env, int numThreads);
  int NumThreads() const { return numThreads_; }

  Napi::FunctionReference tensorConstructor;
  Napi::FunctionReference moduleConstructor;
  Napi::FunctionReference processGroupConstructor;
  Napi::FunctionReference gradReducerConstructor;
  Napi::FunctionReference shardedUnitsConstructor;

 private:
  std::map<std::string, std::unique_ptr<DeviceWorker>> workers_;
  int numThreads_;
};

}  // namespace torch_dpo
