#include "runtime.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <link.h>
#include <torch/csrc/api/include/torch/cuda.h>
#include <torch/csrc/api/include/torch/version.h>

#include <ATen/CPUGeneratorImpl.h>

#include <climits>
#include <cstring>
#include <mutex>
#include <vector>
#include <cstdlib>
#include <set>
#include <string>

#ifdef TORCH_DPO_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "addon_state.h"
#include "cpu_caching_allocator.h"
#include "errors.h"
#include "tensor_handle.h"

namespace torch_dpo {

namespace {

Napi::Value Version(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("torch", TORCH_VERSION);
  out.Set("napi", NAPI_VERSION);
  out.Set("cxx11Abi", Napi::Boolean::New(env, _GLIBCXX_USE_CXX11_ABI == 1));
#ifdef TORCH_DPO_WITH_CUDA
  out.Set("cudaBuild", Napi::Boolean::New(env, true));
#else
  out.Set("cudaBuild", Napi::Boolean::New(env, false));
#endif
  return out;
}

Napi::Value CudaAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Guarded(info.Env(), [] { return torch::cuda::is_available(); }));
}

Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), Guarded(info.Env(), [] { return static_cast<double>(torch::cuda::device_count()); }));
}

Napi::Value NumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), AddonState::Of(info.Env()).NumThreads());
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double n = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
  if (!(n >= 1) || n != static_cast<int>(n) || n > 4096) {
    throw Napi::RangeError::New(env, "setNumThreads needs an integer from 1 to 4096");
  }
  return AddonState::Of(env).SetNumThreads(env, static_cast<int>(n));
}

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t seed;
  if (info.Length() > 0 && info[0].IsBigInt()) {
    bool lossless = false;
    seed = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(env, "seed must fit in 64 bits unsigned");
  } else if (info.Length() > 0 && info[0].IsNumber()) {
    double d = info[0].As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != static_cast<double>(static_cast<uint64_t>(d)) || d > 9007199254740991.0) {
      throw Napi::RangeError::New(env, "seed must be a non-negative safe integer or a bigint");
    }
    seed = static_cast<uint64_t>(d);
  } else {
    throw Napi::TypeError::New(env, "manualSeed(seed: number | bigint)");
  }
  Guarded(env, [seed] { at::manual_seed(seed); });  // seeds CPU and every CUDA generator
  return env.Undefined();
}

// Generator states, for checkpoints that resume bit-exact: [cpu, cuda:0, cuda:1, …] as raw bytes.
Napi::Value RngStates(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    std::vector<at::Tensor> states{at::detail::getDefaultCPUGenerator().get_state()};
    for (size_t d = 0; d < torch::cuda::device_count(); ++d) {
      states.push_back(at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(d))).get_state());
    }
    Napi::Array out = Napi::Array::New(env, states.size());
    for (size_t i = 0; i < states.size(); ++i) {
      at::Tensor bytes = states[i].contiguous();
      out.Set(static_cast<uint32_t>(i), Napi::Buffer<uint8_t>::Copy(env, bytes.data_ptr<uint8_t>(), bytes.numel()));
    }
    return out;
  });
}

Napi::Value SetRngStates(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "setRngStates(states: Uint8Array[])");
  Napi::Array array = info[0].As<Napi::Array>();
  Guarded(env, [&] {
    for (uint32_t i = 0; i < array.Length(); ++i) {
      Napi::Value item = array.Get(i);
      if (!item.IsTypedArray()) throw std::invalid_argument("each RNG state must be a Uint8Array");
      auto bytes = item.As<Napi::Uint8Array>();
      at::Tensor state = at::empty({static_cast<int64_t>(bytes.ElementLength())}, at::kByte);
      std::memcpy(state.data_ptr(), bytes.Data(), bytes.ElementLength());
      c10::Device device = i == 0 ? c10::Device(c10::kCPU) : c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i - 1));
      if (i > 0 && i > torch::cuda::device_count()) throw std::invalid_argument("RNG state for a CUDA device this machine does not have");
      at::Generator gen = i == 0 ? at::detail::getDefaultCPUGenerator() : at::globalContext().defaultGenerator(device);
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(state);
    }
  });
  return env.Undefined();
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TensorHandle::LiveStats live = TensorHandle::Live();
  Napi::Object out = Napi::Object::New(env);
  out.Set("liveTensors", static_cast<double>(live.tensors));
  out.Set("liveBytes", static_cast<double>(live.bytes));
  CpuAllocatorStats cpuStats = CachingCpuAllocatorStats();
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("caching", Napi::Boolean::New(env, cpuStats.caching));
  cpu.Set("allocatedBytes", static_cast<double>(cpuStats.allocatedBytes));
  cpu.Set("peakAllocatedBytes", static_cast<double>(cpuStats.peakAllocatedBytes));
  cpu.Set("requestedBytes", static_cast<double>(cpuStats.requestedBytes));
  cpu.Set("peakRequestedBytes", static_cast<double>(cpuStats.peakRequestedBytes));
  cpu.Set("cachedBytes", static_cast<double>(cpuStats.cachedBytes));
  cpu.Set("cacheLimitBytes", static_cast<double>(cpuStats.cacheLimitBytes));
  cpu.Set("cacheHits", static_cast<double>(cpuStats.hits));
  cpu.Set("cacheMisses", static_cast<double>(cpuStats.misses));
  out.Set("cpu", cpu);
  Napi::Array cuda = Napi::Array::New(env);
