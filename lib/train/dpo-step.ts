import type { PreferenceBatch } from '../data/collate';
import { isGradEnabled, noGrad } from '../grad-mode';
import { scope } from '../scope';
import type { DpoLossConfig } from '../loss/dpo-config';
import { dpoLoss, type DpoLossInputs, type DpoMetrics } from '../loss/dpo-loss';
import type { CausalLM } from '../models/causal-lm';
import { sequenceLogps, sequenceLogpsFromHidden, type SequenceLogpsResult } from '../ops/sequence-logps';
import { Tensor } from '../tensor';
import { readScalars } from '../named-values';

/**
 * The fused-linear log-prob op (lm_head and log-softmax in chunks: the logits never exist) or the
 * logits path. 'auto' takes the fused op once a micro-batch's logits would exceed
 * FUSED_LINEAR_MIN_LOGITS elements: below that the logits path is as fast or faster on CPU and its
 * memory small (measured in the README, "Log-probabilities").
 */
export type FusedLinearChoice = boolean | 'auto';

/** 64M elements: 256 MiB of fp32 logits. */
export const FUSED_LINEAR_MIN_LOGITS = 64 * 2 ** 20;

export interface LogpsRequest {
  tokenLogps: boolean;
  wpo: boolean;
  metrics: boolean;
  fusedLinear: FusedLinearChoice;
}

/** The batch's packed stream when the model takes one (built-in architectures), else null: padded rows. */
const packedFor = (batch: PreferenceBatch, model: CausalLM) => (batch.packed && model.info.packs ? batch.packed : null);

function usesFusedLinear(choice: FusedLinearChoice, rows: number, length: number, vocab: number): boolean {
  return choice === 'auto' ? rows * length * vocab > FUSED_LINEAR_MIN_LOGITS : choice;
}

/**
 * Per-sequence log-probs of the 2B rows: from packed rows when the batch has them and the model takes
 * them (fused-linear on the gathered states), else fused-linear from hidden states when possible,
 * else from logits.
 */
export async function batchLogps(model: CausalLM, batch: PreferenceBatch, request: LogpsRequest): Promise<SequenceLogpsResult> {
  const result = await logpsOf(model, batch, request);
  // ZeRO-3: a forward without backward (reference, evaluation) is done with the outer unit now; a
  // training forward keeps it for its backward (the optimizer frees it after the micro-batch).
  if (!isGradEnabled()) await model.shardedLayers?.release();
  return result;
}

async function logpsOf(model: CausalLM, batch: PreferenceBatch, request: LogpsRequest): Promise<SequenceLogpsResult> {
  // Non-finite values flow through: the trainer skips and counts such steps.
  const options = { tokenLogps: request.tokenLogps, wpo: request.wpo, metrics: request.metrics, allowNonFinite: true };
  const [N, L] = batch.inputIds.shape;
  const fused = usesFusedLinear(request.fusedLinear, N, L, model.info.vocabSize);
  const packed = packedFor(batch, model);
  if (packed) {
    // Packed stream: the states of each sequence's tokens gathered back into the padded 2B layout.
    const stream = await model.forwardHiddenPacked(packed);
    const size = stream.shape[2];
    const hidden = await (await (await stream.view([packed.tokens, size])).indexSelect(0, packed.sequenceIndex)).view([N, L, size]);
    if (fused) return sequenceLogpsFromHidden(hidden, (await model.lmHeadWeight())!, undefined, batch.inputIds, batch.completionMask, options);
    return sequenceLogps(await model.logitsFromHidden(hidden), batch.inputIds, batch.completionMask, { ...options, inplaceBackward: true });
  }
  const head = fused && model.info.hasForwardHidden ? await model.lmHeadWeight() : null;
  if (head) {
    const hidden = await model.forwardHidden(batch.inputIds, batch.attentionMask);
    return sequenceLogpsFromHidden(hidden, head, undefined, batch.inputIds, batch.completionMask, options);
  }
  const logits = await model.forward(batch.inputIds, batch.attentionMask);
  // The logits are used once: their gradient can overwrite them.
  return sequenceLogps(logits, batch.inputIds, batch.completionMask, { ...options, inplaceBackward: true });
}

export interface MicroStepResult {
  pairs: number;
  /** Real tokens of the 2B sequences (a shared prompt counts once per sequence): the useful work. */
  tokens: number;
  /** Token slots the policy's forward ran on (rows × width, padding included), and the real ones among them. */
  processedTokens: number;
  layoutTokens: number;
  metrics: DpoMetrics & Record<string, number>;
  loss: number;
}

const halves = async (t: Tensor, b: number) => [await t.narrow(0, 0, b), await t.narrow(0, b, b)];

/**
 * The reference side of one batch: a frozen model, log-probs computed beforehand for the batch's
 * pairs, or none (reference_free: the reference log-probs are 0).
 */
export type BatchReference =
  | { kind: 'model'; model: CausalLM }
  | { kind: 'logps'; chosen: number[]; rejected: number[] }
  | { kind: 'none' };

