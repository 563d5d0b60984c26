#!/usr/bin/python3
"""Golden values for torch-dpo's AdamW and gradient clipping, from torch.optim.AdamW and
torch.nn.utils.clip_grad_norm_ (Debian's python3-torch, float64).

Run: /usr/bin/python3 scripts/make-optimizer-fixtures.py  (writes test/fixtures/adamw-golden.json)
"""
import json
import os

import torch

torch.manual_seed(3)
w = torch.randn(3, 4, dtype=torch.float64)
b = torch.randn(4, dtype=torch.float64)
grads = [(torch.randn(3, 4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)) for _ in range(4)]
pw, pb = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
opt = torch.optim.AdamW([{"params": [pw], "weight_decay": 0.1}, {"params": [pb], "weight_decay": 0.0}],
                        lr=0.01, betas=(0.9, 0.95), eps=1e-8)
norms = []
for gw, gb in grads:
    pw.grad, pb.grad = gw.clone(), gb.clone()
    norms.append(torch.nn.utils.clip_grad_norm_([pw, pb], max_norm=1.5).item())
    opt.step()
out = {"w": w.tolist(), "b": b.tolist(), "grads": [[gw.tolist(), gb.tolist()] for gw, gb in grads],
       "lr": 0.01, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1, "max_norm": 1.5,
       "norms": norms, "final_w": pw.detach().tolist(), "final_b": pb.detach().tolist()}
path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "adamw-golden.json")
with open(path, "w") as f:
    json.dump(out, f)
print("wrote", os.path.normpath(path))
