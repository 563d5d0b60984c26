import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../lib';
import { keysOf } from '../lib/config/parse';
import { FOREIGN_KEYS } from '../lib/config/trl-compat';
import { dpoLossConfigOf, parseDpoLossConfig } from '../lib/loss/dpo-config';
import { HfTokenizer } from '../lib/data/tokenizer';
import { tokenizePair } from '../lib/data/tokenize-pairs';
import { parseTrainerConfig, parseTrainerConfigWithNotices, trainerConfigSchema } from '../lib/train/config';
import { cli, cliProject, TINY_GPT2 } from './support/cli-project';

// TRL's DPOConfig, transformers' TrainingArguments, TRL's ModelConfig / ScriptArguments and the keys of
// TRL 0.2x configs, each with TRL's default (see the fixture's _source for the versions read).
const trl = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'trl-keys.json'), 'utf8')) as Record<string, Record<string, unknown>>;
const allTrlKeys = Object.entries(trl).filter(([group]) => group !== '_source').flatMap(([, keys]) => Object.entries(keys));
const REQUIRED = { model_name_or_path: 'model', train_dataset: 'train.jsonl', output_dir: 'out' };
const problems = (input: Record<string, unknown>) => {
  try {
    parseTrainerConfig(input);
    return '';
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
};

describe('TRL configs move over', () => {
  it('knows every key of TRL and transformers: as its own option, or translated', () => {
    const ours = new Set(keysOf(trainerConfigSchema));
    const unknown = allTrlKeys.map(([key]) => key).filter((key) => !ours.has(key) && !(key in FOREIGN_KEYS));
    expect(allTrlKeys.length).toBeGreaterThan(180);
    expect(unknown).toEqual([]);
  });

  it("accepts TRL's default for every key at once; only what asks for something says so", () => {
    const { config, notices } = parseTrainerConfigWithNotices({ ...Object.fromEntries(allTrlKeys), ...REQUIRED });
    // Every default is taken silently; TRL's bf16 and gradient checkpointing (on by default there) are torch-dpo options too.
    expect(notices).toEqual([]);
    expect(config).toMatchObject({
      bf16: true, gradient_checkpointing: true,
      learning_rate: 1e-6, beta: 0.1, loss_type: ['sigmoid'], max_length: 1024, logging_steps: 10, optim: 'adamw_torch_fused',
      report_to: [], eval_strategy: 'no', save_strategy: 'steps', save_steps: 500, dtype: 'float32', max_prompt_length: 512, max_grad_norm: 1,
    });
  });

  it('refuses what it cannot do, all at once, each with the reason and the torch-dpo way', () => {
    const message = problems({ ...REQUIRED, deepspeed: 'ds_config.json', fsdp: 'full_shard', push_to_hub: true, use_dora: true, activation_offloading: true, load_in_4bit: true });
    expect(message.split('\n').slice(1).map((l) => l.trim().split(':')[0]).sort()).toEqual(['activation_offloading', 'deepspeed', 'fsdp', 'load_in_4bit', 'push_to_hub', 'use_dora']);
    expect(message).toMatch(/deepspeed: ds_config\.json is not supported: DeepSpeed does not run here; use torch-dpo launch --nproc-per-node N -- train … .* optimizer_sharding: true/);
    expect(message).toMatch(/push_to_hub: true is not supported: .*huggingface-cli upload/);
    // The same keys at their defaults ask for nothing.
    expect(problems({ ...REQUIRED, deepspeed: null, fsdp: '', push_to_hub: false, use_dora: false, activation_offloading: false, load_in_4bit: false })).toBe('');
  });

  it('maps renamed and legacy keys, each with a one-line notice', () => {
    const { config, notices } = parseTrainerConfigWithNotices({
      ...REQUIRED, torch_dtype: 'bfloat16', evaluation_strategy: 'steps', eval_dataset: 'eval.jsonl', group_by_length: true, use_cpu: true,
      rpo_alpha: 0.5, report_to: ['wandb', 'tensorboard'], dataloader_num_workers: 4,
    });
    expect(config).toMatchObject({
      dtype: 'bfloat16', eval_strategy: 'steps', train_sampling_strategy: 'group_by_length', device: 'cpu',
      loss_type: ['sigmoid', 'sft'], loss_weights: [1, 0.5], report_to: ['tensorboard'],
    });
    expect(notices).toEqual(expect.arrayContaining([
      'torch_dtype: read as dtype: bfloat16',
      'rpo_alpha: read as loss_type: ["sigmoid","sft"] with loss_weights: [1,0.5] (RPO, as current TRL spells it)',
      expect.stringMatching(/^report_to: wandb not supported; metrics go to metrics.jsonl, report.html and TensorBoard$/),
      expect.stringMatching(/^dataloader_num_workers: 4 has no effect: data is tokenized up front/),
    ]));
    expect(notices.every((n) => !n.includes('\n'))).toBe(true);
    expect(parseTrainerConfig({ ...REQUIRED, report_to: 'none' }).report_to).toEqual([]);
    expect(parseTrainerConfig({ ...REQUIRED, report_to: 'all' }).report_to).toEqual(['tensorboard']);
    expect(parseTrainerConfig({ ...REQUIRED, report_to: 'tensorboard' }).report_to).toEqual(['tensorboard']);
    expect(parseTrainerConfig({ ...REQUIRED, model_init_kwargs: { dtype: 'float64', attn_implementation: 'sdpa' } }).dtype).toBe('float64');
    expect(parseTrainerConfig({ ...REQUIRED, dtype: 'auto' }).dtype).toBeUndefined();
  });

  it('echoes a wrong value with the choices and the nearest one', () => {
    expect(problems({ ...REQUIRED, loss_type: 'sigmiod' })).toContain(
      "loss_type: 'sigmiod' is not one of sigmoid, hinge, ipo, exo_pair, nca_pair, robust, bco_pair, sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, sft, sigmoid_norm (did you mean 'sigmoid'?)");
    expect(problems({ ...REQUIRED, loss_type: ['sigmoid', 'ipoo'] })).toMatch(/loss_type\.1: 'ipoo' is not one of sigmoid, .* \(did you mean 'ipo'\?\)/);
    expect(problems({ ...REQUIRED, lr_scheduler_type: 'cosin' })).toContain("lr_scheduler_type: 'cosin' is not one of linear, cosine, constant, constant_with_warmup (did you mean 'cosine'?)");
    expect(problems({ ...REQUIRED, device: 'gpu' })).toContain("device: must be auto, cpu, cuda or cuda:N (got 'gpu')");
    expect(problems({ ...REQUIRED, learning_rate: -1 })).toContain('learning_rate: Number must be greater than 0 (got -1)');
  });

  it('parses once: a parsed config passes through unchanged, and its parts are parsed once too', () => {
    const parsed = parseTrainerConfig({ ...REQUIRED, beta: 0.2 });
    expect(parseTrainerConfig(parsed)).toBe(parsed);
    const loss = dpoLossConfigOf(parsed);
    expect(parseDpoLossConfig(loss)).toBe(loss); // what dpoLoss does per micro-batch: no zod pass
    expect(loss.beta).toBe(0.2);
  });

  it('suggests the nearest option for an unknown key', () => {
    expect(problems({ ...REQUIRED, learning_rte: 1e-6 })).toContain("learning_rte: unknown option (did you mean 'learning_rate'?)");
    expect(problems({ ...REQUIRED, warmup_ration: 0.1 })).toContain("warmup_ration: unknown option (did you mean 'warmup_ratio'?)");
    expect(problems({ ...REQUIRED, completely_made_up: 1 })).toMatch(/completely_made_up: unknown option; `torch-dpo config` lists every option/);
  });

  it('max_completion_length cuts each completion to its first tokens, and counts the pair as truncated', () => {
    const tokenizer = HfTokenizer.fromDir(TINY_GPT2);
    const example = { prompt: 'w10 w11', chosen: ' w3 w4 w5 w6', rejected: ' w7 w8', format: 'standard', source: { file: 'x', line: 1 } } as never;
    const full = tokenizePair(example, tokenizer, {});
    const cut = tokenizePair(example, tokenizer, { maxCompletionLength: 3 }); // rejected: w7 w8 EOS fits
    expect(cut.chosen.ids).toEqual(Array.from(full.chosen.ids).slice(0, full.chosen.promptLength + 3));
    expect(cut.rejected.ids).toEqual(full.rejected.ids);
    expect([full.truncated, cut.truncated]).toEqual([false, true]);
  });

  it('a TRL-style YAML runs unchanged from the command line', () => {
    const { config, out } = cliProject(4, [
      'bf16: true', 'gradient_checkpointing: true', 'report_to: none', 'save_strategy: "no"', 'logging_first_step: true',
      'run_name: trl-style', 'torch_dtype: auto', 'dataloader_num_workers: 2', 'optim: adamw_torch', 'warmup_steps: 0.5', 'lr_scheduler_type: cosine',
      'remove_unused_columns: false', 'max_prompt_length: 64', 'max_completion_length: 64', 'seed: 7', 'data_seed: 3', 'eval_strategy: "no"',
    ]);
    // bf16 and gradient_checkpointing need a built-in architecture: a safetensors model folder (a float32 trace can neither be cast to bf16 nor split into layers).
    const run = cli(['train', '--config', config, '--set', 'logging_steps=2', '--set', `model_name_or_path=${join(__dirname, 'fixtures', 'hf-qwen3')}`]);
    expect([run.status, run.stderr.split('\n').filter((l) => !/has no effect/.test(l))]).toEqual([0, ['']]);
    expect(run.stderr).toMatch(/^torch-dpo train: dataloader_num_workers: .* has no effect/m);
    expect(run.stdout).toMatch(/bf16 mixed precision\), activation checkpointing per layer/);
    // logging_first_step, then every 2 steps.
    const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    expect(steps).toEqual([1, 2, 4]);
  });
});
