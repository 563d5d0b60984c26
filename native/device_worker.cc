#include "device_worker.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include "errors.h"

namespace torch_dpo {

struct DeviceWorker::Job {
  Work work;
  bool gradEnabled;
  Napi::Promise::Deferred deferred;
  Completer completer;
  std::string error;
  bool failed = false;
};

DeviceWorker::DeviceWorker(Napi::Env env, std::string name, int numThreads) : name_(std::move(name)) {
  completion_ = CompletionFn::New(env, "torch-dpo:" + name_, 0, 1, this);
  completion_.Unref(env);  // an idle worker must not keep the process alive
  thread_ = std::thread([this, numThreads] { Loop(numThreads); });
}

DeviceWorker::~DeviceWorker() { Shutdown(); }

Napi::Promise DeviceWorker::Submit(Napi::Env env, Work work, bool gradEnabled) {
  auto* job = new Job{std::move(work), gradEnabled, Napi::Promise::Deferred::New(env), nullptr, {}};
  Napi::Promise promise = job->deferred.Promise();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      delete job;
      throw Napi::Error::New(env, "torch-dpo: the " + name_ + " worker has shut down");
    }
    queue_.push_back(job);
  }
  if (inFlight_++ == 0) completion_.Ref(env);
  wake_.notify_one();
  return promise;
}

void DeviceWorker::Loop(int numThreads) {
  // Intra-op thread counts are per thread under OpenMP: set them where the ops run.
  at::init_num_threads();
  if (numThreads > 0) at::set_num_threads(numThreads);
  for (;;) {
    Job* job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = queue_.front();
      queue_.pop_front();
    }
    try {
      c10::AutoGradMode gradMode(job->gradEnabled);
      job->completer = job->work();
    } catch (const std::exception& e) {
      job->failed = true;
      job->error = DescribeException(e);
    } catch (...) {
      job->failed = true;
      job->error = "unknown native error";
    }
    job->work = nullptr;  // release captured tensors on the worker, not later on the JS thread
    if (completion_.NonBlockingCall(job) != napi_ok) delete job;  // environment is closing
  }
}

void DeviceWorker::Complete(Napi::Env env, Napi::Function, DeviceWorker* self, Job* job) {
  std::unique_ptr<Job> owned(job);
  if (env == nullptr) return;  // the thread-safe function is being torn down
  try {
    if (--self->inFlight_ == 0) self->completion_.Unref(env);
    if (job->failed) {
      Napi::Error error = Napi::Error::New(env, job->error);
      error.Set("code", Napi::String::New(env, "ERR_TORCH"));
      job->deferred.Reject(error.Value());
      return;
    }
    try {
      job->deferred.Resolve(job->completer ? job->completer(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      job->deferred.Reject(e.Value());
    } catch (const std::exception& e) {
      job->deferred.Reject(Napi::Error::New(env, DescribeException(e)).Value());
    }
  } catch (...) {
    // Only while the environment terminates (worker.terminate()): no JS is left to receive the result.
  }
}

void DeviceWorker::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (Job* job : queue_) delete job;
  queue_.clear();
}

}  // namespace torch_dpo
