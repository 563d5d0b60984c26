#!/usr/bin/python3
"""Model fixtures for torch-dpo's tests, made with Debian's python3-torch (no transformers here):
a tiny GPT-2 written out with Hugging Face's parameter names and math (Conv1D layout, gelu_new,
tied lm_head), exported like an HF TorchScript export (torchscript=True: traced on
(input_ids, attention_mask), returns a tuple whose first element is the logits), its weights as
model.safetensors (written by hand to the format spec), config.json, a small word-level
tokenizer.json + tokenizer_config.json, and reference logits for fixed inputs.

Run: /usr/bin/python3 scripts/make-fixtures.py   (writes test/fixtures/tiny-gpt2/)
Tests read the outputs only; CI needs no Python.
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn

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


DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.bfloat16: "BF16", torch.float16: "F16"}


def write_safetensors(path, tensors, metadata=None):
    """The format spec: u64 LE header size, JSON header (offsets relative to the data), raw LE data."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        blob = t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)


def write_tokenizer(folder, vocab_size):
    words = ["<|endoftext|>", "<unk>"] + [f"w{i}" for i in range(vocab_size - 2)]
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}],
        "normalizer": None, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": {w: i for i, w in enumerate(words)}, "unk_token": "<unk>"},
    }
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(tokenizer, f, indent=1)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<unk>",
                   "model_max_length": CONFIG["n_positions"], "tokenizer_class": "PreTrainedTokenizerFast"}, f, indent=1)


def main():
    torch.manual_seed(7)
    folder = os.path.join(ROOT, "tiny-gpt2")
    os.makedirs(folder, exist_ok=True)
    model = GPT2LMHeadModel(CONFIG)
    with torch.no_grad():
        for p in model.parameters():  # larger than HF's init so that differences show in the logits
            p.add_(torch.randn_like(p) * 0.05)
    input_ids = torch.tensor([[5, 17, 33, 2, 9, 41, 0, 0], [12, 3, 60, 7, 7, 25, 38, 11]])
    attention_mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]])
    model.train()  # traced in the mode torch-dpo trains in (dropout is 0 in this config anyway)
    traced = torch.jit.trace(model, (input_ids, attention_mask), check_trace=False)
    traced.save(os.path.join(folder, "model.pt"))
    # HF checkpoints of tied models store the embedding once.
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    write_safetensors(os.path.join(folder, "model.safetensors"), state, {"format": "pt"})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=1)
    write_tokenizer(folder, CONFIG["vocab_size"])
    with torch.no_grad():
        logits = model(input_ids, attention_mask)[0]
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump({"input_ids": input_ids.tolist(), "attention_mask": attention_mask.tolist(),
                   "logits_shape": list(logits.shape), "logits": logits.flatten().tolist()}, f)
    sizes = {n: os.path.getsize(os.path.join(folder, n)) for n in sorted(os.listdir(folder))}
    print(f"wrote {folder}: {sizes}")


if __name__ == "__main__":
    main()
