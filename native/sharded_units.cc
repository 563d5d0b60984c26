#include "sharded_units.h"

#include <algorithm>
#include <stdexcept>

#include "addon_state.h"
#include "dtype.h"
#include "errors.h"
#include "tensor_handle.h"

namespace torch_dpo {

namespace {
double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

ShardedUnits::ShardedUnits(std::shared_ptr<GroupState> group, std::vector<std::vector<at::Tensor>> units, UnitOptions options) : group_(std::move(group)) {
  at::NoGradGuard noGrad;
  for (auto& params : units) {
    Unit unit;
    unit.params = std::move(params);
    for (const auto& p : unit.params) {
      unit.shapes.push_back(p.sizes().vec());
      unit.total += p.numel();
    }
    unit.chunk = (unit.total + group_->size - 1) / group_->size;
    // This rank's slice straight from the parameters' overlapping parts (no flat copy of the unit).
    const int64_t from = group_->rank * unit.chunk;
    const int64_t to = from + unit.chunk;
    unit.shard = at::zeros({unit.chunk}, unit.params[0].options().requires_grad(false).device(options.device.value_or(unit.params[0].device())));
    int64_t offset = 0;
    for (const auto& p : unit.params) {
      const int64_t n = p.numel();
      const int64_t start = std::max(from, offset);
      const int64_t end = std::min(to, offset + n);
      if (end > start) unit.shard.narrow(0, start - from, end - start).copy_(p.detach().reshape({-1}).narrow(0, start - offset, end - start));
      offset += n;
    }
    bool trainable = false;
    for (const auto& p : unit.params) trainable = trainable || p.requires_grad();
    if (trainable && options.grads) unit.gradShard = at::zeros({unit.chunk}, unit.shard.options().dtype(options.gradDtype.value_or(unit.shard.scalar_type())));
    units_.push_back(std::move(unit));
    // The whole values go at once: sharding a big model never holds two copies of it.
    Free(units_.size() - 1);
  }
}

void ShardedUnits::StartGather(Unit& unit) {
  unit.buffer = at::zeros({unit.chunk * group_->size}, unit.shard.options());
#ifdef TORCH_DPO_WITH_NCCL
  if (group_->UsesNccl(unit.buffer.device())) {
    unit.pending = group_->nccl->_allgather_base(unit.buffer, unit.shard);
    return;
  }
#endif
  // As allGatherSlices: Gloo's allgather is slow on CPU; the slices summed over ranks are the gather.
  // Summed as bytes: each byte has one nonzero contributor, so the values arrive bit for bit (a float
  // sum would turn -0 into +0), in any dtype (Gloo in libtorch 1.13 cannot sum bf16).
  unit.buffer.narrow(0, group_->rank * unit.chunk, unit.chunk).copy_(unit.shard);
  std::vector<at::Tensor> tensors{unit.buffer.view(at::kByte)};
  unit.pending = group_->gloo->allreduce(tensors);
}

void ShardedUnits::Point(Unit& unit, const at::Tensor& flat) {
  int64_t offset = 0;
  for (size_t i = 0; i < unit.params.size(); ++i) {
    const int64_t n = c10::multiply_integers(unit.shapes[i]);
    // set_data keeps the parameter (its autograd identity, the module's reference) and swaps its values.
    unit.params[i].set_data(flat.defined() ? flat.narrow(0, offset, n).view(unit.shapes[i]) : at::empty({0}, unit.shard.options()));
    offset += n;
  }
}

void ShardedUnits::Prefetch(size_t u) {
  std::lock_guard<std::mutex> lock(mutex_);
  Unit& unit = units_.at(u);
  if (unit.gathered || unit.pending) return;
  at::NoGradGuard noGrad;
  StartGather(unit);
}

void ShardedUnits::Gather(size_t u) {
  std::lock_guard<std::mutex> lock(mutex_);
  Unit& unit = units_.at(u);
  if (unit.gathered) return;
  at::NoGradGuard noGrad;
  if (!unit.pending) StartGather(unit);
  const auto start = std::chrono::steady_clock::now();
  unit.pending->wait();
  stats_.gatherWaitSeconds += SecondsSince(start);
  stats_.gathers += 1;
  unit.pending.reset();
  Point(unit, unit.buffer);
  unit.gathered = true;
}

void ShardedUnits::Free(size_t u) {
  std::lock_guard<std::mutex> lock(mutex_);
  Unit& unit = units_.at(u);
  at::NoGradGuard noGrad;
  if (unit.pending) {
    unit.pending->wait();
    unit.pending.reset();
  }
  Point(unit, at::Tensor());
  unit.buffer = at::Tensor();
  unit.gathered = false;
}

void ShardedUnits::ReduceGrads(size_t u) {
  std::lock_guard<std::mutex> lock(mutex_);
  Unit& unit = units_.at(u);
  if (!unit.gradShard.defined()) return;
  at::NoGradGuard noGrad;
  // In the gradient slices' dtype: bf16 gradients are summed over ranks in fp32.
  at::Tensor flat = at::zeros({unit.chunk * group_->size}, unit.gradShard.options());
  int64_t offset = 0;
  for (size_t i = 0; i < unit.params.size(); ++i) {
    at::Tensor& grad = unit.params[i].mutable_grad();
    const int64_t n = c10::multiply_integers(unit.shapes[i]);
    if (grad.defined()) flat.narrow(0, offset, n).copy_(grad.reshape({-1}));
    grad.reset();
    offset += n;
  }
  const auto start = std::chrono::steady_clock::now();
#ifdef TORCH_DPO_WITH_NCCL
  if (group_->UsesNccl(flat.device())) {
    at::Tensor mine = at::empty({unit.chunk}, flat.options());
    group_->nccl->_reduce_scatter_base(mine, flat)->wait();
    stats_.reduceSeconds += SecondsSince(start);
    stats_.reduces += 1;
    unit.gradShard.add_(mine);
    return;
  }
#endif
  std::vector<at::Tensor> tensors{flat};
  group_->gloo->allreduce(tensors)->wait();
  stats_.reduceSeconds += SecondsSince(start);
  stats_.reduces += 1;
  unit.gradShard.add_(flat.narrow(0, group_->rank * unit.chunk, unit.chunk));
}

UnitStats ShardedUnits::stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void ShardedUnits::Commit(size_t u) {
  std::lock_guard<std::mutex> lock(mutex_);
  Unit& unit = units_.at(u);
  if (!unit.gathered) throw std::invalid_argument("commit: unit " + std::to_string(u) + " is not gathered");
  at::NoGradGuard noGrad;
  unit.shard.copy_(unit.buffer.narrow(0, group_->rank * unit.chunk, unit.chunk));
}

namespace {

constexpr napi_type_tag kUnitsTag = {0x6a1e2f3c4b5d6e7fULL, 0x1b2c3d4e5f6a7b8cULL};

class UnitsHandle : public Napi::ObjectWrap<UnitsHandle> {
 public:
  explicit UnitsHandle(const Napi::CallbackInfo& info) : ObjectWrap<UnitsHandle>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "NativeShardedUnits is created by ProcessGroup.shardUnits");
    units_ = *info[0].As<Napi::External<std::shared_ptr<ShardedUnits>>>().Data();
    info.This().As<Napi::Object>().TypeTag(&kUnitsTag);
  }

