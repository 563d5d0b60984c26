"""Hugging Face-equivalent decoders (Llama, Mistral, Qwen2, Qwen3) for torch-dpo's fixtures, written
from transformers' modeling_llama.py / modeling_mistral.py / modeling_qwen2.py / modeling_qwen3.py and
modeling_rope_utils.py (5.x main; the eager attention path), because transformers cannot be
installed here. Same parameter names, same numerics: RMSNorm in fp32 then cast then scale, rope
frequencies in fp32, rotate_half pairs, repeat_kv, softmax in fp32, additive finfo.min masks, sliding
window i - w < j <= i, Qwen3's q_norm/k_norm before the transpose and before rope.

load_folder() reads a model folder (fixture_files.py: safetensors by hand, one file or shards).
Used by make-hf-fixtures.py and check-hf-export.py; needs Debian's python3-torch.
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
from fixture_files import read_weights  # noqa: E402


def read_rope(c, head_dim):
    """rope_type, theta and scaling from transformers 5's rope_parameters or 4.x's rope_theta + rope_scaling."""
    params = c.get("rope_parameters") or {}
    scaling = params if ("rope_type" in params or "type" in params) else (c.get("rope_scaling") or {})
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    theta = params.get("rope_theta", c.get("rope_theta", c["_default_theta"]))
    return rope_type, float(theta), scaling


def inv_freq_for(c, head_dim, seq_len):
    rope_type, base, scaling = read_rope(c, head_dim)
    dim = head_dim
    if rope_type == "dynamic":
        maxp = c["max_position_embeddings"]
        factor = scaling["factor"]
        seq_len = seq_len if seq_len is not None and seq_len > maxp else maxp
        base = base * ((factor * seq_len / maxp) - (factor - 1)) ** (dim / (dim - 2))
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    if rope_type == "linear":
        inv_freq = inv_freq / scaling["factor"]
    if rope_type == "llama3":
        factor = scaling["factor"]
        low_freq_factor = scaling["low_freq_factor"]
        high_freq_factor = scaling["high_freq_factor"]
        old_context_len = scaling["original_max_position_embeddings"]
        low_freq_wavelen = old_context_len / low_freq_factor
        high_freq_wavelen = old_context_len / high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
        smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
        is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
        inv_freq = torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
    return inv_freq


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(hidden_states, n_rep):
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


class Attention(nn.Module):
    def __init__(self, c, arch):
        super().__init__()
        e, h, kv, d = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        self.h, self.kv, self.d = h, kv, d
        self.scaling = d ** -0.5
        qkv_bias = True if arch == "qwen2" else c.get("attention_bias", False)
        o_bias = False if arch in ("qwen2", "mistral") else c.get("attention_bias", False)
        self.q_proj = nn.Linear(e, h * d, bias=qkv_bias)
        self.k_proj = nn.Linear(e, kv * d, bias=qkv_bias)
        self.v_proj = nn.Linear(e, kv * d, bias=qkv_bias)
        self.o_proj = nn.Linear(h * d, e, bias=o_bias)
        self.qk_norm = arch == "qwen3"
        if self.qk_norm:
            self.q_norm = RMSNorm(d, c["rms_norm_eps"])
            self.k_norm = RMSNorm(d, c["rms_norm_eps"])

    def forward(self, x, mask, cos, sin):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, -1, self.d)
        k = self.k_proj(x).view(b, t, -1, self.d)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        v = self.v_proj(x).view(b, t, -1, self.d).transpose(1, 2)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        q = (q * cos) + (rotate_half(q) * sin)
        k = (k * cos) + (rotate_half(k) * sin)
        k, v = repeat_kv(k, self.h // self.kv), repeat_kv(v, self.h // self.kv)
        w = torch.matmul(q, k.transpose(2, 3)) * self.scaling
        w = w + mask
        w = nn.functional.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(w, v).transpose(1, 2).contiguous()
        return self.o_proj(out.reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        bias = c.get("mlp_bias", False)
        self.gate_proj = nn.Linear(c["hidden_size"], c["intermediate_size"], bias=bias)
        self.up_proj = nn.Linear(c["hidden_size"], c["intermediate_size"], bias=bias)
        self.down_proj = nn.Linear(c["intermediate_size"], c["hidden_size"], bias=bias)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c, arch):
        super().__init__()
        self.self_attn = Attention(c, arch)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, x, mask, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), mask, cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


def layer_windows(c, arch):
    """Per layer: the sliding window or None, as each config class derives it."""
    n = c["num_hidden_layers"]
    if arch == "mistral":
        return [c.get("sliding_window", 4096)] * n
    if arch in ("qwen2", "qwen3"):
        window = c.get("sliding_window", 4096) if c.get("use_sliding_window", False) else None
        types = c.get("layer_types") or [
            "sliding_attention" if window is not None and i >= c.get("max_window_layers", 28) else "full_attention" for i in range(n)]
        return [window if kind == "sliding_attention" else None for kind in types]
    return [None] * n


def additive_mask(attention_mask, t, window, dtype):
    """HF's eager mask: 0 where visible, finfo.min where not (causal, padding keys, sliding window)."""
    i = torch.arange(t)
    visible = i[None, :] <= i[:, None]
    if window is not None:
        visible = visible & (i[None, :] > i[:, None] - window)
    visible = visible[None, None, :, :] & attention_mask[:, None, None, :].bool()
    return torch.zeros(visible.shape, dtype=dtype).masked_fill(~visible, torch.finfo(dtype).min)


class Model(nn.Module):
    def __init__(self, c, arch):
        super().__init__()
        self.c, self.arch = c, arch
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(DecoderLayer(c, arch) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, input_ids, attention_mask):
        b, t = input_ids.shape
        x = self.embed_tokens(input_ids)
        inv_freq = inv_freq_for(self.c, self.c["head_dim"], t)
        position_ids = torch.arange(t)[None, :].expand(b, t)
        freqs = (inv_freq[None, :, None].float().expand(b, -1, 1) @ position_ids[:, None, :].float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        for layer, window in zip(self.layers, layer_windows(self.c, self.arch)):
            x = layer(x, additive_mask(attention_mask, t, window, x.dtype), cos, sin)
        return self.norm(x)


class ForCausalLM(nn.Module):
    def __init__(self, c, arch):
        super().__init__()
        self.model = Model(c, arch)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        if c.get("tie_word_embeddings", False):
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, input_ids, attention_mask):
        return self.lm_head(self.model(input_ids, attention_mask))


def full_config(config, arch):
    """config.json plus the derived values the modules read (defaults as each HF config class)."""
    c = dict(config)
    c["_default_theta"] = 10000.0
    c.setdefault("num_key_value_heads", c["num_attention_heads"])
    if c.get("head_dim") is None:
        c["head_dim"] = 128 if arch == "qwen3" else c["hidden_size"] // c["num_attention_heads"]
    return c


def load_folder(folder, dtype=torch.float32):
    """The HF-equivalent module of a model folder, weights cast to dtype."""
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    arch = config["model_type"]
    model = ForCausalLM(full_config(config, arch), arch)
    state = read_weights(folder)
    if config.get("tie_word_embeddings", False):
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    missing = set(model.state_dict()) - set(state)
    unexpected = set(state) - set(model.state_dict())
    assert not missing and not unexpected, f"missing {missing}, unexpected {unexpected}"
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    return model.to(dtype), config
