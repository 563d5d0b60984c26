#include "process_group.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>

#include "addon_state.h"
#include "errors.h"
#include "tensor_handle.h"

namespace torch_dpo {

namespace {

constexpr napi_type_tag kGroupTag = {0x4e1f0b7a9c2d3e61ULL, 0x8a5b6c7d0e1f2a3bULL};

struct GroupState {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  int rank;
  int size;
};

class GroupHandle : public Napi::ObjectWrap<GroupHandle> {
 public:
  explicit GroupHandle(const Napi::CallbackInfo& info) : ObjectWrap<GroupHandle>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "NativeProcessGroup is created by createProcessGroup");
    state_ = *info[0].As<Napi::External<std::shared_ptr<GroupState>>>().Data();
    info.This().As<Napi::Object>().TypeTag(&kGroupTag);
  }

  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Checked(info.Env())->rank); }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Checked(info.Env())->size); }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    state_.reset();
    return info.Env().Undefined();
  }

  // allReduce(tensors, op: 'sum' | 'avg' | 'max' | 'min'): in place on every tensor.
  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    auto tensors = Tensors(info, 0);
    std::string op = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "sum";
    if (op != "sum" && op != "avg" && op != "max" && op != "min") throw Napi::TypeError::New(info.Env(), "allReduce op must be sum, avg, max or min");
    return Run(info.Env(), [tensors, op](GroupState& g) mutable {
      c10d::AllreduceOptions options;
      options.reduceOp = op == "max" ? c10d::ReduceOp::MAX : op == "min" ? c10d::ReduceOp::MIN : c10d::ReduceOp::SUM;
      g.group->allreduce(tensors, options)->wait();
      if (op == "avg") for (auto& t : tensors) t.div_(g.size);  // Gloo has no AVG: sum, then divide
    });
  }

  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    auto tensors = Tensors(info, 0);
    int root = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
    return Run(info.Env(), [tensors, root](GroupState& g) mutable {
      c10d::BroadcastOptions options;
      options.rootRank = root;
      g.group->broadcast(tensors, options)->wait();
    });
  }

  // allGather(tensor) → Promise<Tensor[]> (one per rank).
  Napi::Value AllGather(const Napi::CallbackInfo& info) {
    at::Tensor input = TensorHandle::FromJs(info[0], "allGather: tensor");
    std::shared_ptr<GroupState> state = Checked(info.Env());
    return AddonState::Of(info.Env()).WorkerFor(info.Env(), c10::Device(c10::kCPU)).Submit(info.Env(), [state, input] {
      std::vector<std::vector<at::Tensor>> outputs(1);
      for (int r = 0; r < state->size; ++r) outputs[0].push_back(at::empty_like(input));
      std::vector<at::Tensor> inputs{input};
      state->group->allgather(outputs, inputs)->wait();
      auto gathered = outputs[0];
      return Completer([gathered](Napi::Env env) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, gathered.size());
        for (size_t i = 0; i < gathered.size(); ++i) out.Set(static_cast<uint32_t>(i), TensorHandle::Wrap(env, gathered[i]));
        return out;
      });
    }, false);
  }

  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    return Run(info.Env(), [](GroupState& g) { g.group->barrier()->wait(); });
  }

  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<GroupState> state) {
    return AddonState::Of(env).processGroupConstructor.New({Napi::External<std::shared_ptr<GroupState>>::New(env, &state)});
  }

 private:
  std::shared_ptr<GroupState> Checked(Napi::Env env) {
    if (!state_) throw Napi::Error::New(env, "ProcessGroup was disposed: it can no longer be used");
    return state_;
  }

  std::vector<at::Tensor> Tensors(const Napi::CallbackInfo& info, size_t index) {
    if (info.Length() <= index || !info[index].IsArray()) throw Napi::TypeError::New(info.Env(), "expected an array of tensors");
    Napi::Array array = info[index].As<Napi::Array>();
    std::vector<at::Tensor> tensors;
    for (uint32_t i = 0; i < array.Length(); ++i) {
      at::Tensor t = TensorHandle::FromJs(array.Get(i), "collective input");
      if (!t.is_cpu()) throw Napi::TypeError::New(info.Env(), "the Gloo process group takes CPU tensors (NCCL for CUDA is not built yet)");
      if (!t.is_contiguous()) throw Napi::TypeError::New(info.Env(), "collective inputs must be contiguous");
      tensors.push_back(t);
    }
    return tensors;
  }

  template <typename Body>
  Napi::Promise Run(Napi::Env env, Body body) {
    std::shared_ptr<GroupState> state = Checked(env);
    return AddonState::Of(env).WorkerFor(env, c10::Device(c10::kCPU)).Submit(env, [state, body]() mutable {
      at::NoGradGuard noGrad;
      body(*state);
      return Completer();
    }, false);
  }

  std::shared_ptr<GroupState> state_;
};

}  // namespace