  std::shared_ptr<ShardedUnits> Checked(Napi::Env env) {
    if (!units_) throw Napi::Error::New(env, "ShardedUnits was disposed: it can no longer be used");
    return units_;
  }

  // gather(u, prefetch?) / free(u) / reduceGrads(u) → Promise, on the device's worker.
  Napi::Value Gather(const Napi::CallbackInfo& info) {
    const size_t u = Index(info, 0);
    const int64_t next = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int64Value() : -1;
    return Submit(info, [u, next](ShardedUnits& units) {
      units.Gather(u);
      if (next >= 0 && static_cast<size_t>(next) < units.size()) units.Prefetch(static_cast<size_t>(next));
    });
  }
  Napi::Value Free(const Napi::CallbackInfo& info) {
    const size_t u = Index(info, 0);
    return Submit(info, [u](ShardedUnits& units) { units.Free(u); });
  }
  Napi::Value ReduceGrads(const Napi::CallbackInfo& info) {
    const size_t u = Index(info, 0);
    return Submit(info, [u](ShardedUnits& units) { units.ReduceGrads(u); });
  }
  Napi::Value Commit(const Napi::CallbackInfo& info) {
    const size_t u = Index(info, 0);
    return Submit(info, [u](ShardedUnits& units) { units.Commit(u); });
  }

