#include "ops.h"

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <unordered_map>

#include "addon_state.h"
#include "errors.h"
#include "op_attrs.h"
#include "tensor_handle.h"

namespace torch_dpo {

namespace {

using Inputs = std::vector<at::Tensor>;
using OpFn = std::function<at::Tensor(const Inputs&, const OpAttrs&)>;

struct OpSpec {
  size_t minInputs;
  size_t maxInputs;
  OpFn fn;
};

at::TensorOptions CreationOptions(const OpAttrs& a, c10::ScalarType fallback) {
  return at::TensorOptions().dtype(a.Dtype("dtype").value_or(fallback)).device(c10::Device(a.String("device", "cpu")));
}

// Binary ops take a second tensor, or a `scalar` attribute instead. (Macros because ATen's
// functions are overloaded and carry defaulted arguments, so they do not bind to plain pointers.)
#define TORCH_DPO_BINARY(fn)                                                                   \
  OpSpec{1, 2, [](const Inputs& in, const OpAttrs& a) {                                        \
           return in.size() == 2 ? at::fn(in[0], in[1]) : at::fn(in[0], a.ScalarValue("scalar")); \
         }}
#define TORCH_DPO_UNARY(fn) OpSpec{1, 1, [](const Inputs& in, const OpAttrs&) { return at::fn(in[0]); }}

// Fills a CPU contiguous tensor with `nbytes` of file `path` from `offset` (positioned reads): a
// checkpoint tensor lands in its parameter, or one staging tensor, without a host copy in between.
at::Tensor ReadFileInto(const at::Tensor& target, const std::string& path, int64_t offset) {
  if (!target.device().is_cpu() || !target.is_contiguous()) throw std::invalid_argument("read_file_: the target must be a contiguous CPU tensor");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(path + ": " + std::strerror(errno));
  auto* out = static_cast<char*>(target.data_ptr());
  const size_t length = target.nbytes();
  size_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd, out + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string why = n < 0 ? std::strerror(errno) : "ended early (truncated?)";
      ::close(fd);
      throw std::runtime_error(path + ": reading " + std::to_string(length) + " bytes at " + std::to_string(offset) + ": " + why);
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return target;
}

// Reductions over `dim` (all dims when absent), with `keepdim`.
template <typename DimFn, typename AllFn>
OpSpec Reduction(DimFn dimFn, AllFn allFn) {
  return {1, 1, [dimFn, allFn](const Inputs& in, const OpAttrs& a) {
            auto dims = a.OptionalIntList("dim");
            return dims ? dimFn(in[0], *dims, a.Bool("keepdim", false)) : allFn(in[0]);
          }};
}

const std::unordered_map<std::string, OpSpec>& OpTable() {
  static const std::unordered_map<std::string, OpSpec> table = {
      // arithmetic and comparisons (tensor ⊕ tensor, or tensor ⊕ scalar)
      {"add", TORCH_DPO_BINARY(add)},
      {"sub", TORCH_DPO_BINARY(sub)},
      {"mul", TORCH_DPO_BINARY(mul)},
      {"div", TORCH_DPO_BINARY(div)},
      {"pow", TORCH_DPO_BINARY(pow)},
      {"eq", TORCH_DPO_BINARY(eq)},
      {"ne", TORCH_DPO_BINARY(ne)},
      {"gt", TORCH_DPO_BINARY(gt)},
      {"ge", TORCH_DPO_BINARY(ge)},
      {"lt", TORCH_DPO_BINARY(lt)},
      {"le", TORCH_DPO_BINARY(le)},
      {"maximum", {2, 2, [](const Inputs& in, const OpAttrs&) { return at::maximum(in[0], in[1]); }}},
      {"minimum", {2, 2, [](const Inputs& in, const OpAttrs&) { return at::minimum(in[0], in[1]); }}},
      {"rsub", {1, 1, [](const Inputs& in, const OpAttrs& a) { return at::rsub(in[0], a.ScalarValue("scalar")); }}},
      // elementwise
      {"neg", TORCH_DPO_UNARY(neg)},
      {"exp", TORCH_DPO_UNARY(exp)},
      {"log", TORCH_DPO_UNARY(log)},
      {"log1p", TORCH_DPO_UNARY(log1p)},
      {"sqrt", TORCH_DPO_UNARY(sqrt)},
      {"abs", TORCH_DPO_UNARY(abs)},
      {"square", TORCH_DPO_UNARY(square)},
      {"sigmoid", TORCH_DPO_UNARY(sigmoid)},
      {"logsigmoid", TORCH_DPO_UNARY(log_sigmoid)},
      {"relu", TORCH_DPO_UNARY(relu)},
      {"tanh", TORCH_DPO_UNARY(tanh)},
      {"isfinite", TORCH_DPO_UNARY(isfinite)},
      {"logical_not", TORCH_DPO_UNARY(logical_not)},
      {"clone", {1, 1, [](const Inputs& in, const OpAttrs&) { return in[0].clone(); }}},
      {"contiguous", {1, 1, [](const Inputs& in, const OpAttrs&) { return in[0].contiguous(); }}},
      {"clamp", {1, 1, [](const Inputs& in, const OpAttrs& a) {
         auto lo = a.OptionalDouble("min");
         auto hi = a.OptionalDouble("max");
         return at::clamp(in[0], lo ? c10::optional<at::Scalar>(*lo) : c10::nullopt,
                          hi ? c10::optional<at::Scalar>(*hi) : c10::nullopt);
       }}},
      {"where", {3, 3, [](const Inputs& in, const OpAttrs&) { return at::where(in[0], in[1], in[2]); }}},
      {"masked_fill", {2, 2, [](const Inputs& in, const OpAttrs& a) {
         return at::masked_fill(in[0], in[1], a.ScalarValue("value"));
       }}},
      // reductions
      {"sum", Reduction([](const at::Tensor& t, at::IntArrayRef d, bool k) { return at::sum(t, d, k); },
                        [](const at::Tensor& t) { return at::sum(t); })},
      {"mean", Reduction([](const at::Tensor& t, at::IntArrayRef d, bool k) { return at::mean(t, d, k); },
                         [](const at::Tensor& t) { return at::mean(t); })},
      {"amax", Reduction([](const at::Tensor& t, at::IntArrayRef d, bool k) { return at::amax(t, d, k); },
                         [](const at::Tensor& t) { return at::max(t); })},
      {"amin", Reduction([](const at::Tensor& t, at::IntArrayRef d, bool k) { return at::amin(t, d, k); },
                         [](const at::Tensor& t) { return at::min(t); })},
      {"logsumexp", {1, 1, [](const Inputs& in, const OpAttrs& a) {
         return at::logsumexp(in[0], a.IntList("dim"), a.Bool("keepdim", false));
       }}},
      {"argmax", {1, 1, [](const Inputs& in, const OpAttrs& a) {
         return a.Has("dim") ? at::argmax(in[0], a.Int("dim"), a.Bool("keepdim", false)) : at::argmax(in[0]);
       }}},
      {"all", TORCH_DPO_UNARY(all)},
      {"any", TORCH_DPO_UNARY(any)},
      // shape
      {"reshape", {1, 1, [](const Inputs& in, const OpAttrs& a) { return at::reshape(in[0], a.IntList("shape")); }}},
      // Always shares storage (an error, never a copy, when the strides do not allow it).
      {"view", {1, 1, [](const Inputs& in, const OpAttrs& a) { return in[0].view(a.IntList("shape")); }}},
      {"transpose", {1, 1, [](const Inputs& in, const OpAttrs& a) {
         return at::transpose(in[0], a.Int("dim0"), a.Int("dim1"));
       }}},
      {"permute", {1, 1, [](const Inputs& in, const OpAttrs& a) { return in[0].permute(a.IntList("dims")); }}},
      {"unsqueeze", {1, 1, [](const Inputs& in, const OpAttrs& a) { return at::unsqueeze(in[0], a.Int("dim")); }}},
      {"squeeze", {1, 1, [](const Inputs& in, const OpAttrs& a) {
         return a.Has("dim") ? at::squeeze(in[0], a.Int("dim")) : at::squeeze(in[0]);
       }}},
      {"narrow", {1, 1, [](const Inputs& in, const OpAttrs& a) {
         return at::narrow(in[0], a.Int("dim"), a.Int("start"), a.Int("length"));
       }}},
      {"expand", {1, 1, [](const Inputs& in, const OpAttrs& a) { return in[0].expand(a.IntList("shape")); }}},
      {"flatten", {1, 1, [](const Inputs& in, const OpAttrs& a) {
         return at::flatten(in[0], a.Int("start", 0), a.Int("end", -1));
       }}},
      {"cat", {1, SIZE_MAX, [](const Inputs& in, const OpAttrs& a) { return at::cat(in, a.Int("dim", 0)); }}},
      {"stack", {1, SIZE_MAX, [](const Inputs& in, const OpAttrs& a) { return at::stack(in, a.Int("dim", 0)); }}},
      // linear algebra and neural-net building blocks
      {"matmul", {2, 2, [](const Inputs& in, const OpAttrs&) { return at::matmul(in[0], in[1]); }}},
      {"linear", {2, 3, [](const Inputs& in, const OpAttrs&) {
         return at::linear(in[0], in[1], in.size() == 3 ? c10::optional<at::Tensor>(in[2]) : c10::nullopt);
       }}},
      {"log_softmax", {1, 1, [](const Inputs& in, const OpAttrs& a) { return at::log_softmax(in[0], a.Int("dim")); }}},
      {"softmax", {1, 1, [](const Inputs& in, const OpAttrs& a) { return at::softmax(in[0], a.Int("dim")); }}},
      {"gather", {2, 2, [](const Inputs& in, const OpAttrs& a) { return at::gather(in[0], a.Int("dim"), in[1]); }}},
      {"index_select", {2, 2, [](const Inputs& in, const OpAttrs& a) {
         return at::index_select(in[0], a.Int("dim"), in[1]);
       }}},
      // in place (the result is the first input; run them under noGrad() on parameters)
      {"copy_", {2, 2, [](const Inputs& in, const OpAttrs&) { return in[0].copy_(in[1]); }}},
      {"add_", {1, 2, [](const Inputs& in, const OpAttrs& a) {
         return in.size() == 2 ? in[0].add_(in[1], a.ScalarValue("alpha")) : in[0].add_(a.ScalarValue("scalar"));
       }}},
      {"mul_", {1, 2, [](const Inputs& in, const OpAttrs& a) {
         return in.size() == 2 ? in[0].mul_(in[1]) : in[0].mul_(a.ScalarValue("scalar"));
       }}},
      {"zero_", {1, 1, [](const Inputs& in, const OpAttrs&) { return in[0].zero_(); }}},
      {"read_file_", {1, 1, [](const Inputs& in, const OpAttrs& a) { return ReadFileInto(in[0], a.String("path"), a.Int("offset")); }}},
      // creation (no inputs; `device` and `dtype` attributes)
      {"zeros", {0, 0, [](const Inputs&, const OpAttrs& a) { return at::zeros(a.IntList("shape"), CreationOptions(a, at::kFloat)); }}},
      {"empty", {0, 0, [](const Inputs&, const OpAttrs& a) { return at::empty(a.IntList("shape"), CreationOptions(a, at::kFloat)); }}},
      {"ones", {0, 0, [](const Inputs&, const OpAttrs& a) { return at::ones(a.IntList("shape"), CreationOptions(a, at::kFloat)); }}},
      {"full", {0, 0, [](const Inputs&, const OpAttrs& a) {
         return at::full(a.IntList("shape"), a.ScalarValue("value"), CreationOptions(a, at::kFloat));
       }}},
      {"arange", {0, 0, [](const Inputs&, const OpAttrs& a) {
         return at::arange(a.ScalarValue("start"), a.ScalarValue("end"), a.ScalarValue("step"), CreationOptions(a, at::kLong));
       }}},
      {"rand", {0, 0, [](const Inputs&, const OpAttrs& a) { return at::rand(a.IntList("shape"), CreationOptions(a, at::kFloat)); }}},
      {"randn", {0, 0, [](const Inputs&, const OpAttrs& a) { return at::randn(a.IntList("shape"), CreationOptions(a, at::kFloat)); }}},
      {"randint", {0, 0, [](const Inputs&, const OpAttrs& a) {
         return at::randint(a.Int("low"), a.Int("high"), a.IntList("shape"), CreationOptions(a, at::kLong));
       }}},
  };
  return table;
}

}  // namespace

OpCall ParseOpCall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsArray()) {
    throw Napi::TypeError::New(env, "op(name, inputs, attrs?, gradEnabled?)");
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  Napi::Array array = info[1].As<Napi::Array>();
  std::vector<at::Tensor> inputs;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    std::string what = name + " input " + std::to_string(i);
    inputs.push_back(TensorHandle::FromJs(array.Get(i), what.c_str()));
  }
  OpAttrs attrs = OpAttrs::FromJs(env, info.Length() > 2 ? info[2] : env.Undefined());
  bool gradEnabled = info.Length() <= 3 || !info[3].IsBoolean() || info[3].As<Napi::Boolean>().Value();
  c10::Device device = Guarded(env, [&] {
    return inputs.empty() ? c10::Device(attrs.String("device", "cpu")) : inputs[0].device();
  });
  return OpCall{std::move(name), std::move(inputs), std::move(attrs), gradEnabled, device};
}

