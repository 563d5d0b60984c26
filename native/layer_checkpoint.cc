#include "layer_checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <cstdlib>
#include <sstream>
#include <stdexcept>

#include "sharded_units.h"

namespace torch_dpo {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The generators a call on these inputs draws from: the CPU one, and the CUDA one of their device.
std::vector<at::Generator> GeneratorsFor(const std::vector<at::Tensor>& inputs) {
  std::vector<at::Generator> generators{at::detail::getDefaultCPUGenerator()};
  for (const auto& t : inputs) {
    if (t.device().type() != c10::kCPU) {
      generators.push_back(at::globalContext().defaultGenerator(t.device()));
      break;
    }
  }
  return generators;
}

std::vector<at::Tensor> StatesOf(const std::vector<at::Generator>& generators) {
  std::vector<at::Tensor> states;
  for (const auto& g : generators) states.push_back(g.get_state());
  return states;
}

void Restore(std::vector<at::Generator>& generators, const std::vector<at::Tensor>& states) {
  for (size_t i = 0; i < generators.size(); ++i) generators[i].set_state(states[i]);
}

at::Tensor Call(const torch::jit::Module& module, const std::string& method, const std::vector<at::Tensor>& inputs) {
  // As ModuleHandle::Run: plain autograd over the graph, no profiling executor.
  static const bool optimize = std::getenv("TORCH_DPO_JIT_OPTIMIZE") && std::string(std::getenv("TORCH_DPO_JIT_OPTIMIZE")) == "1";
  torch::jit::GraphOptimizerEnabledGuard optimizer(optimize);
  std::vector<c10::IValue> args(inputs.begin(), inputs.end());
  c10::IValue out = module.get_method(method)(args);
  if (!out.isTensor()) throw std::invalid_argument("checkpointed " + method + " must return one tensor");
  return out.toTensor();
}

// A UnitCall carried in the autograd context (saved_data holds IValues).
struct UnitCapsule : torch::CustomClassHolder {
  explicit UnitCapsule(UnitCall call) : call(std::move(call)) {}
  UnitCall call;
};

const UnitCall* UnitOf(AutogradContext* ctx) {
  auto it = ctx->saved_data.find("zero");
  if (it == ctx->saved_data.end()) return nullptr;
  return &static_cast<UnitCapsule*>(it->second.toCapsule().get())->call;
}

struct LayerCheckpoint : public torch::autograd::Function<LayerCheckpoint> {
  // `anchor`: a trainable parameter of the layer, passed only when no input requires grad (LoRA's
  // frozen embeddings feed the first layer), so that the output still gets a grad_fn.
  static variable_list forward(AutogradContext* ctx, c10::IValue module, std::string method, at::TensorList inputs, at::TensorList anchor, c10::IValue zero) {
    std::vector<at::Tensor> in(inputs.begin(), inputs.end());
    auto generators = GeneratorsFor(in);
    ctx->saved_data["module"] = module;
    ctx->saved_data["method"] = method;
    ctx->saved_data["rng"] = c10::List<at::Tensor>(StatesOf(generators));
    if (!zero.isNone()) ctx->saved_data["zero"] = zero;
    ctx->save_for_backward(in);
    const UnitCall* unit = UnitOf(ctx);
    if (unit) {
      unit->units->Gather(static_cast<size_t>(unit->unit));
      if (unit->next >= 0) unit->units->Prefetch(static_cast<size_t>(unit->next));
    }
    // apply() runs this with gradients off: nothing inside the layer is kept for backward.
    at::Tensor out = Call(torch::jit::Module(module.toObject()), method, in);
    if (unit) unit->units->Free(static_cast<size_t>(unit->unit));
    return {out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    torch::jit::Module module(ctx->saved_data["module"].toObject());
    const std::string method = ctx->saved_data["method"].toStringRef();
    std::vector<at::Tensor> first;
    for (const auto& s : ctx->saved_data["rng"].toTensorList()) first.push_back(s);
    std::vector<at::Tensor> detached;
    for (const auto& t : saved) {
      at::Tensor d = t.detach();
      if (d.is_floating_point() && t.requires_grad()) d.requires_grad_(true);
      detached.push_back(d);
    }
    const UnitCall* unit = UnitOf(ctx);
    if (unit) {
      unit->units->Gather(static_cast<size_t>(unit->unit));
      if (unit->previous >= 0) unit->units->Prefetch(static_cast<size_t>(unit->previous));
    }
    // Re-run with the first run's RNG states, then put the current states back.
    auto generators = GeneratorsFor(detached);
    const auto now = StatesOf(generators);
    Restore(generators, first);
    at::Tensor out;
    {
      at::AutoGradMode on(true);
      out = Call(module, method, detached);
    }
    Restore(generators, now);
    // Parameters' gradients accumulate as in a plain backward (reducer hooks fire as usual).
    torch::autograd::backward({out}, {grads[0]});
    if (unit) {
      unit->units->ReduceGrads(static_cast<size_t>(unit->unit));
      unit->units->Free(static_cast<size_t>(unit->unit));
    }
    variable_list result{at::Tensor(), at::Tensor()};  // module, method
    for (const auto& d : detached) result.push_back(d.requires_grad() ? d.grad() : at::Tensor());
    // The anchor's gradient (if any) accumulated in the re-run's backward above; the unit has none.
    result.push_back(at::Tensor());
    result.push_back(at::Tensor());
    return result;
  }
};

}  // namespace

torch::jit::Module SubmoduleAt(const torch::jit::Module& root, const std::string& path) {
  torch::jit::Module module = root;
  std::stringstream parts(path);
  std::string name;
  while (std::getline(parts, name, '.')) {
    if (!module.hasattr(name)) throw std::invalid_argument("no submodule '" + path + "' (at '" + name + "')");
    c10::IValue child = module.attr(name);
    if (!child.isModule()) throw std::invalid_argument("'" + path + "' is not a submodule (at '" + name + "')");
    module = child.toModule();
  }
  return module;
}

at::Tensor CheckpointedCall(const torch::jit::Module& root, const std::string& path, const std::string& method, const std::vector<at::Tensor>& inputs, const UnitCall& zero) {
  torch::jit::Module layer = SubmoduleAt(root, path);
  std::vector<at::Tensor> anchor;
  bool inputNeedsGrad = false;
  for (const auto& t : inputs) inputNeedsGrad = inputNeedsGrad || t.requires_grad();
  if (!inputNeedsGrad) {
    for (const auto& p : layer.parameters(true)) {
      if (p.requires_grad()) {
        anchor.push_back(p);
        break;
      }
    }
  }
  c10::IValue unit = zero.units ? c10::IValue::make_capsule(c10::make_intrusive<UnitCapsule>(zero)) : c10::IValue();
  return LayerCheckpoint::apply(c10::IValue(layer._ivalue()), method, at::TensorList(inputs), at::TensorList(anchor), unit)[0];
}

}  // namespace torch_dpo
