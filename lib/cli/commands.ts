import type { DType } from '../native/binding';
import { ConfigError } from '../errors';
import { writeHtmlReport } from '../report/html-report';
import type { TrainerConfigInput } from '../train/config';
import { DPOTrainer } from '../train/trainer';
import { applyOverrides, readConfigFile } from './config-file';

/** The options every config-driven command takes. */
export interface ConfigOptions {
  config: string;
  set?: string[];
}

/** The config file with --set overrides applied and the command's own settings on top. */
export function loadConfig(options: ConfigOptions, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...applyOverrides(readConfigFile(options.config), options.set ?? []), ...extra };
}

/** Under torchrun-style launches only rank 0 prints results and notices; other ranks print errors only. */
export const isMainRank = () => Number(process.env.RANK ?? '0') === 0;
const notice = (command: string) => (message: string) => isMainRank() && process.stderr.write(`torch-dpo ${command}: ${message}\n`);
const print = (line: string) => isMainRank() && process.stdout.write(`${line}\n`);

async function withTrainer<T>(command: string, config: Record<string, unknown>, body: (t: DPOTrainer) => Promise<T>): Promise<T> {
  // These commands read output_dir at most: no lock, so they work beside a running training.
  const trainer = await DPOTrainer.create(config as TrainerConfigInput, { writesOutput: false, notice: notice(command) });
  try {
    return await body(trainer);
  } finally {
    trainer.dispose();
  }
}

/** Evaluates the config's model (or a checkpoint's weights) on eval_dataset; prints eval_ metrics as JSON. */
export async function runEval(options: ConfigOptions & { checkpoint?: string }): Promise<number> {
  const config = loadConfig(options, { report_to: [] });
  if (!config.eval_dataset) throw new ConfigError('eval needs eval_dataset in the config (or --set eval_dataset=…)');
  const metrics = await withTrainer('eval', config, async (t) => {
    if (options.checkpoint) await t.policy.loadTrained(options.checkpoint);
    return t.evaluate();
  });
  print(JSON.stringify(metrics));
  return 0;
}

/** Computes the reference log-probs of train (and eval) pairs once and caches them. */
export async function runPrecomputeRef(options: ConfigOptions): Promise<number> {
  const config = loadConfig(options, { precompute_ref_log_probs: true, report_to: [] });
  if (config.cache_dir === false) throw new ConfigError('precompute-ref stores its results in cache_dir: it cannot be false');
  const counts = await withTrainer('precompute-ref', config, async (t) => ({ train: t.pairs.length, eval: t.evalPairs.length }));
  print(`reference log-probs ready for ${counts.train} train and ${counts.eval} eval pairs (cached)`);
  return 0;
}

/**
 * Writes a checkpoint's policy as HF safetensors + config + tokenizer and TorchScript model.pt; under
 * LoRA its adapter (PEFT files), or with --merge the merged model.
 */
export async function runExport(options: ConfigOptions & { checkpoint: string; out: string; dtype?: string; merge?: boolean }): Promise<number> {
  const config = loadConfig(options, { report_to: [], reference_free: true });
  const out = await withTrainer('export', config, async (t) => {
    await t.policy.loadTrained(options.checkpoint);
    // Launched (ZeRO-3): every rank gathers the layers it holds slices of; rank 0 writes.
    return t.exportFinal(options.out, { merge: options.merge, dtype: options.dtype as DType | undefined, writes: isMainRank() });
  });
  print(`exported to ${out}`);
  return 0;
}

/** Writes <output_dir>/report.html from its metrics.jsonl and run.json. */
export function runReport(outputDir: string): number {
  process.stdout.write(`${writeHtmlReport(outputDir, undefined, (message) => process.stderr.write(`torch-dpo report: warning: ${message}\n`))}\n`);
  return 0;
}
