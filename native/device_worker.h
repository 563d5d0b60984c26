// One worker thread per device with a FIFO job queue. ATen work runs there, never on the JS thread;
// the JS thread only builds results (wrapping tensors) when a job completes. The worker itself makes
// no N-API calls beyond handing finished jobs to a thread-safe function.
#pragma once

#include <napi.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace torch_dpo {

// Builds the JS result of a finished job; runs on the JS thread.
using Completer = std::function<Napi::Value(Napi::Env)>;
// The ATen work of a job; runs on the worker thread and returns how to build the JS result.
using Work = std::function<Completer()>;

class DeviceWorker {
 public:
  DeviceWorker(Napi::Env env, std::string name, int numThreads);
  ~DeviceWorker();
  DeviceWorker(const DeviceWorker&) = delete;
  DeviceWorker& operator=(const DeviceWorker&) = delete;

  // JS thread. `gradEnabled` is the autograd mode the work runs under (grad mode is thread-local
  // in libtorch, so the caller's no-grad scope has to travel with each job).
  Napi::Promise Submit(Napi::Env env, Work work, bool gradEnabled);
  // Stops after the job in progress; jobs still queued are dropped (their promises never settle,
  // which only happens while the environment is being torn down).
  void Shutdown();

 private:
  struct Job;
  static void Complete(Napi::Env env, Napi::Function, DeviceWorker* self, Job* job);
  void Loop(int numThreads);

  using CompletionFn = Napi::TypedThreadSafeFunction<DeviceWorker, Job, &DeviceWorker::Complete>;

  std::string name_;
  CompletionFn completion_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job*> queue_;
  bool stopping_ = false;
  std::thread thread_;
  size_t inFlight_ = 0;  // JS thread only: the thread-safe function keeps the loop alive while > 0
};

}  // namespace torch_dpo
