#include "optimizer_ops.h"

#include <cmath>
#include <stdexcept>

namespace torch_dpo {

NamedTensors AdamWStep(const std::vector<at::Tensor>& inputs, const OpAttrs& a) {
  // With explicit_grads the gradients come as a fourth list: a sharded optimizer updates slices
  // (views) of parameters with slices of the averaged gradient, which autograd never attached.
  const bool explicitGrads = a.Bool("explicit_grads");
  const size_t lists = explicitGrads ? 4 : 3;
  if (inputs.size() % lists != 0) {
    throw std::invalid_argument(explicitGrads ? "adamw_step: inputs must be parameters, exp_avg, exp_avg_sq and gradient lists of one length"
                                              : "adamw_step: inputs must be parameters, exp_avg and exp_avg_sq lists of one length");
  }
  const size_t n = inputs.size() / lists;
  const double lr = a.Double("lr"), beta1 = a.Double("beta1"), beta2 = a.Double("beta2"), eps = a.Double("eps");
  const double weightDecay = a.Double("weight_decay");
  const int64_t step = a.Int("step");
  std::vector<double> decay = a.DoubleList("decay");
  if (decay.size() != n) throw std::invalid_argument("adamw_step: 'decay' needs one entry per parameter");
  if (step < 1) throw std::invalid_argument("adamw_step: step counts from 1");
  at::NoGradGuard noGrad;
  const double bias1 = 1 - std::pow(beta1, static_cast<double>(step));
  const double bias2Sqrt = std::sqrt(1 - std::pow(beta2, static_cast<double>(step)));
  for (size_t i = 0; i < n; ++i) {
    at::Tensor p = inputs[i];
    const at::Tensor grad = explicitGrads ? inputs[3 * n + i] : p.grad();
    if (!grad.defined()) continue;
    at::Tensor m = inputs[n + i], v = inputs[2 * n + i];
    if (!m.sizes().equals(p.sizes()) || !v.sizes().equals(p.sizes())) throw std::invalid_argument("adamw_step: optimizer state does not match parameter " + std::to_string(i));
    if (!grad.sizes().equals(p.sizes())) throw std::invalid_argument("adamw_step: gradient does not match parameter " + std::to_string(i));
    if (decay[i] != 0 && weightDecay != 0) p.mul_(1 - lr * weightDecay);
    m.mul_(beta1).add_(grad, 1 - beta1);
    v.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
    at::Tensor denom = (v.sqrt() / bias2Sqrt).add_(eps);
    p.addcdiv_(m, denom, -lr / bias1);
  }
  return {};
}

NamedTensors SumOfSquares(const std::vector<at::Tensor>& inputs, const OpAttrs&) {
  at::NoGradGuard noGrad;
  at::Tensor total = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(inputs.empty() ? at::kCPU : inputs[0].device()));
  for (const auto& t : inputs) total.add_(at::linalg_vector_norm(t, 2, c10::nullopt, false, at::kDouble).square());
  return {{"sum", total}};
}

NamedTensors ClipGradNorm(const std::vector<at::Tensor>& inputs, const OpAttrs& a) {
  at::NoGradGuard noGrad;
  std::vector<at::Tensor> norms;
  for (const auto& p : inputs) {
    if (p.grad().defined()) norms.push_back(at::linalg_vector_norm(p.grad(), 2, c10::nullopt, false, at::kDouble));
  }
  at::Tensor total = norms.empty() ? at::zeros({}, at::TensorOptions().dtype(at::kDouble)) : at::linalg_vector_norm(at::stack(norms), 2);
  if (a.Has("max_norm")) {
    const double maxNorm = a.Double("max_norm");
    const double value = total.item<double>();
    if (std::isfinite(value) && value > maxNorm) {
      const double coef = maxNorm / (value + 1e-6);
      for (const auto& p : inputs) {
        if (p.grad().defined()) p.mutable_grad().mul_(coef);
      }
    }
  }
  return {{"norm", total}};
}

NamedTensors ZeroGrads(const std::vector<at::Tensor>& inputs, const OpAttrs&) {
  for (const auto& p : inputs) {
    if (p.grad().defined()) const_cast<at::Tensor&>(p).mutable_grad().reset();
  }
  return {};
}

NamedTensors AccumulateGrads(const std::vector<at::Tensor>& inputs, const OpAttrs&) {
  if (inputs.size() % 2 != 0) throw std::invalid_argument("accumulate_grads: inputs must be working and master parameter lists of one length");
  const size_t n = inputs.size() / 2;
  at::NoGradGuard noGrad;
  for (size_t i = 0; i < n; ++i) {
    at::Tensor& working = const_cast<at::Tensor&>(inputs[i]);
    at::Tensor& master = const_cast<at::Tensor&>(inputs[n + i]);
    const at::Tensor grad = working.grad();
    if (!grad.defined()) continue;
    if (!grad.sizes().equals(master.sizes())) throw std::invalid_argument("accumulate_grads: gradient " + std::to_string(i) + " does not match its master parameter");
    // The sum runs in the master's dtype (fp32): small micro-batch gradients are not rounded away.
    if (master.grad().defined()) master.mutable_grad().add_(grad);
    else master.mutable_grad() = grad.to(master.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
    working.mutable_grad().reset();
  }
  return {};
}

NamedTensors CopyParams(const std::vector<at::Tensor>& inputs, const OpAttrs&) {
  if (inputs.size() % 2 != 0) throw std::invalid_argument("copy_params: inputs must be target and source lists of one length");
  const size_t n = inputs.size() / 2;
  at::NoGradGuard noGrad;
  for (size_t i = 0; i < n; ++i) const_cast<at::Tensor&>(inputs[i]).copy_(inputs[n + i]);
  return {};
}

}  // namespace torch_dpo
