#!/usr/bin/python3
"""Loads a model folder torch-dpo exported (HF layout, one file or shards) into the HF-equivalent
module of hf_reference.py and compares its fp32 logits with a fixture's reference.json at the real
(unpadded) positions. Prints the largest difference; exit 1 above the tolerance, which is relative
to the logits' scale (tolerance x max(1, max |logit|)): the stored logits came from one CPU's
kernels, and another CPU sums in another order.

Run: /usr/bin/python3 scripts/check-hf-export.py EXPORT_DIR REFERENCE_JSON [TOLERANCE]
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from hf_reference import load_folder  # noqa: E402


def main():
    folder, reference_file = sys.argv[1], sys.argv[2]
    tolerance = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
    with open(reference_file) as f:
        reference = json.load(f)
    model, _ = load_folder(folder)
    ids = torch.tensor(reference["input_ids"])
    mask = torch.tensor(reference["attention_mask"])
    with torch.no_grad():
        logits = model.eval()(ids, mask)
    expected = torch.tensor(reference["logits_fp32"]).reshape(reference["logits_shape"])
    real = mask.bool()
    diff = (logits[real] - expected[real]).abs().max().item()
    bound = tolerance * max(1.0, expected[real].abs().max().item())
    print(json.dumps({"max_abs_diff": diff, "bound": bound}))
    sys.exit(0 if diff <= bound else 1)


if __name__ == "__main__":
    main()
