import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../errors';
import { writeHtmlReport } from '../report/html-report';
import { DPOTrainer } from '../train/trainer';
import { applyOverrides, readConfigFile } from './config-file';

export const EVAL_USAGE = `usage: torch-dpo eval --config <file> [--checkpoint DIR] [--set key=value ...]
Evaluates the model of the config (or a checkpoint's weights) on eval_dataset; prints eval_ metrics as JSON.
`;
export const PRECOMPUTE_USAGE = `usage: torch-dpo precompute-ref --config <file> [--set key=value ...]
Computes the reference log-probs of train (and eval) pairs once and caches them; later runs with
precompute_ref_log_probs: true reuse them.
`;
export const EXPORT_USAGE = `usage: torch-dpo export --config <file> --checkpoint DIR --out DIR [--dtype float32|bfloat16|float16]
Writes a checkpoint's policy as HF safetensors + config + tokenizer and TorchScript model.pt.
`;
export const REPORT_USAGE = `usage: torch-dpo report <output_dir>
Writes <output_dir>/report.html (charts of loss, rewards, log-probs, learning rate, grad norm).
`;

const withConfig = { config: { type: 'string' }, set: { type: 'string', multiple: true } } as const;

function loadConfig(values: { config?: string; set?: string[] }, usage: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  if (!values.config) throw new ConfigError(`--config is required\n${usage}`);
  return { ...applyOverrides(readConfigFile(values.config), values.set ?? []), ...extra };
}

async function withTrainer<T>(config: Record<string, unknown>, body: (t: DPOTrainer) => Promise<T>): Promise<T> {
  const trainer = new DPOTrainer(config as never);
  try {
    // These commands read output_dir at most: no lock, so they work beside a running training.
    await trainer.setup({ writesOutput: false });
    return await body(trainer);
  } finally {
    trainer.dispose();
  }
}

export async function runEval(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { ...withConfig, checkpoint: { type: 'string' } }, strict: true });
  const config = loadConfig(values, EVAL_USAGE, { report_to: [] });
  if (!config.eval_dataset) throw new ConfigError('eval needs eval_dataset in the config (or --set eval_dataset=…)');
  const metrics = await withTrainer(config, async (t) => {
    if (values.checkpoint) await t.policy.loadSafetensors(join(values.checkpoint, 'model.safetensors'));
    return t.evaluate();
  });
  process.stdout.write(`${JSON.stringify(metrics)}\n`);
  return 0;
}

export async function runPrecomputeRef(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: withConfig, strict: true });
  const config = loadConfig(values, PRECOMPUTE_USAGE, { precompute_ref_log_probs: true, report_to: [] });
  if (config.cache_dir === false) throw new ConfigError('precompute-ref stores its results in cache_dir: it cannot be false');
  const counts = await withTrainer(config, async (t) => ({ train: t.pairs.length, eval: t.evalPairs.length }));
  process.stdout.write(`reference log-probs ready for ${counts.train} train and ${counts.eval} eval pairs (cached)\n`);
  return 0;
}

export async function runExport(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { ...withConfig, checkpoint: { type: 'string' }, out: { type: 'string' }, dtype: { type: 'string' } }, strict: true });
  if (!values.checkpoint || !values.out) throw new ConfigError(`--checkpoint and --out are required\n${EXPORT_USAGE}`);
  const config = loadConfig(values, EXPORT_USAGE, { report_to: [], reference_free: true });
  const out = await withTrainer(config, async (t) => {
    await t.policy.loadSafetensors(join(values.checkpoint!, 'model.safetensors'));
    if (values.dtype) await t.policy.to({ dtype: values.dtype as never });
    return t.exportFinal(values.out!);
  });
  process.stdout.write(`exported to ${out}\n`);
  return 0;
}

export function runReport(args: string[]): number {
  if (args.length !== 1) throw new ConfigError(`report takes one output_dir\n${REPORT_USAGE}`);
  process.stdout.write(`${writeHtmlReport(args[0], undefined, (message) => process.stderr.write(`torch-dpo report: warning: ${message}\n`))}\n`);
  return 0;
}
