import { z } from 'zod';
import { parseOnce, parsePart } from '../config/parse';

/** Every loss TRL's DPOTrainer knows (../shared/notes/dpo-spec.md, "Losses"). */
export const LOSS_TYPES = [
  'sigmoid', 'hinge', 'ipo', 'exo_pair', 'nca_pair', 'robust', 'bco_pair', 'sppo_hard', 'aot', 'aot_unpaired',
  'apo_zero', 'apo_down', 'discopop', 'sft', 'sigmoid_norm',
] as const;
export type LossType = (typeof LOSS_TYPES)[number];
export const F_DIVERGENCES = ['reverse_kl', 'forward_kl', 'js_divergence', 'alpha_divergence'] as const;

/** Loss types computed from the length-normalised log-ratios: they need chosen/rejected lengths. */
export const LENGTH_NORMALISED: readonly LossType[] = ['ipo', 'sigmoid_norm', 'sft'];

/**
 * The loss options with TRL's names. Defaults (TRL's, so configs move over) are set here and only here.
 */
export const dpoLossConfigSchema = z
  .object({
    loss_type: z.union([z.enum(LOSS_TYPES), z.array(z.enum(LOSS_TYPES)).nonempty()]).default('sigmoid')
      .describe('The DPO loss, or a list of them combined with loss_weights (e.g. [sigmoid, sft] for RPO).'),
    loss_weights: z.array(z.number().finite()).nonempty().optional()
      .describe('One weight per loss_type entry; default 1 each.'),
    beta: z.number().finite().positive().default(0.1)
      .describe('How far the policy may move from the reference: higher β, less deviation (τ for ipo).'),
    label_smoothing: z.number().min(0).lt(1).default(0)
      .describe('cDPO smoothing for sigmoid; the flip probability for robust (< 0.5); ε for exo_pair (> 0).'),
    f_divergence_type: z.enum(F_DIVERGENCES).default('reverse_kl').describe('f-DPO divergence between policy and reference.'),
    f_alpha_divergence_coef: z.number().finite().default(0.5).describe('α of alpha_divergence.'),
    discopop_tau: z.number().finite().positive().default(0.05).describe('τ of the discopop loss.'),
    use_weighting: z.boolean().default(false)
      .describe("WPO: weight each pair by the policy's length-normalised probability of both completions."),
    ld_alpha: z.number().min(0).max(1).optional()
      .describe("LD-DPO: weight of the longer completion's tokens beyond the shorter one's length (1: plain DPO)."),
    reference_free: z.boolean().default(false)
      .describe('Reference log-probs are taken as 0 (SimPO/CPO-style objectives); no reference model is loaded.'),
  })
  .strict()
  .superRefine((c, ctx) => {
    const types = Array.isArray(c.loss_type) ? c.loss_type : [c.loss_type];
    const fail = (path: string, message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path: [path], message });
    if (c.loss_weights && c.loss_weights.length !== types.length) {
      fail('loss_weights', `needs one weight per loss_type: ${types.length} type(s), ${c.loss_weights.length} weight(s)`);
    }
    if (types.includes('exo_pair') && c.label_smoothing <= 0) {
      fail('label_smoothing', 'exo_pair needs label_smoothing > 0 (1e-3 is typical)');
    }
    if (types.includes('robust') && c.label_smoothing >= 0.5) {
      fail('label_smoothing', 'robust needs 0 <= label_smoothing < 0.5');
    }
    if (c.use_weighting && types.some((t) => t === 'aot' || t === 'aot_unpaired')) {
      fail('use_weighting', 'WPO weighting cannot be combined with aot or aot_unpaired');
    }
  });

export type DpoLossConfigInput = z.input<typeof dpoLossConfigSchema>;
export type DpoLossConfig = z.output<typeof dpoLossConfigSchema> & { loss_type: LossType | LossType[] };

/** Validates at the boundary; every problem is listed in one ConfigError. A parsed config passes through. */
export function parseDpoLossConfig(input: unknown, where = 'dpoLoss config'): DpoLossConfig {
  return parseOnce(dpoLossConfigSchema, input, where) as DpoLossConfig;
}

/** The loss options out of a bigger config (the trainer's), parsed already. */
export function dpoLossConfigOf(config: Record<string, unknown>): DpoLossConfig {
  return parsePart(dpoLossConfigSchema, config, 'dpoLoss config') as DpoLossConfig;
}

export function lossTypes(config: DpoLossConfig): LossType[] {
  return Array.isArray(config.loss_type) ? config.loss_type : [config.loss_type];
}
