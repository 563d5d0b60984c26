// ModuleHandle's edits of a module in place: flags set across the tree (LoRA's lora_enabled), handles
// on submodules, and call redirection in the graphs (LoRA on traced exports, lib/models/traced-lora.ts).
#include <torch/csrc/jit/api/function_impl.h>

#include "layer_checkpoint.h"
#include "script_module.h"

namespace torch_dpo {

Napi::Value ModuleHandle::SetFlag(const Napi::CallbackInfo& info) {
  std::string name = StringArg(info, 0, "setFlag: name");
  if (info.Length() < 2 || !info[1].IsBoolean()) throw Napi::TypeError::New(info.Env(), "setFlag(name, on: boolean)");
  bool on = info[1].As<Napi::Boolean>().Value();
  return Submit(info.Env(), [name, on](ModuleState& s) {
    // On the module's worker, so the flag changes between jobs, never during one.
    int64_t count = 0;
    for (torch::jit::Module m : s.module.modules()) {
      if (m.hasattr(name) && m.attr(name).isBool()) {
        m.setattr(name, on);
        count += 1;
      }
    }
    return Completer([count](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(count)); });
  });
}

Napi::Value ModuleHandle::Submodule(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, 0, "submodule: path");
  return Submit(info.Env(), [path](ModuleState& s) {
    // A handle on the same object: what is registered or defined through it is part of the root.
    torch::jit::Module child = SubmoduleAt(s.module, path);
    c10::Device device = s.device;
    return Completer([child, device](Napi::Env env) -> Napi::Value { return Wrap(env, child, device); });
  });
}

namespace {

// Renames self.<child>.<from>(…) calls to self.<child>.<to>(…) in a block and its sub-blocks.
int64_t RedirectIn(torch::jit::Block* block, torch::jit::Value* self, const std::string& child, const std::string& from, const std::string& to) {
  int64_t count = 0;
  for (torch::jit::Node* node : block->nodes()) {
    for (torch::jit::Block* inner : node->blocks()) count += RedirectIn(inner, self, child, from, to);
    if (node->kind() != c10::prim::CallMethod || node->s(c10::attr::name) != from) continue;
    torch::jit::Node* producer = node->inputs()[0]->node();
    if (producer->kind() == c10::prim::GetAttr && producer->s(c10::attr::name) == child && producer->inputs()[0] == self) {
      node->s_(c10::attr::name, to);
      count += 1;
    }
  }
  return count;
}

}  // namespace

Napi::Value ModuleHandle::RedirectCalls(const Napi::CallbackInfo& info) {
  std::string child = StringArg(info, 0, "redirectCalls: child");
  std::string from = StringArg(info, 1, "redirectCalls: from");
  std::string to = StringArg(info, 2, "redirectCalls: to");
  return Submit(info.Env(), [child, from, to](ModuleState& s) {
    int64_t count = 0;
    for (const auto& method : s.module.get_methods()) {
      std::shared_ptr<torch::jit::Graph> graph = method.graph();
      count += RedirectIn(graph->block(), graph->inputs()[0], child, from, to);
    }
    return Completer([count](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, static_cast<double>(count)); });
  });
}

Napi::Value ModuleHandle::ForgetOptimizedGraphs(const Napi::CallbackInfo& info) {
  return Submit(info.Env(), [](ModuleState& s) {
    // Each method caches an optimized copy of its graph with its callees inlined (describe() and
    // the first run make it); after a graph edit every cached copy up the tree is stale.
    for (const torch::jit::Module& m : s.module.modules()) {
      for (const auto& method : m.get_methods()) torch::jit::toGraphFunction(method.function()).clear_optimized_graphs();
    }
    return Completer();
  });
}

}  // namespace torch_dpo
