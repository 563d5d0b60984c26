import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CLI = join(__dirname, '..', 'dist', 'cli', 'main.js'); // scripts/setup.sh builds dist/

describe('torch-dpo demo', () => {
  it('learns to prefer positive reviews on held-out items and ends with a JSON summary', () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-demo-'));
    const run = spawnSync(process.execPath, [CLI, 'demo', '--dir', dir, '--sft-steps', '150', '--dpo-steps', '30', '--json'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    const lines = run.stdout.trim().split('\n');
    const summary = JSON.parse(lines[lines.length - 1]);
    expect(summary.initial_eval_rewards_accuracies).toBe(0);
    expect(summary.final_eval_rewards_accuracies).toBeGreaterThanOrEqual(0.9);
    expect(summary.final_preference_accuracy).toBeGreaterThan(summary.initial_preference_accuracy);
    expect(summary.wall_seconds).toBeGreaterThan(0);
    expect(run.stdout).toMatch(/before: .*\n\s+after: /);
  });
});