void CheckInputCount(const OpCall& call, size_t minInputs, size_t maxInputs) {
  if (call.inputs.size() >= minInputs && call.inputs.size() <= maxInputs) return;
  std::string expected = std::to_string(minInputs) + (maxInputs == minInputs ? "" : maxInputs == SIZE_MAX ? " or more" : " to " + std::to_string(maxInputs));
  throw std::invalid_argument("op '" + call.name + "' takes " + expected + " tensor inputs, got " + std::to_string(call.inputs.size()));
}

Napi::Value RunOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpCall call = ParseOpCall(info);
  auto it = OpTable().find(call.name);
  if (it == OpTable().end()) throw Napi::TypeError::New(env, "unknown op '" + call.name + "'");
  const OpSpec& spec = it->second;
  Guarded(env, [&] { CheckInputCount(call, spec.minInputs, spec.maxInputs); });

  OpFn fn = spec.fn;
  c10::Device device = call.device;
  return AddonState::Of(env).WorkerFor(env, device).Submit(env, [fn, call] {
    c10::OptionalDeviceGuard guard(call.device.is_cpu() ? c10::optional<c10::Device>() : call.device);
    at::Tensor result = fn(call.inputs, call.attrs);
    return Completer([result](Napi::Env env) -> Napi::Value { return TensorHandle::Wrap(env, result); });
  }, call.gradEnabled);
}

Napi::Value ListOps(const Napi::CallbackInfo& info) {
  Napi::Array names = Napi::Array::New(info.Env());
  uint32_t i = 0;
  for (const auto& entry : OpTable()) names.Set(i++, Napi::String::New(info.Env(), entry.first));
  return names;
}

}  // namespace torch_dpo
