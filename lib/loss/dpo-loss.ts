import { ConfigError } from '../errors';
import { readScalars } from '../named-values';
import { runFusedOp, Tensor } from '../tensor';
import { LENGTH_NORMALISED, lossTypes, parseDpoLossConfig, type DpoLossConfigInput } from './dpo-config';

type PerPair = Tensor | number[];

/** Per-sequence log-probs of a batch of B pairs (Tensors, or plain arrays handy for checking numbers). */
export interface DpoLossInputs {
  policyChosenLogps: PerPair;
  policyRejectedLogps: PerPair;
  /** Absent only with reference_free. */
  referenceChosenLogps?: PerPair;
  referenceRejectedLogps?: PerPair;
  /** Completion token counts; needed by ipo, sigmoid_norm, sft and WPO. */
  chosenLengths?: PerPair;
  rejectedLengths?: PerPair;
  /** WPO (use_weighting): `wpoLogSum` of sequenceLogps({ wpo: true }) for the policy. */
  chosenWpoLogSum?: PerPair;
  rejectedWpoLogSum?: PerPair;
  /** LD-DPO (ld_alpha): label-aligned per-token log-probs [B,T] and completion masks [B,T]. */
  chosenTokenLogps?: Tensor;
  rejectedTokenLogps?: Tensor;
  referenceChosenTokenLogps?: Tensor;
  referenceRejectedTokenLogps?: Tensor;
  chosenMask?: Tensor;
  rejectedMask?: Tensor;
}

export const METRIC_NAMES = [
  'rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected',
] as const;
export type DpoMetrics = Record<(typeof METRIC_NAMES)[number], number>;

export interface DpoLossResult {
  /** The scalar to backpropagate (0-d). */
  loss: Tensor;
  /** Per-pair losses [B] (weighted sum over loss types). */
  losses: Tensor;
  /** β·(policy − reference) log-ratios per pair [B], detached. */
  chosenRewards: Tensor;
  rejectedRewards: Tensor;
  metrics: DpoMetrics;
}

// Native input names for each field, in the order they are passed.
const FIELDS: [keyof DpoLossInputs, string][] = [
  ['policyChosenLogps', 'policyChosen'],
  ['policyRejectedLogps', 'policyRejected'],
  ['referenceChosenLogps', 'referenceChosen'],
  ['referenceRejectedLogps', 'referenceRejected'],
  ['chosenLengths', 'chosenLengths'],
  ['rejectedLengths', 'rejectedLengths'],
  ['chosenWpoLogSum', 'chosenWpoLogSum'],
  ['rejectedWpoLogSum', 'rejectedWpoLogSum'],
  ['chosenTokenLogps', 'chosenTokenLogps'],
  ['rejectedTokenLogps', 'rejectedTokenLogps'],
  ['referenceChosenTokenLogps', 'referenceChosenTokenLogps'],
  ['referenceRejectedTokenLogps', 'referenceRejectedTokenLogps'],
  ['chosenMask', 'chosenMask'],
  ['rejectedMask', 'rejectedMask'],
];

function requireInputs(inputs: DpoLossInputs, names: (keyof DpoLossInputs)[], why: string): void {
  const missing = names.filter((n) => inputs[n] === undefined);
  if (missing.length > 0) throw new ConfigError(`dpoLoss: ${why} needs ${missing.join(', ')}`);
}

/**
 * The DPO loss family with TRL's option names (loss_type, beta, label_smoothing, f_divergence_type,
 * …). The config is validated before any compute; the loss is differentiable w.r.t. the log-probs.
 */
export async function dpoLoss(
  inputs: DpoLossInputs,
  config: DpoLossConfigInput = {},
  options: { allowNonFinite?: boolean } = {},
): Promise<DpoLossResult> {
  const c = parseDpoLossConfig(config);
  const types = lossTypes(c);
  if (!c.reference_free) requireInputs(inputs, ['referenceChosenLogps', 'referenceRejectedLogps'], 'a reference (reference_free is false)');
  const needsLengths = types.filter((t) => LENGTH_NORMALISED.includes(t));
  if (needsLengths.length > 0) requireInputs(inputs, ['chosenLengths', 'rejectedLengths'], `loss_type ${needsLengths.join(', ')}`);
  if (c.use_weighting) requireInputs(inputs, ['chosenWpoLogSum', 'rejectedWpoLogSum', 'chosenLengths', 'rejectedLengths'], 'use_weighting (WPO)');
  if (c.ld_alpha !== undefined) {
    requireInputs(inputs, ['chosenTokenLogps', 'rejectedTokenLogps', 'chosenMask', 'rejectedMask'], 'ld_alpha (LD-DPO)');
    if (!c.reference_free) requireInputs(inputs, ['referenceChosenTokenLogps', 'referenceRejectedTokenLogps'], 'ld_alpha (LD-DPO) with a reference');
  }

  const created: Tensor[] = [];
  const names: string[] = [];
  const tensors: Tensor[] = [];
  // Plain arrays join the tensors where they are (a CUDA batch keeps its loss on the GPU).
  const device = FIELDS.map(([field]) => inputs[field]).find((v): v is Tensor => v instanceof Tensor)?.device ?? 'cpu';
  for (const [field, nativeName] of FIELDS) {
    const value = inputs[field];
    if (value === undefined) continue;
    if (c.reference_free && nativeName.startsWith('reference')) continue;
    let tensor = value instanceof Tensor ? value : Tensor.from(value, { dtype: 'float64' });
    if (!(value instanceof Tensor)) {
      created.push(tensor);
      if (device !== 'cpu') {
        tensor = await tensor.to(device);
        created.push(tensor);
      }
    }
    names.push(nativeName);
    tensors.push(tensor);
  }
  try {
    const out = await runFusedOp('dpo_loss', tensors, {
      layout: names.join(','),
      loss_type: types.join(','),
      loss_weights: c.loss_weights ?? types.map(() => 1),
      beta: c.beta,
      label_smoothing: c.label_smoothing,
      f_divergence_type: c.f_divergence_type,
      f_alpha_divergence_coef: c.f_alpha_divergence_coef,
      discopop_tau: c.discopop_tau,
      use_weighting: c.use_weighting,
      ld_alpha: c.ld_alpha,
      allow_nonfinite: options.allowNonFinite ?? false,
    });
    // The op names each metric ("metric:<TRL name>"); they are read back together, by name.
    const named = Object.entries(out).filter(([key]) => key.startsWith('metric:'));
    const metrics = (await readScalars(Object.fromEntries(named.map(([key, t]) => [key.slice('metric:'.length), t])))) as DpoMetrics;
    for (const [, t] of named) t.dispose();
    return { loss: out.loss, losses: out.losses, chosenRewards: out.chosenRewards, rejectedRewards: out.rejectedRewards, metrics };
  } finally {
    // Tensors made here from plain arrays are ours to free (autograd keeps what it still needs).
    for (const t of created) t.dispose();
  }
}
