import { ConfigError } from '../errors';
import { version } from '../runtime';

/**
 * The one attention function of the built-in architectures, as TorchScript source included in each
 * attention module: `attend(q, k, v, mask, dropout) -> [B,H,T,D]` with q [B,H,T,D], k/v [B,KV,T,D]
 * (grouped-query: query head h reads kv head h // (H/KV), repeat_interleave semantics, as HF).
 *
 * - `sdpa` (libtorch ≥ 2.0): torch.scaled_dot_product_attention, so CUDA picks the fastest kernel
 *   that takes the mask (memory-efficient; flash needs no mask) and no [B,H,T,T] is kept for
 *   backward; the scale is passed on ≥ 2.1. k/v heads are repeated for GQA on every version: 2.5's
 *   enable_gqa is taken only by the flash and math kernels, and with a padding mask flash is out, so
 *   it would fall back to math; the repeat (B·H·T·D) is small next to the T×T it avoids.
 * - `eager` (every libtorch, the only one on 1.13): matmul, mask and softmax in fp32 then cast back
 *   (HF's eager numerics; the fill value fits fp32 whatever the compute dtype), dropout on the weights.
 * The source is chosen when the model is built, from the loaded libtorch's version; `attn_implementation`
 * in the model config (HF's name) forces one.
 */
export const ATTENTION_IMPLEMENTATIONS = ['sdpa', 'eager'] as const;
export type AttentionImplementation = (typeof ATTENTION_IMPLEMENTATIONS)[number];

export interface AttentionKernel {
  implementation: AttentionImplementation;
  /** libtorch ≥ 2.1: scaled_dot_product_attention takes scale=. */
  passesScale: boolean;
}

function torchVersion(): [number, number] {
  const [major, minor] = version().torch.split(/[.+]/).map(Number);
  return [major, minor];
}

/** The attention kernel for this libtorch; `requested` is the config's attn_implementation (null: best available). */
export function attentionKernel(requested: AttentionImplementation | null = null): AttentionKernel {
  const [major, minor] = torchVersion();
  const atLeast = (ma: number, mi: number) => major > ma || (major === ma && minor >= mi);
  if (requested === 'sdpa' && !atLeast(2, 0)) {
    throw new ConfigError(`attn_implementation: 'sdpa' needs libtorch ≥ 2.0, this one is ${version().torch}; use 'eager' or point LIBTORCH at a 2.x libtorch`);
  }
  const implementation = requested ?? (atLeast(2, 0) ? 'sdpa' : 'eager');
  return { implementation, passesScale: atLeast(2, 1) };
}

const REPEAT_KV = `
    if k.size(1) != q.size(1):
        groups = q.size(1) // k.size(1)
        k = k.repeat_interleave(groups, 1)
        v = v.repeat_interleave(groups, 1)`;

/**
 * TorchScript `attend_segments`: attention of a packed stream (q [1,H,N,D], k/v [1,KV,N,D]) block by
 * block: each segment's tokens are gathered into [S,·,W,D] (slot N reads a zero row appended to the
 * stream), attend runs on the blocks with their mask [S,1,W,W], and each token's output is read back
 * from its slot. Work is S·W² instead of N², and nothing crosses segments.
 */
const ATTEND_SEGMENTS = `
def blocks(self, t, flat, S: int, W: int):
    padded = torch.cat([t, torch.zeros_like(t.narrow(2, 0, 1))], 2)
    return padded.index_select(2, flat).view([t.size(1), S, W, t.size(3)]).transpose(0, 1)

def attend_segments(self, q, k, v, mask, segment_index, token_slot, dropout: float):
    S = segment_index.size(0)
    W = segment_index.size(1)
    flat = segment_index.reshape([-1])
    y = self.attend(self.blocks(q, flat, S, W), self.blocks(k, flat, S, W), self.blocks(v, flat, S, W), mask, dropout)
    y = y.transpose(0, 1).reshape([y.size(1), S * W, y.size(3)]).index_select(1, token_slot)
    return y.unsqueeze(0)
`;

