import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors } from '../lib/models/safetensors';
import { freePort } from './support/free-port';

const CLI = join(__dirname, '..', 'dist', 'cli', 'main.js'); // scripts/setup.sh builds dist/
const MODEL = join(__dirname, 'fixtures', 'tiny-gpt2');

function project(): { dir: string; config: string } {
  const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-ddp-'));
  const rows = Array.from({ length: 96 }, (_, i) => ({ prompt: `w${10 + (i % 20)} w${11 + (i % 7)}`, chosen: ` w3 w${4 + (i % 3)}`, rejected: ` w5 w${7 + (i % 4)}` }));
  writeFileSync(join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, [`model_name_or_path: ${MODEL}`, `train_dataset: ${join(dir, 'train.jsonl')}`, 'max_steps: 10', 'logging_steps: 1',
    'learning_rate: 0.002', 'dtype: float64', 'cache_dir: false', 'save_steps: 5', 'report_to: []'].join('\n'));
  return { dir, config };
}

/** Exit status 0; on failure the assertion shows what the run printed. */
const succeeded = (run: { status: number | null; stderr: string }) => expect({ status: run.status, stderr: run.status === 0 ? '' : run.stderr }).toEqual({ status: 0, stderr: '' });
const records = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r);
const losses = (file: string) => records(file).map((r) => r.loss as number);
const close = (a: number[], b: number[]) => {
  expect(b).toHaveLength(a.length);
  a.forEach((x, i) => expect(Math.abs(b[i] - x) / Math.max(1e-12, Math.abs(x))).toBeLessThanOrEqual(1e-5));
};
const numel = (file: string) => [...readSafetensors(file).tensors.values()].reduce((s, e) => s + e.shape.reduce((p, d) => p * d, 1), 0);

