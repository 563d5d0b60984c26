"""Shared by the Python sides of the benchmarks: the fixture script's HF-style GPT-2 classes and the
benchmark model's configuration (~10.6M parameters), with the thread count and seed applied."""
import importlib.util
import os

import torch


def benchmark_gpt2(threads):
    spec = importlib.util.spec_from_file_location("fixtures", os.path.join(os.path.dirname(__file__), "..", "scripts", "make-fixtures.py"))
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = dict(fixtures.CONFIG, vocab_size=16384, n_positions=256, n_embd=256, n_layer=8, n_head=8)
    return fixtures, config, fixtures.GPT2LMHeadModel(config)
