#include "grad_reducer.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>

#include "addon_state.h"
#include "group_state.h"
#include "tensor_handle.h"

namespace torch_dpo {

namespace {

constexpr napi_type_tag kReducerTag = {0x2c7d9e1f3a4b5c6dULL, 0x9e8f7a6b5c4d3e2fULL};

struct ReducerState {
  std::shared_ptr<GroupState> group;
  // ZeRO-2: each bucket's gradients are reduce-scattered as soon as they are final, in every
  // backward; the parameters' gradients are released at once and this rank's slice of the sum over
  // ranks accumulates in `slices` (one per bucket, zero-padded to a multiple of the world size).
  bool shard = false;
  std::vector<int64_t> chunks;
  std::vector<at::Tensor> slices;
  std::vector<at::Tensor> outs;
  size_t folded = 0;
  // Parameters that had a gradient in some backward since takeSeen() (AdamW skips those without).
  std::vector<bool> seen;
  // Parameters in reverse registration order (the order backward finalises their gradients), and
  // buckets of indices into them; bucket k is launched only after buckets < k, so every rank issues
  // the collectives in one order.
  std::vector<at::Tensor> params;
  std::vector<std::vector<size_t>> buckets;
  std::vector<size_t> bucketOf;
  std::vector<at::Tensor> flats;
  std::vector<WorkPtr> works;
  std::vector<size_t> pending;
  std::vector<bool> ready;
  size_t launched = 0;
  // Buckets the last finish() found already launched by backward (the overlap actually achieved).
  std::atomic<size_t> launchedInBackward{0};
  std::atomic<bool> armed{false};
  std::mutex mutex;
  // Parameters hold their accumulators weakly; without these references the hooks would vanish
  // with each graph.
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;

  // Seconds spent waiting for bucket collectives (cumulative; what backward did not hide).
  double waitSeconds = 0;

  void Wait(size_t b) {
    const auto start = std::chrono::steady_clock::now();
    works[b]->wait();
    waitSeconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  void Reset() {
    std::fill(ready.begin(), ready.end(), false);
    for (size_t b = 0; b < buckets.size(); ++b) pending[b] = buckets[b].size();
    works.assign(buckets.size(), WorkPtr());
    launched = 0;
    folded = 0;
  }

  // ZeRO-2, under mutex: the bucket's gradients into a fresh padded buffer (the parameters' own
  // gradients released right away), then the reduce-scatter of its sum over ranks, not waited for.
  void LaunchShard(size_t b) {
    const int64_t chunk = chunks[b];
    flats[b] = at::zeros({chunk * group->size}, slices[b].options());
    int64_t offset = 0;
    for (size_t i : buckets[b]) {
      at::Tensor& grad = params[i].mutable_grad();
      if (grad.defined()) flats[b].narrow(0, offset, params[i].numel()).copy_(grad.reshape({-1}));
      if (grad.defined()) seen[i] = true;
      grad.reset();
      offset += params[i].numel();
    }
#ifdef TORCH_DPO_WITH_NCCL
    if (group->UsesNccl(flats[b].device())) {
      outs[b] = at::empty({chunk}, slices[b].options());
      works[b] = group->nccl->_reduce_scatter_base(outs[b], flats[b]);
      return;
    }
#endif
    // Gloo in libtorch 1.13 has no reduce_scatter: the sum of the whole buffer, of which this rank keeps its slice.
    std::vector<at::Tensor> tensors{flats[b]};
    works[b] = group->gloo->allreduce(tensors);
  }

  // ZeRO-2, under mutex: waits for bucket b, adds this rank's part of the sum into its slice and
  // frees the buffers.
  void Fold(size_t b) {
    Wait(b);
    if (outs[b].defined()) slices[b].add_(outs[b]);
    else slices[b].add_(flats[b].narrow(0, group->rank * chunks[b], chunks[b]));
    // The work keeps its tensors: dropping it (not only our references) frees the bucket's buffer now.
    works[b] = WorkPtr();
    flats[b] = at::Tensor();
    outs[b] = at::Tensor();
  }

  // Under mutex. Copies the bucket's gradients (zeros where a parameter has none) into its own
  // buffer and starts the sum over ranks without waiting.
  void Launch(size_t b) {
    std::vector<at::Tensor> grads;
    int64_t total = 0;
    for (size_t i : buckets[b]) total += params[i].numel();
    if (!flats[b].defined()) flats[b] = at::empty({total}, params[buckets[b][0]].options());
    int64_t offset = 0;
    for (size_t i : buckets[b]) {
      at::Tensor slice = flats[b].narrow(0, offset, params[i].numel());
      const at::Tensor& grad = params[i].grad();
      if (grad.defined()) slice.copy_(grad.reshape({-1}));
      else slice.zero_();
      offset += params[i].numel();
    }
    std::vector<at::Tensor> tensors{flats[b]};
    works[b] = group->On(flats[b].device(), [&](auto& backend) { return backend.allreduce(tensors); });
  }

  void MarkReady(size_t index) {
    if (!armed.load()) return;
    std::lock_guard<std::mutex> lock(mutex);
    if (ready[index]) return;
    ready[index] = true;
    --pending[bucketOf[index]];
    while (launched < buckets.size() && pending[launched] == 0) {
      if (shard) LaunchShard(launched++);
      else Launch(launched++);
    }
    // ZeRO-2 keeps one bucket in flight besides the newest: gradient memory stays a bucket or two.
    while (shard && folded + 1 < launched) Fold(folded++);
  }

  // Launches what backward did not (parameters without gradients), waits for every bucket, and
  // writes the averages into the gradients that exist.
  void Finish() {
    std::lock_guard<std::mutex> lock(mutex);
    armed.store(false);
    launchedInBackward.store(launched);
    if (shard) {
      while (launched < buckets.size()) LaunchShard(launched++);
      while (folded < launched) Fold(folded++);
      Reset();
      return;
    }
    while (launched < buckets.size()) Launch(launched++);
    for (size_t b = 0; b < buckets.size(); ++b) {
      Wait(b);
      flats[b].div_(group->size);
      int64_t offset = 0;
      for (size_t i : buckets[b]) {
        if (params[i].grad().defined()) params[i].mutable_grad().copy_(flats[b].narrow(0, offset, params[i].numel()).view(params[i].sizes()));
        offset += params[i].numel();
      }
    }
    Reset();
  }
};

class ReadyHook : public torch::autograd::FunctionPostHook {
 public:
  ReadyHook(std::weak_ptr<ReducerState> state, size_t index) : state_(std::move(state)), index_(index) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) override {
    if (auto state = state_.lock()) state->MarkReady(index_);
    return outputs;
  }