/**
 * One micro-batch: policy (and reference, without gradient) log-probs, the DPO loss, and backward of
 * loss × scale. scale = pairs in this micro-batch / pairs in the optimizer step, so gradient
 * accumulation over micro-batches equals one big batch.
 */
export function microStep(
  policy: CausalLM,
  reference: BatchReference,
  batch: PreferenceBatch,
  loss: DpoLossConfig,
  scale: number,
  fusedLinear: FusedLinearChoice,
): Promise<MicroStepResult> {
  // Logits, log-probs and the loss live only for this micro-batch: the scope frees them after backward.
  return scope(async () => {
    const { result, ...rest } = await pairLoss(policy, reference, batch, loss, fusedLinear);
    await (await result.mul(scale)).backward();
    return rest;
  });
}

/**
 * The loss of a micro-batch and its metrics, without backward (evaluation runs it under noGrad).
 * Every intermediate tensor is disposed; the caller owns `result`.
 */
export function pairLoss(
  policy: CausalLM,
  reference: BatchReference,
  batch: PreferenceBatch,
  loss: DpoLossConfig,
  fusedLinear: FusedLinearChoice,
): Promise<MicroStepResult & { result: Tensor }> {
  return scope(async () => {
    const B = batch.pairs;
    const ld = loss.ld_alpha !== undefined;
    const pol = await batchLogps(policy, batch, { tokenLogps: ld, wpo: loss.use_weighting, metrics: true, fusedLinear });
    const model = reference.kind === 'model' && !loss.reference_free ? reference.model : null;
    const ref = model ? await noGrad(() => batchLogps(model, batch, { tokenLogps: ld, wpo: false, metrics: false, fusedLinear })) : null;
    const [pc, pr] = await halves(pol.logps, B);
    const [nc, nr] = await halves(pol.counts, B);
    const inputs: DpoLossInputs = { policyChosenLogps: pc, policyRejectedLogps: pr, chosenLengths: nc, rejectedLengths: nr };
    if (ref) [inputs.referenceChosenLogps, inputs.referenceRejectedLogps] = await halves(ref.logps, B);
    else if (reference.kind === 'logps' && !loss.reference_free) {
      const { chosen, rejected } = reference;
      const device = pol.logps.device;
      inputs.referenceChosenLogps = await Tensor.from(chosen, { dtype: 'float64' }).to({ device, dtype: pol.logps.dtype });
      inputs.referenceRejectedLogps = await Tensor.from(rejected, { dtype: 'float64' }).to({ device, dtype: pol.logps.dtype });
    }
    if (loss.use_weighting) [inputs.chosenWpoLogSum, inputs.rejectedWpoLogSum] = await halves(pol.wpoLogSum!, B);
    if (ld) {
      [inputs.chosenTokenLogps, inputs.rejectedTokenLogps] = await halves(pol.tokenLogps!, B);
      if (ref) [inputs.referenceChosenTokenLogps, inputs.referenceRejectedTokenLogps] = await halves(ref.tokenLogps!, B);
      // Label-aligned masks: position 0 predicts nothing.
      const aligned = await batch.completionMask.clone();
      await (await aligned.narrow(1, 0, 1)).zero_(); // a view: clears column 0 of `aligned`
      [inputs.chosenMask, inputs.rejectedMask] = await halves(aligned, B);
    }
    const result = await dpoLoss(inputs, loss, { allowNonFinite: true });

    // Metrics of the spec beyond the loss's own: token-weighted over chosen/rejected completions.
    // Chosen/rejected sums of each per-sequence metric and the loss, read back by name in one transfer
    // (one device sync).
    const dtype = pol.meanLogitSum!.dtype;
    const perSide: Record<string, Tensor> = { tokens: await pol.counts.to(dtype), meanLogit: pol.meanLogitSum!, entropy: pol.entropySum!, argmaxHits: pol.argmaxHits! };
    const sums: Record<string, Tensor> = { loss: await result.loss.detach().to(dtype) };
    for (const [name, t] of Object.entries(perSide)) {
      const [chosen, rejected] = await halves(t, B);
      [sums[`${name}/chosen`], sums[`${name}/rejected`]] = [await chosen.sum(), await rejected.sum()];
    }
    const s = await readScalars(sums);
    const [tokC, tokR] = [s['tokens/chosen'], s['tokens/rejected']];
    const tokens = batch.lengths.reduce((a, b) => a + b, 0);
    const packed = packedFor(batch, policy);
    return {
      result: result.loss,
      pairs: B,
      tokens,
      processedTokens: packed ? packed.tokens : batch.inputIds.numel,
      layoutTokens: packed ? packed.tokens : tokens,
      loss: s.loss,
      metrics: {
        ...result.metrics,
        'logits/chosen': s['meanLogit/chosen'] / Math.max(tokC, 1),
        'logits/rejected': s['meanLogit/rejected'] / Math.max(tokR, 1),
        entropy: (s['entropy/chosen'] + s['entropy/rejected']) / Math.max(tokC + tokR, 1),
        mean_token_accuracy: s['argmaxHits/chosen'] / Math.max(tokC, 1),
      },
    };
  });
}