#ifdef TORCH_DPO_WITH_CUDA
  Guarded(env, [&] {
    if (!torch::cuda::is_available()) return;
    for (size_t d = 0; d < torch::cuda::device_count(); ++d) {
      auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(d));
      Napi::Object device = Napi::Object::New(env);
      device.Set("device", static_cast<double>(d));
      // Index 0 is the aggregate over pool kinds in every libtorch version.
      device.Set("allocatedBytes", static_cast<double>(stats.allocated_bytes[0].current));
      device.Set("reservedBytes", static_cast<double>(stats.reserved_bytes[0].current));
      device.Set("peakAllocatedBytes", static_cast<double>(stats.allocated_bytes[0].peak));
      cuda.Set(static_cast<uint32_t>(d), device);
    }
  });
#endif
  out.Set("cuda", cuda);
  return out;
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  EmptyCpuCache();
#ifdef TORCH_DPO_WITH_CUDA
  Guarded(info.Env(), [] {
    if (torch::cuda::is_available()) c10::cuda::CUDACachingAllocator::emptyCache();
  });
#endif
  return info.Env().Undefined();
}

// resetPeakMemory(): the CPU allocator's and every CUDA device's peaks start again from now.
Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info) {
  ResetCpuPeak();
#ifdef TORCH_DPO_WITH_CUDA
  Guarded(info.Env(), [] {
    if (!torch::cuda::is_available()) return;
    for (size_t d = 0; d < torch::cuda::device_count(); ++d) c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(d));
  });
#endif
  return info.Env().Undefined();
}

Napi::Value SetCpuCacheLimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double bytes = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(bytes >= 0) || bytes > 9007199254740991.0) throw Napi::RangeError::New(env, "setCpuCacheLimit needs a byte count >= 0");
  torch_dpo::SetCpuCacheLimit(static_cast<size_t>(bytes));
  return env.Undefined();
}

// Ends the process now, without running exit handlers or static destructors: a worker thread may be
// inside libtorch, whose teardown would then wait on it or crash. Used by "exit without saving".
Napi::Value ExitImmediately(const Napi::CallbackInfo& info) {
  int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  std::_Exit(code);
}

Napi::Value ShowConfig(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), Guarded(info.Env(), [] { return at::show_config(); }));
}

Napi::Value ParallelInfo(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), Guarded(info.Env(), [] { return at::get_parallel_info(); }));
}

// The BLAS actually mapped into this process. Debian's torch reports BLAS_INFO=generic but calls
// whatever libblas.so.3 the alternatives system points at (reference BLAS or OpenBLAS).
Napi::Value LoadedBlas(const Napi::CallbackInfo& info) {
  std::set<std::string> found;
  dl_iterate_phdr([](dl_phdr_info* lib, size_t, void* out) {
    std::string name = lib->dlpi_name ? lib->dlpi_name : "";
    std::string base = name.substr(name.find_last_of('/') + 1);
    if (base.find("blas") != std::string::npos || base.find("mkl_rt") != std::string::npos) {
      char resolved[PATH_MAX];
      static_cast<std::set<std::string>*>(out)->insert(realpath(name.c_str(), resolved) ? resolved : name);
    }
    return 0;
  }, &found);
  Napi::Array out = Napi::Array::New(info.Env());
  uint32_t i = 0;
  for (const auto& path : found) out.Set(i++, path);
  return out;
}

}  // namespace

void RegisterRuntime(Napi::Env env, Napi::Object exports) {
  exports.Set("version", Napi::Function::New<Version>(env, "version"));
  exports.Set("cudaAvailable", Napi::Function::New<CudaAvailable>(env, "cudaAvailable"));
  exports.Set("cudaDeviceCount", Napi::Function::New<CudaDeviceCount>(env, "cudaDeviceCount"));
  exports.Set("numThreads", Napi::Function::New<NumThreads>(env, "numThreads"));
  exports.Set("setNumThreads", Napi::Function::New<SetNumThreads>(env, "setNumThreads"));
  exports.Set("manualSeed", Napi::Function::New<ManualSeed>(env, "manualSeed"));
  exports.Set("memory", Napi::Function::New<Memory>(env, "memory"));
  exports.Set("rngStates", Napi::Function::New<RngStates>(env, "rngStates"));
  exports.Set("setRngStates", Napi::Function::New<SetRngStates>(env, "setRngStates"));
  exports.Set("emptyCache", Napi::Function::New<EmptyCache>(env, "emptyCache"));
  exports.Set("resetPeakMemory", Napi::Function::New<ResetPeakMemory>(env, "resetPeakMemory"));
  exports.Set("exitImmediately", Napi::Function::New<ExitImmediately>(env, "exitImmediately"));
  exports.Set("setCpuCacheLimit", Napi::Function::New<SetCpuCacheLimit>(env, "setCpuCacheLimit"));
  exports.Set("showConfig", Napi::Function::New<ShowConfig>(env, "showConfig"));
  exports.Set("parallelInfo", Napi::Function::New<ParallelInfo>(env, "parallelInfo"));
  exports.Set("loadedBlas", Napi::Function::New<LoadedBlas>(env, "loadedBlas"));
}

}  // namespace torch_dpo