 private:
  std::weak_ptr<ReducerState> state_;
  size_t index_;
};

class ReducerHandle : public Napi::ObjectWrap<ReducerHandle> {
 public:
  explicit ReducerHandle(const Napi::CallbackInfo& info) : ObjectWrap<ReducerHandle>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "NativeGradReducer is created by ProcessGroup.gradReducer");
    state_ = *info[0].As<Napi::External<std::shared_ptr<ReducerState>>>().Data();
    info.This().As<Napi::Object>().TypeTag(&kReducerTag);
  }
  ~ReducerHandle() override { Release(); }

  // arm(): the next backward launches bucket all-reduces as gradients become final (the last
  // micro-batch of an accumulated step; earlier ones only accumulate locally).
  Napi::Value Arm(const Napi::CallbackInfo& info) {
    Checked(info.Env())->armed.store(true);
    return info.Env().Undefined();
  }

  // finish() → Promise: gradients hold the averages over ranks.
  Napi::Value Finish(const Napi::CallbackInfo& info) {
    std::shared_ptr<ReducerState> state = Checked(info.Env());
    return AddonState::Of(info.Env()).WorkerFor(info.Env(), state->params[0].device()).Submit(info.Env(), [state] {
      at::NoGradGuard noGrad;
      state->Finish();
      return Completer();
    }, false);
  }

  // slices() → this rank's slice of each bucket's gradient sum (ZeRO-2), the reducer's own tensors.
  Napi::Value Slices(const Napi::CallbackInfo& info) {
    std::shared_ptr<ReducerState> state = Checked(info.Env());
    Napi::Array out = Napi::Array::New(info.Env(), state->slices.size());
    for (size_t b = 0; b < state->slices.size(); ++b) out.Set(static_cast<uint32_t>(b), TensorHandle::Wrap(info.Env(), state->slices[b]));
    return out;
  }

  // layout() → per bucket, the indices (into the array given to gradReducer) of its parameters, in
  // the order they are laid end to end.
  Napi::Value Layout(const Napi::CallbackInfo& info) {
    std::shared_ptr<ReducerState> state = Checked(info.Env());
    Napi::Array out = Napi::Array::New(info.Env(), state->buckets.size());
    const size_t n = state->params.size();
    for (size_t b = 0; b < state->buckets.size(); ++b) {
      Napi::Array bucket = Napi::Array::New(info.Env(), state->buckets[b].size());
      for (size_t k = 0; k < state->buckets[b].size(); ++k) bucket.Set(static_cast<uint32_t>(k), static_cast<double>(n - 1 - state->buckets[b][k]));
      out.Set(static_cast<uint32_t>(b), bucket);
    }
    return out;
  }

