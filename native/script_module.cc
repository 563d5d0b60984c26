#include "layer_checkpoint.h"
#include "sharded_units.h"
#include "script_module.h"

#include "atomic_file.h"

#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <filesystem>
#include <unordered_map>

#include "addon_state.h"
#include "dtype.h"
#include "errors.h"
#include "tensor_handle.h"

namespace torch_dpo {

namespace {

constexpr napi_type_tag kModuleTag = {0x2b7d9e4f1a6c3e85ULL, 0x5f0c8a2d7e3b1964ULL};

c10::IValue ToIValue(Napi::Value value, size_t index) {
  if (value.IsNull() || value.IsUndefined()) return c10::IValue();
  if (value.IsArray()) {
    // A TorchScript List[Tensor] argument (per-layer caches, for instance).
    Napi::Array array = value.As<Napi::Array>();
    c10::List<at::Tensor> list;
    std::string what = "module input " + std::to_string(index) + " (a list of tensors)";
    for (uint32_t i = 0; i < array.Length(); ++i) list.push_back(TensorHandle::FromJs(array.Get(i), what.c_str()));
    return list;
  }
  if (value.IsBoolean()) return value.As<Napi::Boolean>().Value();
  if (value.IsNumber()) {
    double d = value.As<Napi::Number>().DoubleValue();
    if (d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
    return d;
  }
  std::string what = "module input " + std::to_string(index);
  return TensorHandle::FromJs(value, what.c_str());
}

Napi::Value FromIValue(Napi::Env env, const c10::IValue& v) {
  if (v.isTensor()) return TensorHandle::Wrap(env, v.toTensor());
  if (v.isNone()) return env.Null();
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isTuple() || v.isList() || v.isTensorList()) {
    std::vector<c10::IValue> items;
    if (v.isTuple()) items = v.toTupleRef().elements().vec();
    else for (const auto& item : v.toListRef()) items.push_back(item);
    Napi::Array array = Napi::Array::New(env, items.size());
    for (size_t i = 0; i < items.size(); ++i) array.Set(static_cast<uint32_t>(i), FromIValue(env, items[i]));
    return array;
  }
  if (v.isGenericDict()) {
    Napi::Object object = Napi::Object::New(env);
    for (const auto& entry : v.toGenericDict()) {
      if (!entry.key().isString()) throw std::invalid_argument("module output: dict keys must be strings");
      object.Set(entry.key().toStringRef(), FromIValue(env, entry.value()));
    }
    return object;
  }
  throw std::invalid_argument("module output of type " + v.tagKind() + " is not supported");
}

// name, tensor and the other names of the same tensor (tied weights), first name first.
struct NamedTensor {
  std::string name;
  at::Tensor tensor;
  std::vector<std::string> aliases;
};

template <typename List>
std::vector<NamedTensor> Deduplicated(const List& list) {
  std::vector<NamedTensor> out;
  std::unordered_map<const void*, size_t> seen;
  for (const auto& item : list) {
    const void* impl = item.value.unsafeGetTensorImpl();
    auto it = seen.find(impl);
    if (it != seen.end()) {
      out[it->second].aliases.push_back(item.name);
      continue;
    }
    seen.emplace(impl, out.size());
    out.push_back({item.name, item.value, {}});
  }
  return out;
}

Completer NamedTensorsCompleter(std::vector<NamedTensor> entries) {
  return [entries](Napi::Env env) -> Napi::Value {
    Napi::Array array = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("name", entries[i].name);
      entry.Set("tensor", TensorHandle::Wrap(env, entries[i].tensor));
      Napi::Array aliases = Napi::Array::New(env, entries[i].aliases.size());
      for (size_t k = 0; k < entries[i].aliases.size(); ++k) aliases.Set(static_cast<uint32_t>(k), entries[i].aliases[k]);
      entry.Set("aliases", aliases);
      array.Set(static_cast<uint32_t>(i), entry);
    }
    return array;
  };
}


}  // namespace

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsString()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  return info[index].As<Napi::String>().Utf8Value();
}

