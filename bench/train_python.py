#!/usr/bin/python3
"""The Python side of `npm run bench:train`: one DPO optimizer step written the usual way with
Debian's torch (concatenated forward of chosen+rejected, gather of log_softmax, sigmoid loss, AdamW),
on the same GPT-2 and batch shape as torch-dpo's benchmark. Prints one JSON line."""
import copy
import json
import sys
import time

import torch
import torch.nn.functional as F

from bench_gpt2 import benchmark_gpt2

threads, steps = int(sys.argv[1]), int(sys.argv[2])
fixtures, config, policy = benchmark_gpt2(threads)
reference = copy.deepcopy(policy).eval().requires_grad_(False)
policy.eval()  # dropout off, as torch-dpo's disable_dropout
pairs, length, prompt = 8, 256, 64
ids = torch.randint(0, config["vocab_size"], (2 * pairs, length))
mask = torch.ones(2 * pairs, length, dtype=torch.long)
completion = torch.zeros(2 * pairs, length, dtype=torch.bool)
completion[:, prompt:] = True
optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)


def logps(model):
    logits = model(ids, mask)[0][:, :-1]
    labels = ids[:, 1:]
    token = torch.gather(logits.log_softmax(-1), 2, labels.unsqueeze(2)).squeeze(2)
    return (token * completion[:, 1:]).sum(1)


def step():
    optimizer.zero_grad(set_to_none=True)
    pol = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    logratio = (pol[:pairs] - ref[:pairs]) - (pol[pairs:] - ref[pairs:])
    loss = -F.logsigmoid(0.1 * logratio).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
    optimizer.step()


step()
start = time.perf_counter()
for _ in range(steps):
    step()
elapsed = (time.perf_counter() - start) / steps
print(json.dumps({"stepMs": elapsed * 1000, "tokensPerSec": 2 * pairs * length / elapsed, "torch": torch.__version__}))
