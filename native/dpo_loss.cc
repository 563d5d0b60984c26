#include "dpo_loss.h"

#include <cmath>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace torch_dpo {

namespace {

std::vector<std::string> Split(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, ',');) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

struct LossConfig {
  std::vector<std::string> types;
  std::vector<double> weights;
  double beta, smoothing, alphaCoef, tau, ldAlpha;
  std::string fDivergence;
  bool useWeighting, ld;
};

// Every attribute is required: the defaults live in one place, lib/loss/dpo-config.ts. ld_alpha is
// optional by meaning (absent: no LD-DPO re-weighting), not by default.
LossConfig ReadConfig(const OpAttrs& a) {
  LossConfig c;
  c.types = Split(a.String("loss_type"));
  c.weights = a.DoubleList("loss_weights");
  if (c.weights.size() != c.types.size()) throw std::invalid_argument("dpoLoss: loss_weights must have one weight per loss_type");
  c.beta = a.Double("beta");
  c.smoothing = a.Double("label_smoothing");
  c.fDivergence = a.String("f_divergence_type");
  c.alphaCoef = a.Double("f_alpha_divergence_coef");
  c.tau = a.Double("discopop_tau");
  c.useWeighting = a.Bool("use_weighting");
  const std::optional<double> ldAlpha = a.OptionalDouble("ld_alpha");
  c.ld = ldAlpha.has_value();
  c.ldAlpha = ldAlpha.value_or(0.0);
  return c;
}

// The f-divergence score transform of a log-ratio (spec: "f-divergence score transform").
at::Tensor Score(const at::Tensor& logratio, const LossConfig& c) {
  if (c.fDivergence == "reverse_kl") return logratio;
  if (c.fDivergence == "forward_kl") return -at::exp(-logratio);
  if (c.fDivergence == "js_divergence") return at::log_sigmoid(logratio);
  if (c.fDivergence == "alpha_divergence") {
    const double a = c.alphaCoef;
    if (std::fabs(a - 1) < 1e-6) return logratio;
    const double cap = logratio.scalar_type() == at::kHalf ? 11.0 : 80.0;
    // The exponent is clamped and evaluated in fp32 (at least) so large ratios cannot overflow.
    at::ScalarType wide = logratio.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    return at::exp(at::clamp_max(logratio.to(wide) * (a - 1), cap)).to(logratio.scalar_type()) / (a - 1);
  }
  throw std::invalid_argument("dpoLoss: unknown f_divergence_type '" + c.fDivergence + "'");
}

// −(1−ε)·logσ(x) − ε·logσ(−x)
at::Tensor SmoothedSigmoidLoss(const at::Tensor& x, double eps) {
  return -(1 - eps) * at::log_sigmoid(x) - eps * at::log_sigmoid(-x);
}

struct PairTerms {
  at::Tensor pc, pr, rc, rr;  // policy and reference log-probs [B]
  at::Tensor cl, rl;          // log-ratios
  at::Tensor cs, rs;          // after the f-divergence transform
  at::Tensor nc, nr;          // completion token counts, clamped ≥ 1
};

