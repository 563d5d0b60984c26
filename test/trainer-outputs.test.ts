import { readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DPOTrainer } from '../lib/train/trainer';
import { cliProject } from './support/cli-project';

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

describe('what a run leaves in output_dir', () => {
  it("trainer_state.json follows HF's TrainerState schema; torch-dpo's own state is beside it", async () => {
    const { dir, out } = cliProject(4);
    const trainer = await DPOTrainer.create({
      model_name_or_path: join(__dirname, 'fixtures', 'tiny-gpt2'), train_dataset: join(dir, 'train.jsonl'), eval_dataset: join(dir, 'train.jsonl'),
      output_dir: out, cache_dir: false, max_steps: 4, per_device_train_batch_size: 2, logging_steps: 2, eval_strategy: 'steps', eval_steps: 2, save_steps: 4,
      run_name: 'outputs',
    });
    await trainer.train();
    trainer.dispose();
    const hf = json(join(out, 'checkpoint-4', 'trainer_state.json'));
    // transformers.TrainerState's fields (dataclasses.asdict, sorted keys).
    expect(Object.keys(hf)).toEqual(['best_global_step', 'best_metric', 'best_model_checkpoint', 'epoch', 'eval_steps', 'global_step', 'is_hyper_param_search',
      'is_local_process_zero', 'is_world_process_zero', 'log_history', 'logging_steps', 'max_steps', 'num_input_tokens_seen', 'num_train_epochs', 'save_steps',
      'stateful_callbacks', 'total_flos', 'train_batch_size', 'trial_name', 'trial_params']);
    expect(hf).toMatchObject({ global_step: 4, max_steps: 4, logging_steps: 2, eval_steps: 2, save_steps: 4, train_batch_size: 2, epoch: 0.25 });
    expect(hf.log_history.map((r: Record<string, number>) => [r.step, 'loss' in r ? 'train' : 'eval'])).toEqual([[2, 'train'], [2, 'eval'], [4, 'train'], [4, 'eval']]);
    expect(hf.log_history[0]).toMatchObject({ epoch: 0.125, step: 2 });
    expect(Object.keys(hf.log_history[1])).toEqual(expect.arrayContaining(['eval_loss', 'eval_rewards/accuracies', 'epoch', 'step']));
    const own = json(join(out, 'checkpoint-4', 'torch_dpo_state.json'));
    expect(own).toMatchObject({ version: 2, step: 4, optimizerSteps: 4, worldSize: 1, optimizerSharding: false });
    const info = json(join(out, 'run.json'));
    expect(info.run_name).toBe('outputs');
    expect(info.segments).toEqual([expect.objectContaining({ from_step: 0, to_step: 4, outcome: 'done' })]);
  });

  it('each run writes its TensorBoard events into its own runs/<time>_<host> folder', async () => {
    const { dir, out } = cliProject(2);
    const config = { model_name_or_path: join(__dirname, 'fixtures', 'tiny-gpt2'), train_dataset: join(dir, 'train.jsonl'), output_dir: out, cache_dir: false as const, per_device_train_batch_size: 2, logging_steps: 1, save_final_model: false };
    for (const max_steps of [2, 3]) {
      const trainer = await DPOTrainer.create({ ...config, max_steps, resume_from_checkpoint: max_steps === 3 });
      await trainer.train();
      trainer.dispose();
      await new Promise((resolve) => setTimeout(resolve, 1100)); // folder names have one-second resolution
    }
    const runs = readdirSync(join(out, 'runs')).sort();
    expect(runs).toHaveLength(2);
    for (const run of runs) {
      expect(run).toMatch(new RegExp(`^[A-Z][a-z]{2}\\d{2}_\\d{2}-\\d{2}-\\d{2}_${hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
      expect(readdirSync(join(out, 'runs', run))).toEqual([expect.stringMatching(/^events\.out\.tfevents\./)]);
    }
    // The resumed run's record continues the first one's.
    expect(json(join(out, 'run.json')).segments.map((s: { from_step: number; to_step: number }) => [s.from_step, s.to_step])).toEqual([[0, 2], [2, 3]]);
  });
});
