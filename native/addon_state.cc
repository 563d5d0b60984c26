#include "addon_state.h"

#include <ATen/Parallel.h>

#include <cstdlib>
#include <thread>

namespace torch_dpo {

namespace {
// TORCH_DPO_NUM_THREADS wins (one per rank when several ranks share a machine); else the core count.
int DefaultThreads() {
  if (const char* env = std::getenv("TORCH_DPO_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1 && n <= 4096) return n;
  }
  unsigned cores = std::thread::hardware_concurrency();
  return cores > 0 ? static_cast<int>(cores) : 1;
}
}  // namespace

AddonState& AddonState::Of(Napi::Env env) { return *env.GetInstanceData<AddonState>(); }

void AddonState::Install(Napi::Env env) {
  auto* state = new AddonState();
  state->numThreads_ = DefaultThreads();
  // The finalizer runs at environment teardown: workers are joined there.
  env.SetInstanceData<AddonState>(state);
}

DeviceWorker& AddonState::WorkerFor(Napi::Env env, const c10::Device& device) {
  // Worker keys ignore the index of a CPU device; an unindexed CUDA device means the current one (0).
  std::string key = device.is_cpu() ? "cpu" : c10::Device(device.type(), device.has_index() ? device.index() : 0).str();
  auto it = workers_.find(key);
  if (it == workers_.end()) {
    it = workers_.emplace(key, std::make_unique<DeviceWorker>(env, key, numThreads_)).first;
  }
  return *it->second;
}

Napi::Promise AddonState::SetNumThreads(Napi::Env env, int numThreads) {
  numThreads_ = numThreads;
  auto& cpu = WorkerFor(env, c10::Device(c10::kCPU));
  for (auto& [key, worker] : workers_) {
    if (worker.get() == &cpu) continue;
    worker->Submit(env, [numThreads] { at::set_num_threads(numThreads); return Completer(); }, false);
  }
  return cpu.Submit(env, [numThreads] {
    at::set_num_threads(numThreads);
    int applied = at::get_num_threads();
    return Completer([applied](Napi::Env env) { return Napi::Number::New(env, applied); });
  }, false);
}

}  // namespace torch_dpo
