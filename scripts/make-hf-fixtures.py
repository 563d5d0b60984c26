#!/usr/bin/python3
"""Sharded bf16 fixtures of the Llama-family architectures for torch-dpo's tests, from the
HF-equivalent modules in hf_reference.py (Debian's python3-torch; no transformers here).

Each folder test/fixtures/hf-<name>/ holds what a Hub checkpoint holds: config.json (real key
layouts: transformers 5's rope_parameters for llama3, 4.x's rope_theta elsewhere), bf16 weights in
shards model-0000k-of-0000n.safetensors + model.safetensors.index.json, generation_config.json,
tokenizer.json + tokenizer_config.json; and reference.json: inputs, the fp32 logits of the bf16
weights, the logits computed in bf16, and (llama) the fp32 logits under other rope types.

Run: /usr/bin/python3 scripts/make-hf-fixtures.py   Tests read the outputs only; CI needs no Python.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from fixture_files import write_safetensors, write_tokenizer  # noqa: E402
from hf_reference import ForCausalLM, full_config  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures")
BASE = {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "initializer_range": 0.02, "attention_dropout": 0.0,
        "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 0, "use_cache": True}
FIXTURES = {
    # Llama 3.x: llama3 rope scaling in transformers 5's layout, head_dim ≠ hidden/heads, biases on.
    "hf-llama3": ("llama", {**BASE, "architectures": ["LlamaForCausalLM"], "model_type": "llama", "head_dim": 16,
                            "max_position_embeddings": 64, "attention_bias": True, "mlp_bias": True, "tie_word_embeddings": False,
                            "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}}),
    # Mistral: a sliding window shorter than the inputs, every layer.
    "hf-mistral": ("mistral", {**BASE, "architectures": ["MistralForCausalLM"], "model_type": "mistral", "head_dim": None,
                               "max_position_embeddings": 64, "rope_theta": 1000000, "sliding_window": 3, "tie_word_embeddings": False}),
    # Qwen2.5: q/k/v biases, tied embeddings, sliding window on layers >= max_window_layers only.
    "hf-qwen2": ("qwen2", {**BASE, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "max_position_embeddings": 64,
                           "rope_theta": 1000000.0, "use_sliding_window": True, "sliding_window": 4, "max_window_layers": 1,
                           "tie_word_embeddings": True}),
    # Qwen3: q_norm/k_norm, head_dim independent of hidden/heads, GQA.
    "hf-qwen3": ("qwen3", {**BASE, "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "head_dim": 16,
                           "max_position_embeddings": 64, "rope_theta": 1000000, "attention_bias": False, "use_sliding_window": False,
                           "sliding_window": None, "max_window_layers": 2, "tie_word_embeddings": False}),
}
ROPE_VARIANTS = [
    {"rope_parameters": None, "rope_theta": 10000.0, "rope_scaling": None},
    {"rope_parameters": None, "rope_theta": 10000.0, "rope_scaling": {"type": "linear", "factor": 2.0}},
    # max_position_embeddings below the inputs' length: the dynamic NTK rescaling is in effect.
    {"rope_parameters": None, "rope_theta": 10000.0, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}, "max_position_embeddings": 6},
]
INPUT_IDS = torch.tensor([[5, 17, 33, 2, 9, 41, 0, 0, 0, 0], [12, 3, 60, 7, 7, 25, 38, 11, 4, 50]])
ATTENTION_MASK = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0, 0, 0], [1] * 10])


def write_shards(folder, state, shards=3):
    """bf16 weights in `shards` files of about equal bytes, with HF's index (total_size = bytes of the tensors)."""
    names = list(state)
    total = sum(t.numel() * t.element_size() for t in state.values())
    groups, current, size = [], [], 0
    for name in names:
        current.append(name)
        size += state[name].numel() * state[name].element_size()
        if size >= total * (len(groups) + 1) / shards and len(groups) < shards - 1:
            groups.append(current)
            current = []
    groups.append(current)
    weight_map = {}
    for k, group in enumerate(groups):
        file = f"model-{k + 1:05d}-of-{len(groups):05d}.safetensors"
        write_safetensors(os.path.join(folder, file), {n: state[n] for n in group}, {"format": "pt"})
        weight_map.update({n: file for n in group})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total, "total_parameters": sum(t.numel() for t in state.values())},
                   "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)


def logits_of(config, arch, state, dtype):
    model = ForCausalLM(full_config(config, arch), arch)
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    model = model.to(dtype).eval()
    with torch.no_grad():
        return model(INPUT_IDS, ATTENTION_MASK).to(torch.float32)


def make(name, arch, config, seed):
    torch.manual_seed(seed)
    folder = os.path.join(ROOT, name)
    os.makedirs(folder, exist_ok=True)
    for f in os.listdir(folder):
        os.remove(os.path.join(folder, f))
    model = ForCausalLM(full_config(config, arch), arch)
    with torch.no_grad():  # larger than HF's init so that every difference shows in the logits
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    state = {k: v.detach().to(torch.bfloat16) for k, v in model.state_dict().items()}
    if config["tie_word_embeddings"]:
        del state["lm_head.weight"]  # HF stores a tied embedding once
    full_state = dict(state)
    if config["tie_word_embeddings"]:
        full_state["lm_head.weight"] = state["model.embed_tokens.weight"]
    write_shards(folder, state)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({**config, "torch_dtype": "bfloat16"}, f, indent=1)
    with open(os.path.join(folder, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": [0], "do_sample": True, "temperature": 0.7, "top_p": 0.8}, f, indent=1)
    write_tokenizer(folder, config["vocab_size"], model_max_length=64, pad_token="<|endoftext|>")
    reference = {
        "input_ids": INPUT_IDS.tolist(), "attention_mask": ATTENTION_MASK.tolist(),
        "logits_shape": [*INPUT_IDS.shape, config["vocab_size"]],
        "logits_fp32": logits_of(config, arch, full_state, torch.float32).flatten().tolist(),
        "logits_bf16": logits_of(config, arch, full_state, torch.bfloat16).flatten().tolist(),
    }
    if arch == "llama":
        reference["rope_variants"] = [
            {"config": variant, "logits_fp32": logits_of({**config, **variant}, arch, full_state, torch.float32).flatten().tolist()}
            for variant in ROPE_VARIANTS]
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump(reference, f)
    print(f"wrote {folder}: {sorted(os.listdir(folder))}")


def main():
    for seed, (name, (arch, config)) in enumerate(FIXTURES.items()):
        make(name, arch, config, 100 + seed)


if __name__ == "__main__":
    main()
