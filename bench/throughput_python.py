#!/usr/bin/python3
"""The Python side of `npm run bench:throughput`: TRL-style DPO steps (bench/trl_style.py) with
Debian's torch on the HF-equivalent llama of scripts/hf_reference.py, on the batches the benchmark
wrote (the same ones torch-dpo runs): each pair's prompt+chosen and prompt+rejected as two
right-padded rows. One warm-up step, then the mean. Prints one JSON line.

Run: /usr/bin/python3 bench/throughput_python.py THREADS BATCHES_JSON CONFIG_JSON
"""
import copy
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from hf_reference import ForCausalLM, full_config  # noqa: E402
from trl_style import dpo_step  # noqa: E402

threads, batches_file, config = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
policy = ForCausalLM(full_config(config, "llama"), "llama").eval()
reference = copy.deepcopy(policy).requires_grad_(False)
optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)
with open(batches_file) as f:
    batches = json.load(f)


def padded(pairs):
    rows = [(p["prompt"] + p["chosen"], len(p["prompt"])) for p in pairs] + [(p["prompt"] + p["rejected"], len(p["prompt"])) for p in pairs]
    width = max(len(r) for r, _ in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    completion = torch.zeros(len(rows), width - 1, dtype=torch.bool)
    for i, (row, prompt) in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
        completion[i, prompt - 1:len(row) - 1] = True  # label t+1 is a completion token
    return ids, mask, completion, sum(len(r) for r, _ in rows)


dpo_step(policy, reference, optimizer, *padded(batches[0])[:3])
useful = slots = 0
start = time.perf_counter()
for pairs in batches[1:]:
    ids, mask, completion, tokens = padded(pairs)
    dpo_step(policy, reference, optimizer, ids, mask, completion)
    useful += tokens
    slots += ids.numel()
seconds = time.perf_counter() - start
print(json.dumps({"usefulPerSec": useful / seconds, "processedPerSec": slots / seconds, "stepSeconds": seconds / (len(batches) - 1), "processedShare": slots / useful}))