  // shards() / gradShards() → this rank's value and gradient slices, one per unit (the units' own tensors).
  Napi::Value Shards(const Napi::CallbackInfo& info) { return List(info, false); }
  Napi::Value GradShards(const Napi::CallbackInfo& info) { return List(info, true); }

  // stats() → { gatherWaitSeconds, gathers, reduceSeconds, reduces }, cumulative.
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    const UnitStats stats = Checked(info.Env())->stats();
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("gatherWaitSeconds", stats.gatherWaitSeconds);
    out.Set("gathers", static_cast<double>(stats.gathers));
    out.Set("reduceSeconds", stats.reduceSeconds);
    out.Set("reduces", static_cast<double>(stats.reduces));
    return out;
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    units_.reset();
    return info.Env().Undefined();
  }

 private:
  size_t Index(const Napi::CallbackInfo& info, size_t at) {
    std::shared_ptr<ShardedUnits> units = Checked(info.Env());
    if (info.Length() <= at || !info[at].IsNumber()) throw Napi::TypeError::New(info.Env(), "expected a unit index");
    const int64_t u = info[at].As<Napi::Number>().Int64Value();
    if (u < 0 || static_cast<size_t>(u) >= units->size()) throw Napi::RangeError::New(info.Env(), "unit " + std::to_string(u) + " of " + std::to_string(units->size()));
    return static_cast<size_t>(u);
  }

  template <typename Body>
  Napi::Value Submit(const Napi::CallbackInfo& info, Body body) {
    std::shared_ptr<ShardedUnits> units = Checked(info.Env());
    return AddonState::Of(info.Env()).WorkerFor(info.Env(), units->shard(0).device()).Submit(info.Env(), [units, body] {
      body(*units);
      return Completer();
    }, false);
  }

  Napi::Value List(const Napi::CallbackInfo& info, bool grads) {
    std::shared_ptr<ShardedUnits> units = Checked(info.Env());
    Napi::Array out = Napi::Array::New(info.Env(), units->size());
    for (size_t u = 0; u < units->size(); ++u) {
      const at::Tensor& t = grads ? units->gradShard(u) : units->shard(u);
      out.Set(static_cast<uint32_t>(u), t.defined() ? TensorHandle::Wrap(info.Env(), t) : info.Env().Null());
    }
    return out;
  }

  std::shared_ptr<ShardedUnits> units_;
};

}  // namespace

Napi::Function DefineShardedUnitsClass(Napi::Env env) {
  return UnitsHandle::DefineClass(env, "NativeShardedUnits", {
      UnitsHandle::InstanceMethod<&UnitsHandle::Gather>("gather"),
      UnitsHandle::InstanceMethod<&UnitsHandle::Free>("free"),
      UnitsHandle::InstanceMethod<&UnitsHandle::ReduceGrads>("reduceGrads"),
      UnitsHandle::InstanceMethod<&UnitsHandle::Commit>("commit"),
      UnitsHandle::InstanceMethod<&UnitsHandle::Shards>("shards"),
      UnitsHandle::InstanceMethod<&UnitsHandle::GradShards>("gradShards"),
      UnitsHandle::InstanceMethod<&UnitsHandle::Stats>("stats"),
      UnitsHandle::InstanceMethod<&UnitsHandle::Dispose>("dispose"),
  });
}