at::Tensor PerPairLoss(const std::string& type, const PairTerms& t, const LossConfig& c) {
  const double beta = c.beta, eps = c.smoothing;
  const at::Tensor delta = t.cs - t.rs;
  const at::Tensor z = delta * beta;
  if (type == "sigmoid") return SmoothedSigmoidLoss(z, eps);
  if (type == "hinge") return at::relu(1 - z);
  if (type == "ipo") return at::square(t.cs / t.nc - t.rs / t.nr - 1 / (2 * beta));
  if (type == "exo_pair") {
    return at::sigmoid(z) * (at::log_sigmoid(z) - std::log(1 - eps)) + at::sigmoid(-z) * (at::log_sigmoid(-z) - std::log(eps));
  }
  if (type == "nca_pair") {
    return -at::log_sigmoid(t.cs * beta) - 0.5 * at::log_sigmoid(-t.cs * beta) - 0.5 * at::log_sigmoid(-t.rs * beta);
  }
  if (type == "robust") return (-(1 - eps) * at::log_sigmoid(z) + eps * at::log_sigmoid(-z)) / (1 - 2 * eps);
  if (type == "bco_pair") return -at::log_sigmoid(t.cs * beta) - at::log_sigmoid(-t.rs * beta);
  if (type == "sppo_hard") return at::square(t.cs - 1 / (2 * beta)) + at::square(t.rs + 1 / (2 * beta));
  if (type == "aot" || type == "aot_unpaired") {
    // Sorted over the micro-batch; no f-divergence.
    at::Tensor d = type == "aot" ? std::get<0>(at::sort(t.pc - t.pr)) - std::get<0>(at::sort(t.rc - t.rr))
                                 : std::get<0>(at::sort(t.cl)) - std::get<0>(at::sort(t.rl));
    return SmoothedSigmoidLoss(d * beta, eps);
  }
  if (type == "apo_zero") return (1 - at::sigmoid(t.cl * beta)) + at::sigmoid(t.rl * beta);
  if (type == "apo_down") return at::sigmoid(t.cl * beta) + (1 - at::sigmoid(z));
  if (type == "discopop") {
    at::Tensor m = at::sigmoid(z / c.tau);
    return -at::log_sigmoid(z) * (1 - m) + at::exp(-z) * m;
  }
  if (type == "sft") {
    // Token-mean cross-entropy over the micro-batch's chosen tokens, spread so that mean_i gives it.
    return -t.pc * (static_cast<double>(t.pc.size(0)) / t.nc.sum());
  }
  if (type == "sigmoid_norm") return -at::log_sigmoid((t.cs / t.nc - t.rs / t.nr) * beta);
  throw std::invalid_argument("dpoLoss: unknown loss_type '" + type + "'");
}

// LD-DPO: the first min(Nc, Nr) completion tokens count fully, the longer sequence's tail by α.
at::Tensor LengthDesensitised(const at::Tensor& tokenLogps, const at::Tensor& mask, const at::Tensor& shared, double alpha) {
  at::Tensor m = mask.to(tokenLogps.scalar_type());
  at::Tensor rank = m.cumsum(1);
  at::Tensor weight = at::where(rank <= shared.unsqueeze(1), at::ones_like(m), at::full_like(m, alpha)) * m;
  return (tokenLogps * weight).sum(1);
}

class Inputs {
 public:
  Inputs(const std::vector<at::Tensor>& tensors, const std::string& layout) {
    auto names = Split(layout);
    if (names.size() != tensors.size()) throw std::invalid_argument("dpoLoss: layout names " + std::to_string(names.size()) + " inputs, got " + std::to_string(tensors.size()));
    for (size_t i = 0; i < names.size(); ++i) byName_[names[i]] = tensors[i];
  }
  bool Has(const std::string& name) const { return byName_.count(name) > 0; }
  at::Tensor Get(const std::string& name) const {
    auto it = byName_.find(name);
    if (it == byName_.end()) throw std::invalid_argument("dpoLoss: input '" + name + "' is required here");
    return it->second;
  }
  void CheckFinite() const {
    for (const auto& [name, t] : byName_) {
      if (!at::isFloatingType(t.scalar_type())) continue;
      at::Tensor bad = at::isfinite(t).logical_not().nonzero();
      if (bad.numel() > 0) {
        throw std::invalid_argument("dpoLoss: input '" + name + "' is not finite at index " + std::to_string(bad[0][0].item<int64_t>()));
      }
    }
  }