describe('data-parallel DPO (launch, 2 ranks, Gloo)', () => {
  it('2 ranks × 4 pairs (and 2 ranks × 2 micro-batches × 2 pairs) follow 1 process × 8 pairs over 10 steps', async () => {
    const { dir, config } = project();
    // Evaluation (every 5 steps, 5 pairs per batch over 96 pairs) is split over the ranks and summed.
    const evaluation = ['--set', `eval_dataset=${join(dir, 'train.jsonl')}`, '--set', 'eval_steps=5', '--set', 'per_device_eval_batch_size=5'];
    const single = spawnSync(process.execPath, [CLI, 'train', '--config', config, '--set', `output_dir=${join(dir, 'one')}`, '--set', 'per_device_train_batch_size=8', ...evaluation], { encoding: 'utf8' });
    succeeded(single);
    const port = await freePort();
    const launched = spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(port), '--',
      'train', '--config', config, '--set', `output_dir=${join(dir, 'two')}`, '--set', 'per_device_train_batch_size=4', ...evaluation], { encoding: 'utf8' });
    succeeded(launched);
    expect(launched.stdout).toMatch(/\[rank 0\] done after 10 steps/);
    expect(launched.stdout).not.toMatch(/\[rank 1\] step/); // only rank 0 logs
    close(losses(join(dir, 'one', 'metrics.jsonl')), losses(join(dir, 'two', 'metrics.jsonl')));
    const evals = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'eval_loss' in r);
    const [oneEval, twoEval] = [evals(join(dir, 'one', 'metrics.jsonl')), evals(join(dir, 'two', 'metrics.jsonl'))];
    expect(twoEval.map((r) => r.step)).toEqual([5, 10]);
    close(oneEval.map((r) => r.eval_loss), twoEval.map((r) => r.eval_loss));
    close(oneEval.map((r) => r['eval_rewards/accuracies']), twoEval.map((r) => r['eval_rewards/accuracies']));
    // Gradient accumulation: only the last micro-batch's backward reduces over ranks (2 × 2 × 2 pairs).
    const accumulated = spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--',
      'train', '--config', config, '--set', `output_dir=${join(dir, 'accumulated')}`, '--set', 'per_device_train_batch_size=2', '--set', 'gradient_accumulation_steps=2'], { encoding: 'utf8' });
    succeeded(accumulated);
    close(losses(join(dir, 'one', 'metrics.jsonl')), losses(join(dir, 'accumulated', 'metrics.jsonl')));
  });

  it('checkpoints at step 5 with 2 ranks and resumes with 2 ranks on the same trajectory', async () => {
    const { dir, config } = project();
    const launch = async (...extra: string[]) => spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--',
      'train', '--config', config, '--set', 'per_device_train_batch_size=4', ...extra], { encoding: 'utf8' });
    succeeded(await launch('--set', `output_dir=${join(dir, 'split')}`, '--set', 'max_steps=5', '--set', 'lr_scheduler_type=constant'));
    // The first half ran with a constant schedule to step 5; resuming with the straight run's config must
    // use the checkpoint's weights, moments and position — compare against a straight constant run.
    succeeded(await launch('--set', `output_dir=${join(dir, 'constant')}`, '--set', 'lr_scheduler_type=constant'));
    const resumed = await launch('--set', `output_dir=${join(dir, 'split')}`, '--set', 'lr_scheduler_type=constant', '--set', 'resume_from_checkpoint=true');
    succeeded(resumed);
    expect(losses(join(dir, 'split', 'metrics.jsonl'))).toEqual(losses(join(dir, 'constant', 'metrics.jsonl')));
    const single = spawnSync(process.execPath, [CLI, 'train', '--config', config, '--set', `output_dir=${join(dir, 'split')}`, '--set', 'resume_from_checkpoint=true'], { encoding: 'utf8' });
    expect(single.stderr).toMatch(/written by 2 rank\(s\)[;:] resume it with the same world size \(now 1\)/);
  });

  it('optimizer_sharding (ZeRO-1): same trajectory as 1 × 8, half the optimizer state per rank, resumes exactly', async () => {
    const { dir, config } = project();
    // Weight decay and a tight clip exercise the per-slice decay flags and the norm assembled over ranks.
    const common = ['--set', 'lr_scheduler_type=constant', '--set', 'weight_decay=0.1', '--set', 'max_grad_norm=0.5'];
    const launch = async (...extra: string[]) => spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--',
      'train', '--config', config, '--set', 'per_device_train_batch_size=4', '--set', 'optimizer_sharding=true', ...common, ...extra], { encoding: 'utf8' });
    const single = spawnSync(process.execPath, [CLI, 'train', '--config', config, '--set', `output_dir=${join(dir, 'one')}`, '--set', 'per_device_train_batch_size=8', ...common], { encoding: 'utf8' });
    succeeded(single);
    // The sharded runs also precompute the reference log-probs, split over the two ranks.
    const cache = join(dir, 'cache');
    const sharded = await launch('--set', `output_dir=${join(dir, 'sharded')}`, '--set', 'precompute_ref_log_probs=true', '--set', `cache_dir=${cache}`);
    succeeded(sharded);
    const one = records(join(dir, 'one', 'metrics.jsonl'));
    const two = records(join(dir, 'sharded', 'metrics.jsonl'));
    close(one.map((r) => r.loss), two.map((r) => r.loss));
    close(one.map((r) => r.grad_norm), two.map((r) => r.grad_norm));
    expect(one.some((r) => r.grad_norm > 0.5)).toBe(true); // clipping happened
    expect(readdirSync(join(cache, 'reference')).filter((f) => f.endsWith('.reflogps'))).toHaveLength(1);

    // Each rank holds its half of the moments (exp_avg + exp_avg_sq) in its own file.
    const full = numel(join(dir, 'one', 'checkpoint-10', 'optimizer.safetensors'));
    const shards = [0, 1].map((r) => numel(join(dir, 'sharded', 'checkpoint-10', `optimizer.rank-${r}.safetensors`)));
    expect(shards[0] + shards[1]).toBe(full);
    for (const n of shards) expect(n).toBeLessThanOrEqual(Math.ceil(full / 2) + 16);
    expect(existsSync(join(dir, 'sharded', 'checkpoint-10', 'optimizer.safetensors'))).toBe(false);

    // Stop at step 5, resume (the reference log-probs now come from the cache) → the same trajectory.
    succeeded(await launch('--set', `output_dir=${join(dir, 'split')}`, '--set', 'max_steps=5', '--set', 'precompute_ref_log_probs=true', '--set', `cache_dir=${cache}`));
    const resumed = await launch('--set', `output_dir=${join(dir, 'split')}`, '--set', 'resume_from_checkpoint=true', '--set', 'precompute_ref_log_probs=true', '--set', `cache_dir=${cache}`);
    succeeded(resumed);
    expect(losses(join(dir, 'split', 'metrics.jsonl'))).toEqual(two.map((r) => r.loss));
    const unsharded = await launch('--set', `output_dir=${join(dir, 'split')}`, '--set', 'resume_from_checkpoint=true', '--set', 'optimizer_sharding=false');
    expect(unsharded.status).not.toBe(0);
    expect(unsharded.stderr).toMatch(/written with optimizer_sharding on[;:] resume it with the same setting/);
  });

  it('stops every worker and exits non-zero when one fails', () => {
    const started = Date.now();
    const script = "if (process.env.RANK === '1') { setTimeout(() => process.exit(3), 300); } else { console.log('pid ' + process.pid); setInterval(() => {}, 1000); }";
    const run = spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--', process.execPath, '-e', script], { encoding: 'utf8' });
    expect(run.status).toBe(3);
    expect(run.stderr).toMatch(/rank 1 exited with 3; stopping the other workers/);
    expect(Date.now() - started).toBeLessThan(15000);
    const pid = Number(/\[rank 0\] pid (\d+)/.exec(run.stdout)![1]);
    expect(() => process.kill(pid, 0)).toThrow(); // no orphan left behind
  });

  it('joins workers of two launchers (--nnodes 2) into one group, as on two machines', async () => {
    const port = String(await freePort());
    const script = `const t = require(${JSON.stringify(join(__dirname, '..', 'dist'))});
(async () => {
  const g = await t.ProcessGroup.init(t.distributedEnv(), { timeoutMs: 30000 });
  const x = t.Tensor.from([Number(process.env.RANK) + 1]);
  await g.allReduce([x], 'sum');
  console.log(JSON.stringify({ rank: process.env.RANK, local: process.env.LOCAL_RANK, world: process.env.WORLD_SIZE, localWorld: process.env.LOCAL_WORLD_SIZE, sum: await x.item() }));
  g.dispose();
})();`;
    const node = (rank: number) => new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'launch', '--nnodes', '2', '--node-rank', String(rank), '--nproc-per-node', '2', '--master-port', port, '--', process.execPath, '-e', script]);
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('exit', (code) => resolve({ code, out }));
    });
    const [first, second] = await Promise.all([node(0), node(1)]);
    expect([first.code, second.code]).toEqual([0, 0]);
    const rows = (first.out + second.out).trim().split('\n').map((l) => JSON.parse(l.replace(/^\[rank \d+\] /, '')));
    expect(rows.map((r) => `${r.rank}/${r.local}/${r.world}/${r.localWorld}`).sort()).toEqual(['0/0/4/2', '1/1/4/2', '2/0/4/2', '3/1/4/2']);
    for (const r of rows) expect(r.sum).toBe(10);
  });

  it('rejects bad launch arguments', () => {
    const run = spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--node-rank', '1', '--', 'train'], { encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/--node-rank 1 is not below --nnodes 1/);
  });
});
