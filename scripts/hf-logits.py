#!/usr/bin/python3
"""The logits of a model folder in the HF-equivalent module of hf_reference.py, computed on this
machine (so the same BLAS kernels as torch-dpo's libtorch), in float64, float32 or bfloat16.

With --adapter, a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors) is applied the
way PEFT does, independently of torch-dpo: module selection by PEFT's check_target_module_exists
rule (a list: the name or a ".name" suffix; a string: a full regex match), keys
base_model.model.<module>.lora_A.weight / .lora_B.weight, scaling lora_alpha / r (lora_alpha /
sqrt(r) with use_rslora), y = base(x) + lora_B(lora_A(x)) * scaling (eval: no dropout).

Run: /usr/bin/python3 scripts/hf-logits.py MODEL_DIR INPUT_JSON DTYPE [--adapter ADAPTER_DIR]
(INPUT_JSON: {"input_ids": [[...]], "attention_mask": [[...]]}, e.g. a fixture's reference.json)
Prints {"logits": [...flat...], "shape": [...], "adapted": layers}.
"""
import json
import math
import os
import re
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
from fixture_files import read_safetensors  # noqa: E402
from hf_reference import load_folder  # noqa: E402


class LoraLinear(nn.Module):
    def __init__(self, base, a, b, scaling):
        super().__init__()
        self.base, self.a, self.b, self.scaling = base, a, b, scaling

    def forward(self, x):
        return self.base(x) + (x @ self.a.t()) @ self.b.t() * self.scaling


def targeted(name, targets):
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def apply_adapter(model, adapter_dir, dtype):
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        config = json.load(f)
    assert config["peft_type"] == "LORA" and config["task_type"] == "CAUSAL_LM"
    scaling = config["lora_alpha"] / (math.sqrt(config["r"]) if config.get("use_rslora") else config["r"])
    weights = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    used = set()
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Linear) or name == "lm_head" or not targeted(name, config["target_modules"]):
            continue
        a_key, b_key = f"base_model.model.{name}.lora_A.weight", f"base_model.model.{name}.lora_B.weight"
        a, b = weights[a_key].to(dtype), weights[b_key].to(dtype)
        assert a.shape == (config["r"], module.in_features) and b.shape == (module.out_features, config["r"]), name
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, LoraLinear(module, a, b, scaling))
        used.update([a_key, b_key])
    assert used == set(weights), f"adapter tensors not applied: {sorted(set(weights) - used)}"
    return len(used) // 2


def main():
    model_dir, input_file, dtype_name = sys.argv[1:4]
    dtype = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    model, _ = load_folder(model_dir, dtype)
    adapted = apply_adapter(model, sys.argv[sys.argv.index("--adapter") + 1], dtype) if "--adapter" in sys.argv else 0
    with open(input_file) as f:
        inputs = json.load(f)
    with torch.no_grad():
        logits = model.eval()(torch.tensor(inputs["input_ids"]), torch.tensor(inputs["attention_mask"]))
    print(json.dumps({"logits": logits.double().flatten().tolist(), "shape": list(logits.shape), "adapted": adapted}))


if __name__ == "__main__":
    main()