Napi::Function ModuleHandle::DefineClass(Napi::Env env) {
  return ObjectWrap<ModuleHandle>::DefineClass(
      env, "NativeModule",
      {
          InstanceAccessor<&ModuleHandle::Device>("device"),
          InstanceAccessor<&ModuleHandle::Disposed>("disposed"),
          InstanceMethod<&ModuleHandle::Dispose>("dispose"),
          InstanceMethod<&ModuleHandle::Run>("run"),
          InstanceMethod<&ModuleHandle::RunCheckpointed>("runCheckpointed"),
          InstanceMethod<&ModuleHandle::Describe>("describe"),
          InstanceMethod<&ModuleHandle::NamedParameters>("namedParameters"),
          InstanceMethod<&ModuleHandle::NamedBuffers>("namedBuffers"),
          InstanceMethod<&ModuleHandle::SetTraining>("setTraining"),
          InstanceMethod<&ModuleHandle::SetRequiresGrad>("setRequiresGrad"),
          InstanceMethod<&ModuleHandle::SetFlag>("setFlag"),
          InstanceMethod<&ModuleHandle::Submodule>("submodule"),
          InstanceMethod<&ModuleHandle::RedirectCalls>("redirectCalls"),
          InstanceMethod<&ModuleHandle::ForgetOptimizedGraphs>("forgetOptimizedGraphs"),
          InstanceMethod<&ModuleHandle::To>("to"),
          InstanceMethod<&ModuleHandle::DeepCopy>("deepCopy"),
          InstanceMethod<&ModuleHandle::Save>("save"),
          InstanceMethod<&ModuleHandle::RegisterParameter>("registerParameter"),
          InstanceMethod<&ModuleHandle::RegisterModule>("registerModule"),
          InstanceMethod<&ModuleHandle::RegisterAttribute>("registerAttribute"),
          InstanceMethod<&ModuleHandle::Define>("define"),
      });
}

Napi::Object ModuleHandle::Wrap(Napi::Env env, torch::jit::Module module, c10::Device device) {
  auto state = std::make_shared<ModuleState>(ModuleState{std::move(module), device});
  return AddonState::Of(env).moduleConstructor.New({Napi::External<std::shared_ptr<ModuleState>>::New(env, &state)});
}

ModuleHandle::ModuleHandle(const Napi::CallbackInfo& info) : ObjectWrap<ModuleHandle>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeModule is created by torch-dpo, not with new");
  }
  state_ = *info[0].As<Napi::External<std::shared_ptr<ModuleState>>>().Data();
  info.This().As<Napi::Object>().TypeTag(&kModuleTag);
}

ModuleHandle& ModuleHandle::FromJs(Napi::Value value, const char* what) {
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kModuleTag)) {
    throw Napi::TypeError::New(value.Env(), std::string(what) + " must be a Module");
  }
  ModuleHandle* handle = ObjectWrap<ModuleHandle>::Unwrap(value.As<Napi::Object>());
  handle->Checked(value.Env());
  return *handle;
}

std::shared_ptr<ModuleState> ModuleHandle::Checked(Napi::Env env) {
  if (!state_) throw Napi::Error::New(env, "Module was disposed: it can no longer be used");
  return state_;
}

Napi::Promise ModuleHandle::Submit(Napi::Env env, std::function<Completer(ModuleState&)> work, bool gradEnabled) {
  std::shared_ptr<ModuleState> state = Checked(env);
  return AddonState::Of(env).WorkerFor(env, state->device).Submit(env, [state, work] { return work(*state); }, gradEnabled);
}

Napi::Value ModuleHandle::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "loadModule: path");
  c10::Device device = Guarded(env, [&] {
    return c10::Device(info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "cpu");
  });
  return AddonState::Of(env).WorkerFor(env, device).Submit(env, [path, device] {
    if (!std::filesystem::is_regular_file(path)) throw std::invalid_argument("no file at " + path);
    torch::jit::Module module = torch::jit::load(path, device);
    return Completer([module, device](Napi::Env env) -> Napi::Value { return Wrap(env, module, device); });
  }, false);
}

Napi::Value ModuleHandle::Create(const Napi::CallbackInfo& info) {
  std::string name = StringArg(info, 0, "createModule: name");
  return Guarded(info.Env(), [&]() -> Napi::Value {
    torch::jit::Module module(c10::QualifiedName("__torch__.torch_dpo." + name));
    // train()/eval() look for this attribute on every submodule.
    module.register_attribute("training", c10::BoolType::get(), true);
    return Wrap(info.Env(), module, c10::Device(c10::kCPU));
  });
}

Napi::Value ModuleHandle::Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), Checked(info.Env())->device.str());
}

Napi::Value ModuleHandle::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }

Napi::Value ModuleHandle::Dispose(const Napi::CallbackInfo& info) {
  state_.reset();
  return info.Env().Undefined();
}

