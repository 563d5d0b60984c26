import { existsSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { formatOptionsMarkdown, formatOptionsText } from '../config/describe-options';
import { ConfigError } from '../errors';
import { fileAction } from '../file-errors';
import { writeFileAtomic } from '../atomic-file';
import { parseTrainerConfig, trainerOptions } from '../train/config';

/** A starter config with TRL's names: what most runs set, the rest at TRL's defaults. */
export const STARTER_CONFIG = `# torch-dpo training config, with TRL DPOConfig / TrainingArguments names.
# \`torch-dpo config\` lists every option with its type, default and meaning.
model_name_or_path: ./model          # an exported HF model folder (README: "Exporting a Hugging Face model")
train_dataset: ./data/train.jsonl    # rows with prompt / chosen / rejected (text or conversations)
eval_dataset: ./data/eval.jsonl
output_dir: ./dpo-output
device: auto                         # cuda when available, else cpu

loss_type: sigmoid
beta: 0.1
learning_rate: 5.0e-7
lr_scheduler_type: cosine
warmup_ratio: 0.1
per_device_train_batch_size: 4
gradient_accumulation_steps: 8
num_train_epochs: 1
max_length: 1024

logging_steps: 10
eval_strategy: steps
eval_steps: 100
save_steps: 500
save_total_limit: 3
report_to: tensorboard
`;

export interface ConfigCommandOptions {
  /** Write the starter config here (true: torch-dpo.yaml). */
  init?: string | boolean;
  force?: boolean;
  markdown?: boolean;
}

/** Lists every option (text or a Markdown table), or writes a starter config. */
export function runConfig(options: ConfigCommandOptions): number {
  if (options.init) {
    const path = options.init === true ? 'torch-dpo.yaml' : options.init;
    if (existsSync(path) && !options.force) throw new ConfigError(`${path} exists: choose another file (config --init other.yaml) or add --force`);
    parseTrainerConfig(parseYaml(STARTER_CONFIG), 'the starter config'); // it must stay valid
    fileAction('write', path, () => writeFileAtomic(path, STARTER_CONFIG));
    process.stdout.write(`wrote ${path}: edit model_name_or_path, train_dataset and output_dir, then run torch-dpo train --config ${path}\n`);
    return 0;
  }
  const docs = trainerOptions();
  process.stdout.write(`${options.markdown ? formatOptionsMarkdown(docs) : formatOptionsText(docs)}\n`);
  return 0;
}
