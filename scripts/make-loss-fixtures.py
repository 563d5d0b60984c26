#!/usr/bin/python3
"""Golden values for torch-dpo's DPO loss family, written independently from the spec
(../shared/notes/dpo-spec.md) with Debian's python3-torch in float64.

Run: /usr/bin/python3 scripts/make-loss-fixtures.py  (writes test/fixtures/dpo-loss-golden.json).
Tests read the JSON only, so CI needs no Python.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20261129)
B, T = 6, 7
DT = torch.float64


def rand_logps(scale):
    return -(torch.rand(B, dtype=DT) * scale + 1)


POLICY_CHOSEN, POLICY_REJECTED = rand_logps(30), rand_logps(30)
INPUTS = {
    "policyChosen": POLICY_CHOSEN,
    "policyRejected": POLICY_REJECTED,
    # Log-ratios of a few nats, as in training (large ones overflow forward_kl's exp(-x) by design).
    "referenceChosen": POLICY_CHOSEN + torch.randn(B, dtype=DT) * 1.5,
    "referenceRejected": POLICY_REJECTED + torch.randn(B, dtype=DT) * 1.5,
    "chosenLengths": torch.randint(1, 12, (B,)).to(DT),
    "rejectedLengths": torch.randint(1, 12, (B,)).to(DT),
    "chosenWpoLogSum": -torch.rand(B, dtype=DT) * 3,
    "rejectedWpoLogSum": -torch.rand(B, dtype=DT) * 3,
}
# LD-DPO per-token inputs: label-aligned masks (position 0 never counts) and per-token log-probs.
masks = {}
for side in ("chosen", "rejected"):
    m = torch.zeros(B, T, dtype=DT)
    for i in range(B):
        start = 1 + int(torch.randint(0, 3, (1,)))
        length = 1 + int(torch.randint(0, T - start, (1,)))
        m[i, start:start + length] = 1
    masks[side] = m
INPUTS["chosenMask"], INPUTS["rejectedMask"] = masks["chosen"], masks["rejected"]
for name, side in (("chosenTokenLogps", "chosen"), ("rejectedTokenLogps", "rejected"),
                   ("referenceChosenTokenLogps", "chosen"), ("referenceRejectedTokenLogps", "rejected")):
    INPUTS[name] = -torch.rand(B, T, dtype=DT) * 4 * masks[side]


def score(x, cfg):
    f = cfg.get("f_divergence_type", "reverse_kl")
    if f == "reverse_kl":
        return x
    if f == "forward_kl":
        return -torch.exp(-x)
    if f == "js_divergence":
        return F.logsigmoid(x)
    if f == "alpha_divergence":
        a = cfg.get("f_alpha_divergence_coef", 0.5)
        if abs(a - 1) < 1e-6:
            return x
        return torch.exp(torch.clamp((a - 1) * x, max=80.0)) / (a - 1)
    raise ValueError(f)


def ld_sum(tok, mask, shared, alpha):
    rank = torch.cumsum(mask, 1)
    w = torch.where(rank <= shared[:, None], torch.ones_like(mask), torch.full_like(mask, alpha)) * mask
    return (tok * w).sum(1)


def reference_loss(cfg, x):
    """x: dict of float64 tensors (policyChosen/policyRejected require grad)."""
    beta = cfg.get("beta", 0.1)
    eps = cfg.get("label_smoothing", 0.0)
    tau = cfg.get("discopop_tau", 0.05)
    types = cfg.get("loss_type", "sigmoid")
    types = [types] if isinstance(types, str) else types
    weights = cfg.get("loss_weights", [1.0] * len(types))
    pc, pr = x["policyChosen"], x["policyRejected"]
    free = cfg.get("reference_free", False)
    if "ld_alpha" in cfg:
        shared = torch.minimum(x["chosenMask"].sum(1), x["rejectedMask"].sum(1))
        a = cfg["ld_alpha"]
        pc = ld_sum(x["chosenTokenLogps"], x["chosenMask"], shared, a)
        pr = ld_sum(x["rejectedTokenLogps"], x["rejectedMask"], shared, a)
        rc = torch.zeros_like(pc) if free else ld_sum(x["referenceChosenTokenLogps"], x["chosenMask"], shared, a)
        rr = torch.zeros_like(pc) if free else ld_sum(x["referenceRejectedTokenLogps"], x["rejectedMask"], shared, a)
    else:
        rc = torch.zeros_like(pc) if free else x["referenceChosen"]
        rr = torch.zeros_like(pc) if free else x["referenceRejected"]
    cl, rl = pc - rc, pr - rr
    cs, rs = score(cl, cfg), score(rl, cfg)
    nc, nr = x["chosenLengths"].clamp(min=1), x["rejectedLengths"].clamp(min=1)
    z = beta * (cs - rs)
    ls = F.logsigmoid
    total = torch.zeros((), dtype=DT)
    per_pair_total = torch.zeros(B, dtype=DT)
    for t, w in zip(types, weights):
        if t == "sigmoid":
            l = -(1 - eps) * ls(z) - eps * ls(-z)
        elif t == "hinge":
            l = torch.relu(1 - z)
        elif t == "ipo":
            l = (cs / nc - rs / nr - 1 / (2 * beta)) ** 2
        elif t == "exo_pair":
            l = torch.sigmoid(z) * (ls(z) - math.log(1 - eps)) + torch.sigmoid(-z) * (ls(-z) - math.log(eps))
        elif t == "nca_pair":
            l = -ls(beta * cs) - 0.5 * ls(-beta * cs) - 0.5 * ls(-beta * rs)
        elif t == "robust":
            l = (-(1 - eps) * ls(z) + eps * ls(-z)) / (1 - 2 * eps)
        elif t == "bco_pair":
            l = -ls(beta * cs) - ls(-beta * rs)
        elif t == "sppo_hard":
            l = (cs - 1 / (2 * beta)) ** 2 + (rs + 1 / (2 * beta)) ** 2
        elif t in ("aot", "aot_unpaired"):
            if t == "aot":
                d = torch.sort(pc - pr).values - torch.sort(rc - rr).values
            else:
                d = torch.sort(cl).values - torch.sort(rl).values
            l = -(1 - eps) * ls(beta * d) - eps * ls(-beta * d)
        elif t == "apo_zero":
            l = (1 - torch.sigmoid(beta * cl)) + torch.sigmoid(beta * rl)
        elif t == "apo_down":
            l = torch.sigmoid(beta * cl) + (1 - torch.sigmoid(z))
        elif t == "discopop":
            m = torch.sigmoid(z / tau)
            l = -ls(z) * (1 - m) + torch.exp(-z) * m
        elif t == "sft":
            # token-mean CE over the micro-batch, spread over pairs so the mean gives it
            l = -pc * (B / nc.sum())
        elif t == "sigmoid_norm":
            l = -ls(beta * (cs / nc - rs / nr))
        else:
            raise ValueError(t)
        if cfg.get("use_weighting", False):
            with torch.no_grad():
                wc = torch.exp(x["chosenWpoLogSum"] / nc)
                wr = torch.exp(x["rejectedWpoLogSum"] / nr)
            l = l * wc * wr
        total = total + w * l.mean()
        per_pair_total = per_pair_total + w * l
    with torch.no_grad():
        metrics = {
            "rewards/chosen": (beta * cl).mean().item(),
            "rewards/rejected": (beta * rl).mean().item(),
            "rewards/accuracies": (cl > rl).to(DT).mean().item(),
            "rewards/margins": (beta * (cl - rl)).mean().item(),
            "logps/chosen": pc.mean().item(),
            "logps/rejected": pr.mean().item(),
        }
    return total, per_pair_total, metrics


LOSSES = ["sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
          "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm"]
DIVERGENCES = ["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"]
USES_SCORE = {"sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "apo_down",
              "discopop", "sigmoid_norm"}

CASES = []
for loss in LOSSES:
    base = {"loss_type": loss, "beta": 0.1}
    if loss == "exo_pair":
        base["label_smoothing"] = 1e-3
    if loss == "robust":
        base["label_smoothing"] = 0.2
    for f in (DIVERGENCES if loss in USES_SCORE else ["reverse_kl"]):
        CASES.append(dict(base, f_divergence_type=f))
CASES += [
    {"loss_type": "sigmoid", "beta": 0.5, "label_smoothing": 0.1},
    {"loss_type": "sigmoid", "beta": 0.1, "f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": 1.0},
    {"loss_type": "sigmoid", "beta": 0.3, "f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": 0.2},
    {"loss_type": "aot", "beta": 0.2, "label_smoothing": 0.05},
    {"loss_type": "discopop", "beta": 0.05, "discopop_tau": 0.2},
    {"loss_type": ["sigmoid", "sft"], "loss_weights": [0.8, 0.2], "beta": 0.1},
    {"loss_type": ["sigmoid", "bco_pair", "sft"], "beta": 0.1},
    {"loss_type": "sigmoid", "beta": 0.1, "use_weighting": True},
    {"loss_type": "ipo", "beta": 0.1, "use_weighting": True},
    {"loss_type": "sigmoid", "beta": 0.1, "ld_alpha": 0.5},
    {"loss_type": "sigmoid", "beta": 0.1, "ld_alpha": 0.0, "reference_free": True},
    {"loss_type": "sigmoid", "beta": 0.1, "reference_free": True},
    {"loss_type": "sigmoid_norm", "beta": 2.0, "reference_free": True},
]

out = {"inputs": {k: v.tolist() for k, v in INPUTS.items()}, "cases": []}
for cfg in CASES:
    x = {k: v.clone() for k, v in INPUTS.items()}
    leaves = ["chosenTokenLogps", "rejectedTokenLogps"] if "ld_alpha" in cfg else ["policyChosen", "policyRejected"]
    for k in leaves:
        x[k].requires_grad_(True)
    loss, losses, metrics = reference_loss(cfg, x)
    assert math.isfinite(loss.item()), cfg
    loss.backward()
    out["cases"].append({
        "config": cfg,
        "loss": loss.item(),
        "losses": losses.detach().tolist(),
        "metrics": metrics,
        "grads": {k: (x[k].grad if x[k].grad is not None else torch.zeros_like(x[k])).tolist() for k in leaves},
    })

path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "dpo-loss-golden.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print(f"wrote {len(out['cases'])} cases to {os.path.normpath(path)}")