Napi::Value CreateShardedUnits(Napi::Env env, std::shared_ptr<GroupState> group, const Napi::Value& value, const Napi::Value& optionsValue) {
  UnitOptions options;
  if (optionsValue.IsObject()) {
    Napi::Object o = optionsValue.As<Napi::Object>();
    if (o.Has("grads") && !o.Get("grads").IsUndefined()) options.grads = o.Get("grads").ToBoolean().Value();
    if (o.Has("device") && o.Get("device").IsString()) {
      const std::string name = o.Get("device").As<Napi::String>().Utf8Value();
      try {
        options.device = c10::Device(name);
      } catch (const std::exception&) {
        throw Napi::TypeError::New(env, "shardUnits: unknown device '" + name + "'");
      }
    }
    if (o.Has("gradDtype") && o.Get("gradDtype").IsString()) {
      const std::string name = o.Get("gradDtype").As<Napi::String>().Utf8Value();
      const auto dtype = ParseDtype(name);
      if (!dtype) throw Napi::TypeError::New(env, "shardUnits: unknown gradDtype '" + name + "'");
      options.gradDtype = *dtype;
    }
  }
  if (!value.IsArray() || value.As<Napi::Array>().Length() == 0) throw Napi::TypeError::New(env, "shardUnits(units): expected a non-empty array of parameter arrays");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<std::vector<at::Tensor>> units;
  for (uint32_t u = 0; u < array.Length(); ++u) {
    if (!array.Get(u).IsArray() || array.Get(u).As<Napi::Array>().Length() == 0) throw Napi::TypeError::New(env, "shardUnits: unit " + std::to_string(u) + " is not a non-empty array of parameters");
    Napi::Array params = array.Get(u).As<Napi::Array>();
    units.emplace_back();
    for (uint32_t i = 0; i < params.Length(); ++i) {
      at::Tensor p = TensorHandle::FromJs(params.Get(i), "shardUnits: parameter");
      if (!p.is_leaf()) throw Napi::TypeError::New(env, "shardUnits: every parameter must be a leaf tensor");
      if (!units.back().empty() && (p.scalar_type() != units.back()[0].scalar_type() || p.device() != units.back()[0].device())) {
        throw Napi::TypeError::New(env, "shardUnits: the parameters of unit " + std::to_string(u) + " must share one dtype and device");
      }
      units.back().push_back(p);
    }
  }
  const c10::Device device = units[0][0].device();
  // Sharding copies every parameter: on the device's worker, like any other tensor work.
  return AddonState::Of(env).WorkerFor(env, device).Submit(env, [group, units, options]() mutable {
    auto state = std::make_shared<ShardedUnits>(std::move(group), std::move(units), options);
    return Completer([state](Napi::Env env) mutable -> Napi::Value {
      return AddonState::Of(env).shardedUnitsConstructor.New({Napi::External<std::shared_ptr<ShardedUnits>>::New(env, &state)});
    });
  }, false);
}

UnitCall UnitCallFromJs(Napi::Value value) {
  UnitCall call;
  if (!value.IsObject()) return call;
  Napi::Object z = value.As<Napi::Object>();
  const auto index = [&](const char* key) { return z.Has(key) && z.Get(key).IsNumber() ? z.Get(key).As<Napi::Number>().Int64Value() : -1; };
  call.units = ShardedUnitsFromJs(z.Get("units"));
  call.unit = index("unit");
  if (call.unit < 0 || static_cast<size_t>(call.unit) >= call.units->size()) throw std::invalid_argument("runCheckpointed: unit " + std::to_string(call.unit) + " of " + std::to_string(call.units->size()));
  call.next = index("next");
  call.previous = index("previous");
  return call;
}

std::shared_ptr<ShardedUnits> ShardedUnitsFromJs(Napi::Value value) {
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kUnitsTag)) throw std::invalid_argument("expected a NativeShardedUnits");
  return UnitsHandle::Unwrap(value.As<Napi::Object>())->Checked(value.Env());
}

}  // namespace torch_dpo
