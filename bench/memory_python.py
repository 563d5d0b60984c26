#!/usr/bin/python3
"""The Python side of `npm run bench:memory`: one TRL-style DPO step with Debian's torch on the same
llama-like model (the HF-equivalent module of scripts/hf_reference.py, eager attention as
transformers' eager path): fp32 policy and a frozen deep-copied reference, chosen and rejected
concatenated into 2B rows, full logits, TRL's selective_log_softmax (gather minus a per-row
logsumexp), sigmoid loss, AdamW. Prints one JSON line with the step time and the peak RSS.

Run: /usr/bin/python3 bench/memory_python.py THREADS PAIRS LENGTH CONFIG_JSON
"""
import copy
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from hf_reference import ForCausalLM, full_config  # noqa: E402
from trl_style import dpo_step  # noqa: E402

threads, pairs, length = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
config = json.loads(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
policy = ForCausalLM(full_config(config, "llama"), "llama").eval()  # dropout off (there is none)
reference = copy.deepcopy(policy).requires_grad_(False)
ids = torch.randint(0, config["vocab_size"], (2 * pairs, length))
mask = torch.ones(2 * pairs, length, dtype=torch.long)
completion = torch.zeros(2 * pairs, length - 1, dtype=torch.bool)
completion[:, length // 2:] = True  # half prompt, half completion
optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)

start = time.perf_counter()
dpo_step(policy, reference, optimizer, ids, mask, completion)
elapsed = time.perf_counter() - start
params = sum(p.numel() for p in policy.parameters())
print(json.dumps({"stepMs": elapsed * 1000, "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "params": params, "torch": torch.__version__}))
