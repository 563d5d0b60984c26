import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DPOTrainer, JudgeError, type Judge } from '../lib';
import { cli, TINY_GPT2 } from './support/cli-project';

const PROMPTS = Array.from({ length: 12 }, (_, i) => `w${(i % 10) + 1} w${((i * 3) % 10) + 11}`);
// Prefers varied completions: the number of distinct words.
const distinctWords: Judge = (_prompt, completions) => completions.map((c) => new Set(c.split(' ')).size);
const base = (out: string) => ({
  model_name_or_path: TINY_GPT2, output_dir: out, learning_rate: 5e-3, per_device_train_batch_size: 4, logging_steps: 1, logging_first_step: true,
  report_to: [], save_steps: 2, max_new_tokens: 6, temperature: 1, seed: 3, cache_dir: false as const,
});
const lossRows = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r);
const tmp = () => mkdtempSync(join(tmpdir(), 'torch-dpo-iterative-'));

describe('iterative DPO', () => {
  it('samples, judges best vs worst (ties dropped and counted), trains a round per folder, and scores the final policy', async () => {
    const out = tmp();
    const seen: number[] = [];
    const judge: Judge = async (prompt, completions) => {
      seen.push(completions.length);
      return distinctWords(prompt, completions);
    };
    const result = await DPOTrainer.trainIterative(base(out), { prompts: PROMPTS, judge, rounds: 2, samplesPerPrompt: 3, referenceUpdate: 'per_round' });
    expect(result.stopped).toBe('done');
    expect(result.rounds).toHaveLength(2);
    expect(result.final?.round).toBe(2);
    // Every prompt of every round (and the final scoring) went to the judge with 3 completions.
    expect(seen).toEqual(Array(3 * PROMPTS.length).fill(3));
    for (const [r, summary] of result.rounds.entries()) {
      const samples = readFileSync(join(out, `round-${r}`, 'samples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      const pairs = readFileSync(join(out, `round-${r}`, 'pairs.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
      expect(summary.pairs + summary.ties_dropped).toBe(PROMPTS.length);
      expect(pairs).toHaveLength(summary.pairs);
      const mean = samples.flatMap((s) => s.scores).reduce((a: number, b: number) => a + b, 0) / (3 * PROMPTS.length);
      expect(summary.judge_mean_score).toBeCloseTo(mean, 12);
      // Each pair is the best against the worst of its prompt's samples; a tie gives none.
      for (const s of samples) {
        const scores = s.scores as number[];
        if (Math.max(...scores) === Math.min(...scores)) expect(s.pair).toBeNull();
        else expect([scores[s.pair[0]], scores[s.pair[1]]]).toEqual([Math.max(...scores), Math.min(...scores)]);
      }
      expect(pairs[0]).toEqual(expect.objectContaining({ prompt: expect.any(String), chosen: expect.any(String), rejected: expect.any(String) }));
      expect(existsSync(join(out, `round-${r}`, 'final', 'model.safetensors'))).toBe(true);
      // per_round: the reference is the policy the round starts from, so its first step's loss is ln 2.
      expect(Math.abs(lossRows(join(out, `round-${r}`))[0].loss - Math.LN2)).toBeLessThan(1e-6);
    }
    expect(result.rounds[1].policy).toBe(join(out, 'round-0', 'final'));
    expect(result.policy).toBe(join(out, 'round-1', 'final'));
    expect(JSON.parse(readFileSync(join(out, 'iterative.json'), 'utf8')).rounds).toEqual(result.rounds);
  });

  it("fixed reference: the second round's reference is the starting model (its first loss is not ln 2); a rerun resumes without judging again", async () => {
    const out = tmp();
    let calls = 0;
    const judge: Judge = (prompt, completions) => {
      calls += 1;
      return distinctWords(prompt, completions);
    };
    const first = await DPOTrainer.trainIterative(base(out), { prompts: PROMPTS, judge, rounds: 1, samplesPerPrompt: 3 });
    expect(calls).toBe(2 * PROMPTS.length);
    const second = await DPOTrainer.trainIterative(base(out), { prompts: PROMPTS, judge, rounds: 2, samplesPerPrompt: 3 });
    // Round 0 is done: only round 1 and the final policy were judged.
    expect(calls).toBe(4 * PROMPTS.length);
    expect(second.rounds[0]).toEqual(first.rounds[0]);
    expect(Math.abs(lossRows(join(out, 'round-0'))[0].loss - Math.LN2)).toBeLessThan(1e-6);
    expect(Math.abs(lossRows(join(out, 'round-1'))[0].loss - Math.LN2)).toBeGreaterThan(1e-3);
  });

  it('a judge that answers with an index picks that completion against another; a wrong answer names round, prompt and what was expected', async () => {
    const out = tmp();
    const result = await DPOTrainer.trainIterative({ ...base(out), per_device_train_batch_size: 2 }, { prompts: PROMPTS, judge: () => 1, rounds: 1, samplesPerPrompt: 2 });
    const samples = readFileSync(join(out, 'round-0', 'samples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    // Two identical samples are a tie whatever the judge says.
    expect(samples.map((s) => s.pair)).toEqual(samples.map((s) => (s.completions[0] === s.completions[1] ? null : [1, 0])));
    expect(result.rounds[0].pairs).toBeGreaterThan(2);
    expect(result.rounds[0].judge_mean_score).toBeNull();
    await expect(DPOTrainer.trainIterative(base(tmp()), { prompts: PROMPTS, judge: () => [1], rounds: 1 }))
      .rejects.toThrow(new JudgeError('round 0, prompt 0: the judge returned [1] for 2 completions: expected 2 finite scores or the index of the preferred one'));
    await expect(DPOTrainer.trainIterative(base(tmp()), { prompts: PROMPTS, judge: () => 0.5, rounds: 1 })).rejects.toThrow(/returned 0.5 for 2 completions/);
    await expect(DPOTrainer.trainIterative(base(tmp()), { prompts: PROMPTS, judge: () => [0, 0], rounds: 1 })).rejects.toThrow(/all ties\): nothing to train on/);
    await expect(DPOTrainer.trainIterative({ ...base(tmp()), use_peft: true, reference_update: 'per_round' }, { prompts: PROMPTS, judge: () => 0 })).rejects.toThrow(/per_round/);
  });

  it("a stop inside a round's training saves a checkpoint; the rerun resumes there and ends as a straight run does", async () => {
    const options = { prompts: PROMPTS, judge: distinctWords, rounds: 1, samplesPerPrompt: 3 };
    const config = (out: string) => ({ ...base(out), per_device_train_batch_size: 2, save_steps: 100 });
    const straight = tmp();
    await DPOTrainer.trainIterative(config(straight), options);
    const stopped = tmp();
    const controller = new AbortController();
    const first = await DPOTrainer.trainIterative(config(stopped), {
      ...options, signal: controller.signal, onTrainer: (t) => t.on('step', ({ step }: { step: number }) => step === 2 && controller.abort()),
    });
    expect(first.stopped).toBe('aborted');
    expect(existsSync(join(stopped, 'round-0', 'checkpoint-2'))).toBe(true);
    const resumed = await DPOTrainer.trainIterative(config(stopped), options);
    expect(resumed.stopped).toBe('done');
    expect(lossRows(join(stopped, 'round-0')).map((r) => r.loss)).toEqual(lossRows(join(straight, 'round-0')).map((r) => r.loss));
    expect(resumed.final).toEqual({ ...JSON.parse(readFileSync(join(straight, 'iterative.json'), 'utf8')).final, policy: join(stopped, 'round-0', 'final') });
  });

  it('under LoRA each round continues the previous adapter and the reference stays the model with adapters off', async () => {
    const out = tmp();
    const result = await DPOTrainer.trainIterative({ ...base(out), use_peft: true, lora_r: 4, learning_rate: 2e-2 }, { prompts: PROMPTS, judge: distinctWords, rounds: 2, samplesPerPrompt: 3 });
    expect(result.rounds[1].policy).toBe(`${TINY_GPT2} + adapter ${join(out, 'round-0', 'final')}`);
    expect(existsSync(join(out, 'round-1', 'final', 'adapter_model.safetensors'))).toBe(true);
    // Round 0 starts with adapters equal to the base (lora_B = 0): ln 2; round 1 starts from trained adapters against the base: not.
    expect(Math.abs(lossRows(join(out, 'round-0'))[0].loss - Math.LN2)).toBeLessThan(1e-6);
    expect(Math.abs(lossRows(join(out, 'round-1'))[0].loss - Math.LN2)).toBeGreaterThan(1e-4);
  });

  it('CLI: torch-dpo train with judge: ./judge.js in the config runs the rounds', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'judge.js'), "module.exports = (prompt, completions) => completions.map((c) => new Set(c.split(' ')).size);\n");
    writeFileSync(join(dir, 'prompts.jsonl'), PROMPTS.map((p) => JSON.stringify({ prompt: p })).join('\n'));
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ ...base(join(dir, 'out')), judge: join(dir, 'judge.js'), train_dataset: join(dir, 'prompts.jsonl'), iterative_rounds: 1, samples_per_prompt: 2 }));
    const run = cli(['train', '-c', config]);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^round 0: judge mean score \d\.\d{4}, \d+ pairs, \d+ ties dropped of 12 prompts × 2 samples/m);
    expect(run.stdout).toMatch(/^round 0 step 1 \| loss 0\.6931/m);
    expect(run.stdout).toMatch(/^final policy: judge mean score/m);
    expect(run.stdout).toMatch(/^done: policy .*round-0[/]final/m);
    const missing = cli(['train', '-c', config, '--set', `judge=${join(dir, 'nope.js')}`]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/judge: .*nope\.js: no such file/);
  });
});
