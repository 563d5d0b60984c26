"""A DPO step written the way TRL's DPOTrainer computes one, for the Python rows of the benchmarks:
chosen and rejected concatenated into 2B padded rows, full logits, TRL's selective_log_softmax
(trl/trainer/utils.py: gather, minus a per-row logsumexp), completion tokens summed, the reference
without gradient, sigmoid loss (beta 0.1), clipping at 1.0, AdamW."""
import torch
import torch.nn.functional as F


def selective_log_softmax(logits, index):
    selected = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
    logsumexp = torch.stack([torch.logsumexp(row, dim=-1) for row in logits])
    return selected - logsumexp


def sequence_logps(model, ids, mask, completion):
    """completion: [2B, T-1] bool, True where label t+1 is a completion token."""
    logits = model(ids, mask)[:, :-1]
    return (selective_log_softmax(logits, ids[:, 1:]) * completion).sum(1)


def dpo_step(policy, reference, optimizer, ids, mask, completion):
    pairs = ids.shape[0] // 2
    optimizer.zero_grad(set_to_none=True)
    pol = sequence_logps(policy, ids, mask, completion)
    with torch.no_grad():
        ref = sequence_logps(reference, ids, mask, completion)
    loss = -F.logsigmoid(0.1 * ((pol[:pairs] - ref[:pairs]) - (pol[pairs:] - ref[pairs:]))).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
    optimizer.step()