  // takeSeen() → per parameter (gradReducer's order), whether it had a gradient since the last call.
  Napi::Value TakeSeen(const Napi::CallbackInfo& info) {
    std::shared_ptr<ReducerState> state = Checked(info.Env());
    std::lock_guard<std::mutex> lock(state->mutex);
    const size_t n = state->params.size();
    Napi::Array out = Napi::Array::New(info.Env(), n);
    for (size_t i = 0; i < n; ++i) out.Set(static_cast<uint32_t>(n - 1 - i), Napi::Boolean::New(info.Env(), state->seen[i]));
    std::fill(state->seen.begin(), state->seen.end(), false);
    return out;
  }

  // stats() → { buckets, launchedInBackward } of the last finish(), and waitSeconds (cumulative).
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    std::shared_ptr<ReducerState> state = Checked(info.Env());
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("buckets", static_cast<double>(state->buckets.size()));
    out.Set("launchedInBackward", static_cast<double>(state->launchedInBackward.load()));
    std::lock_guard<std::mutex> lock(state->mutex);
    out.Set("waitSeconds", state->waitSeconds);
    return out;
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<ReducerState> state) {
    return AddonState::Of(env).gradReducerConstructor.New({Napi::External<std::shared_ptr<ReducerState>>::New(env, &state)});
  }

 private:
  std::shared_ptr<ReducerState> Checked(Napi::Env env) {
    if (!state_) throw Napi::Error::New(env, "GradReducer was disposed: it can no longer be used");
    return state_;
  }

  // The hooks stay on the accumulators but hold the state weakly, so they turn into no-ops. Removing
  // them here could race with a backward running on a worker thread.
  void Release() { state_.reset(); }

  std::shared_ptr<ReducerState> state_;
};

}  // namespace

Napi::Function DefineGradReducerClass(Napi::Env env) {
  return ReducerHandle::DefineClass(env, "NativeGradReducer", {
      ReducerHandle::InstanceMethod<&ReducerHandle::Arm>("arm"),
      ReducerHandle::InstanceMethod<&ReducerHandle::Finish>("finish"),
      ReducerHandle::InstanceMethod<&ReducerHandle::Stats>("stats"),
      ReducerHandle::InstanceMethod<&ReducerHandle::Slices>("slices"),
      ReducerHandle::InstanceMethod<&ReducerHandle::Layout>("layout"),
      ReducerHandle::InstanceMethod<&ReducerHandle::TakeSeen>("takeSeen"),
      ReducerHandle::InstanceMethod<&ReducerHandle::Dispose>("dispose"),
  });
}

Napi::Value CreateGradReducer(Napi::Env env, std::shared_ptr<GroupState> group, const Napi::Value& value, bool shard) {
  if (!value.IsArray() || value.As<Napi::Array>().Length() == 0) throw Napi::TypeError::New(env, "gradReducer(params): expected a non-empty array of parameters");
  Napi::Array array = value.As<Napi::Array>();
  auto state = std::make_shared<ReducerState>();
  state->group = std::move(group);
  state->shard = shard;
  for (uint32_t i = array.Length(); i-- > 0;) {
    at::Tensor p = TensorHandle::FromJs(array.Get(i), "gradReducer: parameter");
    if (!p.requires_grad() || !p.is_leaf()) throw Napi::TypeError::New(env, "gradReducer: every parameter must be a leaf tensor that requires grad");
    if (!state->params.empty() && p.device() != state->params[0].device()) throw Napi::TypeError::New(env, "gradReducer: parameters must be on one device");
    state->params.push_back(p);
  }
  // Bucket layout over the reversed order, by the same rule as the coalesced all-reduce.
  size_t index = 0;
  for (const auto& bucket : Buckets(state->params, state->group->bucketBytes)) {
    state->buckets.emplace_back();
    for (size_t k = 0; k < bucket.size(); ++k) {
      state->bucketOf.push_back(state->buckets.size() - 1);
      state->buckets.back().push_back(index++);
    }
  }
  state->flats.resize(state->buckets.size());
  state->outs.resize(state->buckets.size());
  if (shard) {
    for (const auto& bucket : state->buckets) {
      int64_t total = 0;
      for (size_t i : bucket) total += state->params[i].numel();
      state->chunks.push_back((total + state->group->size - 1) / state->group->size);
      state->slices.push_back(at::zeros({state->chunks.back()}, state->params[bucket[0]].options().requires_grad(false)));
    }
  }
  state->pending.resize(state->buckets.size());
  state->ready.resize(state->params.size());
  state->seen.assign(state->params.size(), false);
  state->Reset();
  for (size_t i = 0; i < state->params.size(); ++i) {
    std::shared_ptr<torch::autograd::Node> accumulator = torch::autograd::impl::grad_accumulator(state->params[i]);
    accumulator->add_post_hook(std::make_unique<ReadyHook>(state, i));
    state->accumulators.push_back(std::move(accumulator));
  }
  return ReducerHandle::Wrap(env, state);
}

}  // namespace torch_dpo
