import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkpointNames, cli, cliProject, lossRows, signalGroup, startCli } from './support/cli-project';

// Signals go to the whole process group, as a terminal's Ctrl-C or systemd's stop do. The runs are long
// (500 steps) so that a signal sent after step 2 always arrives mid-run; what a stop saves and what a
// resume continues from is checked against an uninterrupted run, never against timing.

/** The losses of an uninterrupted run of `steps` steps in a fresh project (the reference trajectory). */
function referenceLosses(steps: number): number[] {
  const { config, out } = cliProject(steps, CONSTANT_LR);
  expect(cli(['train', '--config', config]).status).toBe(0);
  return lossRows(out).map((r) => r.loss);
}

// The learning rate must not depend on max_steps for a 500-step run to continue like a short one.
const CONSTANT_LR = ['lr_scheduler_type: constant'];

describe('stopping and resuming training', () => {
  it('a group SIGINT stops after the step, saves once, exits 130, and resume continues exactly', async () => {
    const { config, out } = cliProject(500, CONSTANT_LR);
    const run = startCli(['train', '--config', config]);
    await run.waitFor(/step 2 \|/);
    signalGroup(run.child, 'SIGINT');
    expect(await run.exit).toEqual({ code: 130, signal: null });
    expect(run.stderr().match(/SIGINT: stopping after the current step \(saving checkpoint-\d+\)/g)).toHaveLength(1);
    const { checkpoints, temporaries } = checkpointNames(out);
    expect(checkpoints).toHaveLength(1);
    expect(temporaries).toEqual([]);
    const stoppedAt = Number(checkpoints[0].slice('checkpoint-'.length));
    expect(lossRows(out).map((r) => r.step)).toEqual(Array.from({ length: stoppedAt }, (_, i) => i + 1));

    const resumed = cli(['train', '--config', config, '--set', 'resume_from_checkpoint=true', '--set', `max_steps=${stoppedAt + 2}`]);
    expect(resumed.status).toBe(0);
    expect(resumed.stderr).toMatch(new RegExp(`resuming from .*checkpoint-${stoppedAt}`));
    expect(lossRows(out).map((r) => r.loss)).toEqual(referenceLosses(stoppedAt + 2));
  });

  it('a group SIGTERM saves and exits 143; a second signal while saving only says so', async () => {
    const { config, out } = cliProject(500, ['save_steps: 1000']);
    // The stop's save pauses between writing the weights and the optimizer: signals arrive exactly there.
    const run = startCli(['train', '--config', config], { TORCH_DPO_FAULT_POINT: 'checkpoint:weights:pause' });
    await run.waitFor(/step 2 \|/);
    signalGroup(run.child, 'SIGTERM');
    await run.waitFor(/fault point checkpoint:weights reached/);
    signalGroup(run.child, 'SIGTERM');
    signalGroup(run.child, 'SIGINT');
    expect(await run.exit).toEqual({ code: 143, signal: null });
    const step = /saving (checkpoint-\d+)\)/.exec(run.stderr())![1];
    expect(run.stderr()).toContain(`already stopping, saving ${step}`);
    expect(checkpointNames(out).checkpoints).toEqual([step]);
    expect(cli(['train', '--config', config, '--set', 'resume_from_checkpoint=true', '--set', 'max_steps=1']).stderr).toContain(`resuming from ${join(out, step)}`);
  });

  it('a third SIGINT exits at once without saving; the next start cleans up and resumes the last complete checkpoint', async () => {
    const { config, out } = cliProject(500, ['save_steps: 2']);
    const run = startCli(['train', '--config', config], { TORCH_DPO_FAULT_POINT: 'checkpoint:weights@2:pause' });
    // The second save is the periodic one at step 4; interrupt three times while it is paused.
    await run.waitFor(/fault point checkpoint:weights reached/);
    for (let i = 0; i < 3; i += 1) {
      signalGroup(run.child, 'SIGINT');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(await run.exit).toEqual({ code: 130, signal: null });
    expect(run.stderr()).toMatch(/third interrupt: exiting now without saving/);
    const left = checkpointNames(out);
    expect(left.checkpoints).toEqual(['checkpoint-2']);
    expect(left.temporaries).toHaveLength(1); // the save that was cut short

    const resumed = cli(['train', '--config', config, '--set', 'resume_from_checkpoint=true', '--set', 'max_steps=5']);
    expect(resumed.status).toBe(0);
    expect(resumed.stderr).toMatch(/removed .*\.checkpoint-4\.partial-\d+, left by a run that was killed/);
    expect(checkpointNames(out)).toEqual({ checkpoints: ['checkpoint-2', 'checkpoint-4', 'checkpoint-5'], temporaries: [] });
    expect(lossRows(out).map((r) => r.step)).toEqual([1, 2, 3, 4, 5]);
  });

  it('a signal before training starts stops without writing a checkpoint', async () => {
    const { config, out } = cliProject(500);
    const run = startCli(['train', '--config', config], { TORCH_DPO_FAULT_POINT: 'setup:model-loaded:pause' });
    await run.waitFor(/fault point setup:model-loaded reached/);
    signalGroup(run.child, 'SIGINT');
    expect(await run.exit).toEqual({ code: 130, signal: null });
    expect(run.stderr()).toMatch(/stopped before training started: no checkpoint written/);
    expect(checkpointNames(out).checkpoints).toEqual([]);
  });

  it('a stop right after a scheduled save keeps that checkpoint as it is', async () => {
    const { config, out } = cliProject(500, ['save_steps: 3']);
    const run = startCli(['train', '--config', config], { TORCH_DPO_FAULT_POINT: 'checkpoint:installed:pause' });
    await run.waitFor(/fault point checkpoint:installed reached/);
    signalGroup(run.child, 'SIGINT');
    expect(await run.exit).toEqual({ code: 130, signal: null });
    expect(run.stderr()).toMatch(/SIGINT: stopping after the current step/);
    // Saved once (by the schedule), not deleted and written again by the stop.
    expect(run.stdout().match(/checkpoint: .*checkpoint-3/g)).toHaveLength(1);
    expect(run.stdout()).toMatch(/stopped after 3 steps; newest checkpoint .*checkpoint-3/);
    expect(checkpointNames(out).checkpoints).toEqual(['checkpoint-3']);
    const state = readFileSync(join(out, 'checkpoint-3', 'trainer_state.json'), 'utf8');
    expect(JSON.parse(state).global_step).toBe(3);
    expect(existsSync(join(out, 'checkpoint-3', 'manifest.json'))).toBe(true);
  });
});