 private:
  std::map<std::string, at::Tensor> byName_;
};

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> DpoLoss(const std::vector<at::Tensor>& tensors, const OpAttrs& attrs) {
  LossConfig c = ReadConfig(attrs);
  Inputs in(tensors, attrs.String("layout"));
  if (!attrs.Bool("allow_nonfinite")) in.CheckFinite();  // the trainer counts non-finite steps itself
  PairTerms t;
  t.pc = in.Get("policyChosen");
  t.pr = in.Get("policyRejected");
  const int64_t pairs = t.pc.numel();
  if (t.pc.dim() != 1 || pairs == 0 || !t.pr.sizes().equals(t.pc.sizes())) {
    throw std::invalid_argument("dpoLoss: policyChosen and policyRejected must be non-empty [B] tensors of one size");
  }
  const bool referenceFree = !in.Has("referenceChosen");
  if (c.ld) {
    // LD-DPO re-weights the per-token log-probs of policy and reference alike.
    at::Tensor ncRaw = in.Get("chosenMask").to(t.pc.scalar_type()).sum(1), nrRaw = in.Get("rejectedMask").to(t.pc.scalar_type()).sum(1);
    at::Tensor shared = at::minimum(ncRaw, nrRaw);
    t.pc = LengthDesensitised(in.Get("chosenTokenLogps"), in.Get("chosenMask"), shared, c.ldAlpha);
    t.pr = LengthDesensitised(in.Get("rejectedTokenLogps"), in.Get("rejectedMask"), shared, c.ldAlpha);
    if (!referenceFree) {
      t.rc = LengthDesensitised(in.Get("referenceChosenTokenLogps"), in.Get("chosenMask"), shared, c.ldAlpha);
      t.rr = LengthDesensitised(in.Get("referenceRejectedTokenLogps"), in.Get("rejectedMask"), shared, c.ldAlpha);
    }
  } else if (!referenceFree) {
    t.rc = in.Get("referenceChosen").to(t.pc.scalar_type());
    t.rr = in.Get("referenceRejected").to(t.pc.scalar_type());
  }
  if (referenceFree) t.rc = t.rr = at::zeros_like(t.pc);
  for (const at::Tensor* x : {&t.pr, &t.rc, &t.rr}) {
    if (!x->sizes().equals(t.pc.sizes())) throw std::invalid_argument("dpoLoss: every per-pair input must be [B] with B = " + std::to_string(pairs));
  }
  t.cl = t.pc - t.rc;
  t.rl = t.pr - t.rr;
  t.cs = Score(t.cl, c);
  t.rs = Score(t.rl, c);
  auto lengths = [&](const char* name) {
    return in.Has(name) ? in.Get(name).to(t.pc.scalar_type()).clamp_min(1) : at::Tensor();
  };
  t.nc = lengths("chosenLengths");
  t.nr = lengths("rejectedLengths");

  at::Tensor pairWeight;
  if (c.useWeighting) {
    at::NoGradGuard noGrad;  // WPO weights carry no gradient
    auto weightOf = [&](const char* logSum, const at::Tensor& n) { return at::exp(in.Get(logSum).to(t.pc.scalar_type()) / n); };
    pairWeight = weightOf("chosenWpoLogSum", t.nc.defined() ? t.nc : at::ones_like(t.pc)) *
                 weightOf("rejectedWpoLogSum", t.nr.defined() ? t.nr : at::ones_like(t.pc));
  }

  at::Tensor loss = at::zeros({}, t.pc.options());
  at::Tensor losses = at::zeros_like(t.pc);
  for (size_t k = 0; k < c.types.size(); ++k) {
    const std::string& type = c.types[k];
    if ((type == "ipo" || type == "sigmoid_norm" || type == "sft") && (!t.nc.defined() || !t.nr.defined())) {
      throw std::invalid_argument("dpoLoss: loss_type '" + type + "' needs chosenLengths and rejectedLengths");
    }
    at::Tensor perPair = PerPairLoss(type, t, c);
    if (pairWeight.defined()) perPair = perPair * pairWeight;
    loss = loss + perPair.mean() * c.weights[k];
    losses = losses + perPair * c.weights[k];
  }

  at::NoGradGuard noGrad;
  at::Tensor chosenRewards = (t.cl * c.beta).detach(), rejectedRewards = (t.rl * c.beta).detach();
  // Metrics go out one by one under TRL's names ("metric:" marks them); JS reads them in one transfer.
  return {{"loss", loss}, {"losses", losses}, {"chosenRewards", chosenRewards}, {"rejectedRewards", rejectedRewards},
          {"metric:rewards/chosen", chosenRewards.mean()}, {"metric:rewards/rejected", rejectedRewards.mean()},
          {"metric:rewards/accuracies", t.cl.gt(t.rl).to(t.pc.scalar_type()).mean()},
          {"metric:rewards/margins", (chosenRewards - rejectedRewards).mean()},
          {"metric:logps/chosen", t.pc.detach().mean()}, {"metric:logps/rejected", t.pr.detach().mean()}};
}

}  // namespace torch_dpo