Napi::Value ModuleHandle::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string method = StringArg(info, 0, "run: method");
  if (info.Length() < 2 || !info[1].IsArray()) throw Napi::TypeError::New(env, "run(method, inputs[], gradEnabled)");
  Napi::Array array = info[1].As<Napi::Array>();
  std::vector<c10::IValue> inputs;
  for (uint32_t i = 0; i < array.Length(); ++i) inputs.push_back(ToIValue(array.Get(i), i));
  bool grad = info.Length() <= 2 || !info[2].IsBoolean() || info[2].As<Napi::Boolean>().Value();
  return Submit(env, [method, inputs](ModuleState& s) {
    auto found = s.module.find_method(method);
    if (!found) throw std::invalid_argument("the module has no method '" + method + "'");
    // The profiling executor's autodiff subgraphs made training steps of scripted models ~25% slower
    // than plain autograd over the same graph (bench:model); TORCH_DPO_JIT_OPTIMIZE=1 turns it back on.
    static const bool optimize = std::getenv("TORCH_DPO_JIT_OPTIMIZE") && std::string(std::getenv("TORCH_DPO_JIT_OPTIMIZE")) == "1";
    torch::jit::GraphOptimizerEnabledGuard optimizer(optimize);
    c10::IValue out = (*found)(inputs);
    return Completer([out](Napi::Env env) { return FromIValue(env, out); });
  }, grad);
}

Napi::Value ModuleHandle::RunCheckpointed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "runCheckpointed: path");
  std::string method = StringArg(info, 1, "runCheckpointed: method");
  if (info.Length() < 3 || !info[2].IsArray()) throw Napi::TypeError::New(env, "runCheckpointed(path, method, inputs[])");
  Napi::Array array = info[2].As<Napi::Array>();
  std::vector<at::Tensor> inputs;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    c10::IValue value = ToIValue(array.Get(i), i);
    if (!value.isTensor()) throw Napi::TypeError::New(env, "runCheckpointed: inputs must be tensors");
    inputs.push_back(value.toTensor());
  }
  UnitCall zero = info.Length() > 3 ? Guarded(env, [&] { return UnitCallFromJs(info[3]); }) : UnitCall();
  return Submit(env, [path, method, inputs, zero](ModuleState& s) {
    at::Tensor out = CheckpointedCall(s.module, path, method, inputs, zero);
    return Completer([out](Napi::Env env) { return FromIValue(env, c10::IValue(out)); });
  }, true);
}

Napi::Value ModuleHandle::Describe(const Napi::CallbackInfo& info) {
  return Submit(info.Env(), [](ModuleState& s) {
    struct MethodInfo { std::string name, schema, graph; std::vector<std::string> args; };
    std::vector<MethodInfo> methods;
    for (const auto& m : s.module.get_methods()) {
      const auto& schema = m.function().getSchema();
      // The inlined graph shows what a trace baked in (device constants, dropout or not).
      std::shared_ptr<torch::jit::Graph> graph = m.graph()->copy();
      torch::jit::Inline(*graph);
      MethodInfo mi{m.name(), c10::toString(schema), graph->toString(), {}};
      for (size_t i = 1; i < schema.arguments().size(); ++i) mi.args.push_back(schema.arguments()[i].name());  // skip self
      methods.push_back(mi);
    }
    bool training = s.module.is_training();
    std::string type = s.module.type()->name() ? s.module.type()->name()->qualifiedName() : "";
    return Completer([methods, training, type](Napi::Env env) -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      Napi::Array list = Napi::Array::New(env, methods.size());
      for (size_t i = 0; i < methods.size(); ++i) {
        Napi::Object m = Napi::Object::New(env);
        m.Set("name", methods[i].name);
        m.Set("schema", methods[i].schema);
        m.Set("graph", methods[i].graph);
        Napi::Array args = Napi::Array::New(env, methods[i].args.size());
        for (size_t k = 0; k < methods[i].args.size(); ++k) args.Set(static_cast<uint32_t>(k), methods[i].args[k]);
        m.Set("args", args);
        list.Set(static_cast<uint32_t>(i), m);
      }
      out.Set("methods", list);
      out.Set("training", training);
      out.Set("type", type);
      return out;
    });
  });
}

Napi::Value ModuleHandle::NamedParameters(const Napi::CallbackInfo& info) {
  return Submit(info.Env(), [](ModuleState& s) { return NamedTensorsCompleter(Deduplicated(s.module.named_parameters(true))); });
}

Napi::Value ModuleHandle::NamedBuffers(const Napi::CallbackInfo& info) {
  return Submit(info.Env(), [](ModuleState& s) { return NamedTensorsCompleter(Deduplicated(s.module.named_buffers(true))); });
}

Napi::Value ModuleHandle::SetTraining(const Napi::CallbackInfo& info) {
  bool on = info.Length() == 0 || !info[0].IsBoolean() || info[0].As<Napi::Boolean>().Value();
  return Submit(info.Env(), [on](ModuleState& s) {
    s.module.train(on);
    return Completer();
  });
}