/**
 * TorchScript `attend` (and `attend_segments`, for packed streams); the module needs a float
 * attribute `scale`. `mask` is True where a key is visible.
 */
export function attendSource(kernel: AttentionKernel): string {
  return attendOnly(kernel) + ATTEND_SEGMENTS;
}

function attendOnly(kernel: AttentionKernel): string {
  if (kernel.implementation === 'eager') {
    return `
def attend(self, q, k, v, mask, dropout: float):${REPEAT_KV}
    att = torch.matmul(q, k.transpose(2, 3)) * self.scale
    att = torch.softmax(att.float().masked_fill(mask.logical_not(), -1e9), -1).to(q.dtype)
    att = torch.dropout(att, dropout, self.training)
    return torch.matmul(att, v)
`;
  }
  return `
def attend(self, q, k, v, mask, dropout: float):${REPEAT_KV}
    p = dropout if self.training else 0.0
    return torch.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=False${kernel.passesScale ? ', scale=self.scale' : ''})
`;
}

/**
 * TorchScript `attention_mask(attention_mask, start, T, window) -> [B,1,T,start+T]` bool, True where
 * query i may see key j: the queries are slots start … start+T−1 of rows whose keys are the slots
 * 0 … start+T−1 (start 0: a whole forward; start > 0: new tokens after a KV cache of `start` slots),
 * `attention_mask` [B, start+T] marks real keys. j ≤ i, key j not padding, and (window > 0)
 * i − window < j (HF's sliding window). A row with no visible key (a padding query) sees every key,
 * as HF does for SDPA (_unmask_unattended): no NaN from a fully masked softmax; such rows never reach
 * the loss or a sampled token. Built once per forward.
 */
export const ATTENTION_MASK_SOURCE = `
def attention_mask(self, attention_mask, start: int, T: int, window: int):
    queries = torch.arange(start, start + T, device=attention_mask.device)
    keys_at = torch.arange(start + T, device=attention_mask.device)
    distance = queries.unsqueeze(1) - keys_at.unsqueeze(0)
    visible = distance >= 0
    if window > 0:
        visible = torch.logical_and(visible, distance < window)
    keys = attention_mask.unsqueeze(1).unsqueeze(2) > 0.5
    mask = torch.logical_and(visible.unsqueeze(0).unsqueeze(0), keys)
    unattended = torch.logical_not(mask.any(-1, keepdim=True))
    return torch.logical_or(mask, unattended)
`;

/**
 * TorchScript `segment_mask(branches, positions, window) -> [S,1,W,W]` bool for the attention blocks
 * of a packed stream (lib/data/packed-layout.ts): in a segment's block, query i sees key j when j ≤ i,
 * j is no padding slot (branch −1), and not (i in a rejected tail and j in a chosen tail); with a
 * window, their positions are less than `window` apart. A padding slot's query sees every key (no
 * NaN) and is never read back.
 */
export const SEGMENT_MASK_SOURCE = `
def segment_mask(self, branches, positions, window: int):
    W = branches.size(1)
    i = torch.arange(W, device=branches.device)
    causal = (i.unsqueeze(1) - i.unsqueeze(0)) >= 0
    keys = (branches >= 0).unsqueeze(1)
    crossed = torch.logical_and(branches.unsqueeze(2) == 2, branches.unsqueeze(1) == 1)
    visible = torch.logical_and(torch.logical_and(keys, causal.unsqueeze(0)), torch.logical_not(crossed))
    if window > 0:
        visible = torch.logical_and(visible, (positions.unsqueeze(2) - positions.unsqueeze(1)) < window)
    mask = visible.unsqueeze(1)
    unattended = torch.logical_not(mask.any(-1, keepdim=True))
    return torch.logical_or(mask, unattended)
`;
