#!/usr/bin/python3
"""Model fixtures for torch-dpo's tests, made with Debian's python3-torch (no transformers here):
a tiny GPT-2 written out with Hugging Face's parameter names and math (Conv1D layout, gelu_new,
tied lm_head), exported like an HF TorchScript export (torchscript=True: traced on
(input_ids, attention_mask), returns a tuple whose first element is the logits), its weights as
model.safetensors (written by hand to the format spec), config.json, a small word-level
tokenizer.json + tokenizer_config.json, and reference logits for fixed inputs.

The same for a tiny Llama (RMSNorm, rotary embeddings, SwiGLU, grouped-query attention, untied head).

Run: /usr/bin/python3 scripts/make-fixtures.py   (writes test/fixtures/tiny-gpt2/ and tiny-llama/)
Tests read the outputs only; CI needs no Python.
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
from fixture_files import write_safetensors, write_tokenizer  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures")
CONFIG = {
    "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 64, "n_positions": 32,
    "n_embd": 32, "n_layer": 2, "n_head": 4, "n_inner": None, "layer_norm_epsilon": 1e-5,
    "activation_function": "gelu_new", "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
    "initializer_range": 0.02, "bos_token_id": 0, "eos_token_id": 0, "tie_word_embeddings": True,
}


class Conv1D(nn.Module):
    def __init__(self, nf, nx):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.2)
        self.bias = nn.Parameter(torch.randn(nf) * 0.1)

    def forward(self, x):
        return torch.matmul(x, self.weight) + self.bias


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head, self.e = c["n_head"], c["n_embd"]
        self.c_attn = Conv1D(3 * self.e, self.e)
        self.c_proj = Conv1D(self.e, self.e)

    def forward(self, x, attention_mask):
        b, t, e = x.shape
        h, d = self.n_head, e // self.n_head
        q, k, v = self.c_attn(x).split(e, dim=2)
        q, k, v = (z.view(b, t, h, d).transpose(1, 2) for z in (q, k, v))
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)
        causal = torch.tril(torch.ones(t, t, dtype=torch.bool))
        w = torch.where(causal, w, torch.tensor(torch.finfo(w.dtype).min, dtype=w.dtype))
        w = w + (1.0 - attention_mask[:, None, None, :].to(w.dtype)) * torch.finfo(w.dtype).min
        w = torch.softmax(w, dim=-1)
        y = torch.matmul(w, v).transpose(1, 2).reshape(b, t, e)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = Conv1D(4 * c["n_embd"], c["n_embd"])
        self.c_proj = Conv1D(c["n_embd"], 4 * c["n_embd"])

    def forward(self, x):
        h = self.c_fc(x)
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))  # gelu_new
        return self.c_proj(h)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c["n_embd"], eps=c["layer_norm_epsilon"])
        self.attn = Attention(c)
        self.ln_2 = nn.LayerNorm(c["n_embd"], eps=c["layer_norm_epsilon"])
        self.mlp = MLP(c)

    def forward(self, x, attention_mask):
        x = x + self.attn(self.ln_1(x), attention_mask)
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        self.wpe = nn.Embedding(c["n_positions"], c["n_embd"])
        self.h = nn.ModuleList([Block(c) for _ in range(c["n_layer"])])
        self.ln_f = nn.LayerNorm(c["n_embd"], eps=c["layer_norm_epsilon"])

    def forward(self, input_ids, attention_mask):
        t = input_ids.shape[1]
        x = self.wte(input_ids) + self.wpe(torch.arange(t).unsqueeze(0))
        for block in self.h:
            x = block(x, attention_mask)
        return self.ln_f(x)


class GPT2LMHeadModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = GPT2Model(c)
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as in HF

    def forward(self, input_ids, attention_mask):
        return (self.lm_head(self.transformer(input_ids, attention_mask)),)


LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 64, "hidden_size": 32,
    "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "max_position_embeddings": 32, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "attention_dropout": 0.0,
    "initializer_range": 0.02, "tie_word_embeddings": False, "hidden_act": "silu", "bos_token_id": 0,
    "eos_token_id": 0,
}


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(1 + torch.randn(dim) * 0.1)
        self.eps = eps

    def forward(self, x):
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class LlamaAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.h, self.kv = c["num_attention_heads"], c["num_key_value_heads"]
        self.d = c["hidden_size"] // self.h
        e = c["hidden_size"]
        self.q_proj = nn.Linear(e, self.h * self.d, bias=False)
        self.k_proj = nn.Linear(e, self.kv * self.d, bias=False)
        self.v_proj = nn.Linear(e, self.kv * self.d, bias=False)
        self.o_proj = nn.Linear(self.h * self.d, e, bias=False)

    def forward(self, x, attention_mask, cos, sin):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.h, self.d).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv, self.d).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv, self.d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # HF's repeat_kv: expand then reshape
        k = k[:, :, None, :, :].expand(b, self.kv, self.h // self.kv, t, self.d).reshape(b, self.h, t, self.d)
        v = v[:, :, None, :, :].expand(b, self.kv, self.h // self.kv, t, self.d).reshape(b, self.h, t, self.d)
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.d)
        causal = torch.triu(torch.full((t, t), torch.finfo(w.dtype).min), diagonal=1)
        pad = (1.0 - attention_mask[:, None, None, :].to(w.dtype)) * torch.finfo(w.dtype).min
        w = w + torch.maximum(causal[None, None] + pad, torch.tensor(torch.finfo(w.dtype).min))
        w = torch.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        y = torch.matmul(w, v).transpose(1, 2).reshape(b, t, self.h * self.d)
        return self.o_proj(y)


class LlamaMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c["hidden_size"], c["intermediate_size"], bias=False)
        self.up_proj = nn.Linear(c["hidden_size"], c["intermediate_size"], bias=False)
        self.down_proj = nn.Linear(c["intermediate_size"], c["hidden_size"], bias=False)

    def forward(self, x):
        return self.down_proj(torch.nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = LlamaAttention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.mlp = LlamaMLP(c)

    def forward(self, x, attention_mask, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), attention_mask, cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([LlamaDecoderLayer(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        d = c["hidden_size"] // c["num_attention_heads"]
        self.register_buffer("inv_freq", 1.0 / (c["rope_theta"] ** (torch.arange(0, d, 2).float() / d)), persistent=False)

    def forward(self, input_ids, attention_mask):
        t = input_ids.shape[1]
        x = self.embed_tokens(input_ids)
        freqs = torch.arange(t).float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        for layer in self.layers:
            x = layer(x, attention_mask, cos, sin)
        return self.norm(x)


class LlamaForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.model = LlamaModel(c)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)

    def forward(self, input_ids, attention_mask):
        return (self.lm_head(self.model(input_ids, attention_mask)),)


def write_model(name, model, config, skip=()):
    torch.manual_seed(7)
    folder = os.path.join(ROOT, name)
    os.makedirs(folder, exist_ok=True)
    with torch.no_grad():
        for p in model.parameters():  # larger than HF's init so that differences show in the logits
            p.add_(torch.randn_like(p) * 0.05)
    input_ids = torch.tensor([[5, 17, 33, 2, 9, 41, 0, 0], [12, 3, 60, 7, 7, 25, 38, 11]])
    attention_mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]])
    model.train()  # traced in the mode torch-dpo trains in (dropout is 0 in these configs anyway)
    traced = torch.jit.trace(model, (input_ids, attention_mask), check_trace=False)
    traced.save(os.path.join(folder, "model.pt"))
    # HF checkpoints of tied models store the embedding once; buffers like inv_freq are not saved.
    state = {k: v for k, v in model.state_dict().items() if k not in skip}
    write_safetensors(os.path.join(folder, "model.safetensors"), state, {"format": "pt"})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    write_tokenizer(folder, config["vocab_size"], model_max_length=32)
    with torch.no_grad():
        logits = model(input_ids, attention_mask)[0]
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump({"input_ids": input_ids.tolist(), "attention_mask": attention_mask.tolist(),
                   "logits_shape": list(logits.shape), "logits": logits.flatten().tolist()}, f)
    sizes = {n: os.path.getsize(os.path.join(folder, n)) for n in sorted(os.listdir(folder))}
    print(f"wrote {folder}: {sizes}")


def main():
    torch.manual_seed(7)
    write_model("tiny-gpt2", GPT2LMHeadModel(CONFIG), CONFIG, skip=("lm_head.weight",))
    torch.manual_seed(11)
    write_model("tiny-llama", LlamaForCausalLM(LLAMA_CONFIG), LLAMA_CONFIG)


if __name__ == "__main__":
    main()