Napi::Value ModuleHandle::SetRequiresGrad(const Napi::CallbackInfo& info) {
  bool on = info.Length() == 0 || !info[0].IsBoolean() || info[0].As<Napi::Boolean>().Value();
  return Submit(info.Env(), [on](ModuleState& s) {
    for (const auto& p : s.module.parameters(true)) p.set_requires_grad(on);
    return Completer();
  });
}

Napi::Value ModuleHandle::To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<ModuleState> state = Checked(env);
  c10::Device device = state->device;
  Guarded(env, [&] {
    if (info.Length() > 0 && info[0].IsString()) device = c10::Device(info[0].As<Napi::String>().Utf8Value());
  });
  std::optional<c10::ScalarType> dtype;
  if (info.Length() > 1 && info[1].IsString()) {
    dtype = ParseDtype(info[1].As<Napi::String>().Utf8Value());
    if (!dtype) throw Napi::TypeError::New(env, "unknown dtype '" + info[1].As<Napi::String>().Utf8Value() + "'");
  }
  return Submit(env, [state, device, dtype](ModuleState& s) {
    at::NoGradGuard noGrad;  // parameters stay leaves
    if (dtype) s.module.to(device, *dtype); else s.module.to(device);
    // Later jobs go to the new device's worker; the state is shared with the handle.
    return Completer([state, device](Napi::Env env) -> Napi::Value {
      state->device = device;
      return env.Undefined();
    });
  });
}

Napi::Value ModuleHandle::DeepCopy(const Napi::CallbackInfo& info) {
  return Submit(info.Env(), [](ModuleState& s) {
    at::NoGradGuard noGrad;  // copies of parameters must stay leaves so that they can be frozen
    torch::jit::Module copy = s.module.deepcopy();
    c10::Device device = s.device;
    return Completer([copy, device](Napi::Env env) -> Napi::Value { return Wrap(env, copy, device); });
  });
}

Napi::Value ModuleHandle::Save(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, 0, "save: path");
  return Submit(info.Env(), [path](ModuleState& s) {
    // As lib/atomic-file.ts: a temporary name unique to this process and write, flushed to disk,
    // renamed over the target, the folder flushed: readers see the old file or the whole new one.
    WriteFileAtomic(path, [&](const std::string& partial) { s.module.save(partial); });
    return Completer();
  });
}

Napi::Value ModuleHandle::RegisterParameter(const Napi::CallbackInfo& info) {
  std::string name = StringArg(info, 0, "registerParameter: name");
  at::Tensor tensor = TensorHandle::FromJs(info[1], "registerParameter: value");
  bool isBuffer = info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  return Submit(info.Env(), [name, tensor, isBuffer](ModuleState& s) {
    s.module.register_parameter(name, tensor, isBuffer);
    return Completer();
  });
}

Napi::Value ModuleHandle::RegisterModule(const Napi::CallbackInfo& info) {
  std::string name = StringArg(info, 0, "registerModule: name");
  std::shared_ptr<ModuleState> child = ModuleHandle::FromJs(info[1], "registerModule: module").state_;
  return Submit(info.Env(), [name, child](ModuleState& s) {
    s.module.register_module(name, child->module);
    return Completer();
  });
}

Napi::Value ModuleHandle::RegisterAttribute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "registerAttribute: name");
  c10::IValue value;
  c10::TypePtr type;
  if (info.Length() > 1 && info[1].IsBoolean()) {
    value = info[1].As<Napi::Boolean>().Value();
    type = c10::BoolType::get();
  } else if (info.Length() > 1 && info[1].IsNumber()) {
    bool isFloat = info.Length() > 2 && info[2].IsString() && info[2].As<Napi::String>().Utf8Value() == "float";
    double d = info[1].As<Napi::Number>().DoubleValue();
    value = isFloat ? c10::IValue(d) : c10::IValue(static_cast<int64_t>(d));
    type = isFloat ? c10::TypePtr(c10::FloatType::get()) : c10::TypePtr(c10::IntType::get());
  } else {
    throw Napi::TypeError::New(env, "registerAttribute(name, value: boolean | number, kind?: 'int' | 'float')");
  }
  return Submit(env, [name, value, type](ModuleState& s) {
    s.module.register_attribute(name, type, value);
    return Completer();
  });
}

Napi::Value ModuleHandle::Define(const Napi::CallbackInfo& info) {
  std::string source = StringArg(info, 0, "define: source");
  return Submit(info.Env(), [source](ModuleState& s) {
    s.module.define(source);
    return Completer();
  });
}

}  // namespace torch_dpo