Napi::Function DefineProcessGroupClass(Napi::Env env) {
  return GroupHandle::DefineClass(env, "NativeProcessGroup", {
      GroupHandle::InstanceAccessor<&GroupHandle::Rank>("rank"),
      GroupHandle::InstanceAccessor<&GroupHandle::Size>("size"),
      GroupHandle::InstanceMethod<&GroupHandle::Dispose>("dispose"),
      GroupHandle::InstanceMethod<&GroupHandle::AllReduce>("allReduce"),
      GroupHandle::InstanceMethod<&GroupHandle::Broadcast>("broadcast"),
      GroupHandle::InstanceMethod<&GroupHandle::AllGather>("allGather"),
      GroupHandle::InstanceMethod<&GroupHandle::Barrier>("barrier"),
  });
}

Napi::Value CreateProcessGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "createProcessGroup({ rank, worldSize, masterAddr, masterPort, timeoutMs })");
  Napi::Object o = info[0].As<Napi::Object>();
  auto num = [&](const char* key) {
    Napi::Value v = o.Get(key);
    if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("createProcessGroup: '") + key + "' must be a number");
    return v.As<Napi::Number>().Int64Value();
  };
  int rank = static_cast<int>(num("rank")), size = static_cast<int>(num("worldSize"));
  int64_t port = num("masterPort"), timeoutMs = num("timeoutMs");
  if (!o.Get("masterAddr").IsString()) throw Napi::TypeError::New(env, "createProcessGroup: 'masterAddr' must be a string");
  std::string addr = o.Get("masterAddr").As<Napi::String>().Utf8Value();
  if (size < 1 || rank < 0 || rank >= size) throw Napi::RangeError::New(env, "createProcessGroup: rank " + std::to_string(rank) + " is not within world size " + std::to_string(size));
  if (port < 1 || port > 65535) throw Napi::RangeError::New(env, "createProcessGroup: masterPort must be 1..65535");
  return AddonState::Of(env).WorkerFor(env, c10::Device(c10::kCPU)).Submit(env, [rank, size, addr, port, timeoutMs] {
    c10d::TCPStoreOptions storeOptions;
    storeOptions.port = static_cast<std::uint16_t>(port);
    storeOptions.isServer = rank == 0;
    storeOptions.numWorkers = static_cast<std::size_t>(size);
    storeOptions.waitWorkers = true;
    storeOptions.timeout = std::chrono::milliseconds(timeoutMs);
    auto store = c10::make_intrusive<c10d::TCPStore>(addr, storeOptions);
    auto options = c10d::ProcessGroupGloo::Options::create();
    options->timeout = std::chrono::milliseconds(timeoutMs);
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(addr));
    auto state = std::make_shared<GroupState>(GroupState{c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options), rank, size});
    return Completer([state](Napi::Env env) -> Napi::Value { return GroupHandle::Wrap(env, state); });
  }, false);
}

}  // namespace torch_dpo
