import { runFusedOp, type Tensor } from '../tensor';

export interface SequenceLogpsOptions {
  /** Logit rows per chunk (memory ∝ chunkRows × V); default ≈ 16M logits per chunk. */
  chunkRows?: number;
  /**
   * Write the logits gradient into the logits' own storage (saves a [N,T,V] buffer). Only when
   * nothing else needs these logits afterwards; libtorch raises an error if another op saved them.
   */
  inplaceBackward?: boolean;
  /** Also return differentiable label-aligned per-token log-probs [N,T] (for LD-DPO). */
  tokenLogps?: boolean;
  /** Also return per-sequence sums of entropy, vocab-mean logit and argmax hits (metrics). */
  metrics?: boolean;
  /** Also return Σ_t (logp_t − log Σ_v p_v²) per sequence (WPO weights). */
  wpo?: boolean;
  /** Return NaN/Inf results instead of failing on non-finite logits (the trainer counts such steps). */
  allowNonFinite?: boolean;
}

export interface SequenceLogpsResult {
  /** Σ of completion-token log-probs per sequence [N] (fp32, or fp64 for fp64 logits); differentiable. */
  logps: Tensor;
  /** Completion tokens per sequence [N] (int64). */
  counts: Tensor;
  tokenLogps?: Tensor;
  entropySum?: Tensor;
  meanLogitSum?: Tensor;
  argmaxHits?: Tensor;
  wpoLogSum?: Tensor;
}

/** The options' defaults (the native op requires every one). chunkRows 0: ≈ 16M logits per chunk. */
const DEFAULTS: Required<SequenceLogpsOptions> = { chunkRows: 0, inplaceBackward: false, tokenLogps: false, metrics: false, wpo: false, allowNonFinite: false };

/**
 * Per-sequence summed log-probabilities of the completion tokens: logits at t predict token t+1, a
 * token counts when its completion mask is set. Chunked, fp32 logsumexp, never materialises
 * log_softmax; its backward recomputes softmax chunk by chunk.
 */
export async function sequenceLogps(
  logits: Tensor,
  inputIds: Tensor,
  completionMask: Tensor,
  options: SequenceLogpsOptions = {},
): Promise<SequenceLogpsResult> {
  return (await runFusedOp('sequence_logps', [logits, inputIds, completionMask], { ...DEFAULTS, ...options })) as unknown as SequenceLogpsResult;
}

/**
 * The same results from last hidden states [N,T,H] and the lm_head ([V,H] weight, optional [V] bias)
 * without ever building [N,T,V]: logits are made chunk by chunk for completion positions only and
 * rebuilt in backward (gradients for hidden, weight and bias).
 */
export async function sequenceLogpsFromHidden(
  hidden: Tensor,
  lmHeadWeight: Tensor,
  lmHeadBias: Tensor | undefined,
  inputIds: Tensor,
  completionMask: Tensor,
  options: Omit<SequenceLogpsOptions, 'inplaceBackward'> = {},
): Promise<SequenceLogpsResult> {
  const inputs = [hidden, lmHeadWeight, inputIds, completionMask, ...(lmHeadBias ? [lmHeadBias] : [])];
  return (await runFusedOp('sequence_logps_from_hidden', inputs, { ...DEFAULTS, ...options })) as unknown as SequenceLogpsResult;
}
