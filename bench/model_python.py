#!/usr/bin/python3
"""The Python side of `npm run bench:model`: builds the benchmark GPT-2 with the fixture script's
HF-style classes, writes it (traced model.pt, model.safetensors, config.json) into the folder given,
then times forward+backward of the traced model in Python with the same threads and BLAS as
torch-dpo (Debian's torch calls the system libblas.so.3). Prints one JSON line."""
import json
import os
import sys
import time

import torch

from bench_gpt2 import benchmark_gpt2

folder, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fixtures, config, model = benchmark_gpt2(threads)
batch, length = 8, 256
ids = torch.randint(0, config["vocab_size"], (batch, length))
mask = torch.ones(batch, length, dtype=torch.long)
model.train()
traced = torch.jit.trace(model, (ids, mask), check_trace=False)
traced.save(os.path.join(folder, "model.pt"))
fixtures.write_safetensors(os.path.join(folder, "model.safetensors"),
                           {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"})
with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump(config, f)
fixtures.write_tokenizer(folder, config["vocab_size"], model_max_length=32)


def step():
    for p in traced.parameters():
        p.grad = None
    logits = traced(ids, mask)[0]
    logits.logsumexp(2).mean().backward()


for _ in range(2):
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
elapsed = time.perf_counter() - start
params = sum(p.numel() for p in model.parameters())
print(json.dumps({"tokensPerSec": batch * length * steps / elapsed, "stepMs": 1000 * elapsed / steps, "params": params,
                  "threads": torch.get_num_threads(), "torch": torch.__version__}))
