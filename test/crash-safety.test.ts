import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { checkpointNames, cli, cliProject, lossRows, processesWithArgument, startCli } from './support/cli-project';

// Every save and prune is cut at each of its steps by a deterministic fault point
// (TORCH_DPO_FAULT_POINT, see lib/fault-point.ts): the process is SIGKILLed exactly there.

const SAVE_POINTS = ['checkpoint:begin', 'write:model.safetensors', 'checkpoint:weights', 'checkpoint:optimizer', 'checkpoint:state', 'checkpoint:manifest', 'checkpoint:installed'];

describe('crash safety of checkpoints', () => {
  it.each(SAVE_POINTS.map((p) => [p]))('a kill at %s leaves a resumable newest complete checkpoint and no stale folders after the next start', (point) => {
    const { config, out } = cliProject(6, ['save_steps: 2', 'save_total_limit: 1']);
    // The second save (step 4) dies; the first (step 2) was complete.
    const killed = cli(['train', '--config', config], { TORCH_DPO_FAULT_POINT: `${point}@2` });
    expect(killed.signal).toBe('SIGKILL');
    // Once the manifest is written the new checkpoint is complete: the next start moves it into place.
    const expected = ['checkpoint:manifest', 'checkpoint:installed'].includes(point) ? 'checkpoint-4' : 'checkpoint-2';
    const resumed = cli(['train', '--config', config, '--set', 'resume_from_checkpoint=true']);
    expect(resumed.stderr).toContain(`resuming from ${join(out, expected)}`);
    expect(resumed.status).toBe(0);
    expect(checkpointNames(out)).toEqual({ checkpoints: ['checkpoint-6'], temporaries: [] });
    expect(lossRows(out).map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('a kill while pruning or while replacing a checkpoint of the same step never loses the step', () => {
    const { config, out } = cliProject(4, ['save_steps: 2', 'save_total_limit: 1']);
    // Pruning checkpoint-2 after checkpoint-4 is in place: renamed to a trash name, then killed.
    expect(cli(['train', '--config', config], { TORCH_DPO_FAULT_POINT: 'prune:trashed' }).signal).toBe('SIGKILL');
    expect(checkpointNames(out).checkpoints).toEqual(['checkpoint-4']);
    expect(checkpointNames(out).temporaries).toEqual([expect.stringMatching(/^\.checkpoint-2\.trash-\d+$/)]);
    // A fresh run over the same output_dir rewrites checkpoint-4: the old copy is set aside, then killed.
    expect(cli(['train', '--config', config, '--set', 'save_total_limit=5'], { TORCH_DPO_FAULT_POINT: 'checkpoint:aside@2' }).signal).toBe('SIGKILL');
    expect(existsSync(join(out, 'checkpoint-4'))).toBe(false); // only under temporary names now
    const resumed = cli(['train', '--config', config, '--set', 'resume_from_checkpoint=true', '--set', 'max_steps=5']);
    expect(resumed.status).toBe(0);
    expect(resumed.stderr).toMatch(/recovered .*checkpoint-4 from \.checkpoint-4\.partial-\d+/);
    expect(resumed.stderr).toContain(`resuming from ${join(out, 'checkpoint-4')}`);
    expect(checkpointNames(out)).toEqual({ checkpoints: ['checkpoint-5'], temporaries: [] });
  });

  it('resume skips an incomplete newest checkpoint and says why', () => {
    const { config, out } = cliProject(4, ['save_steps: 2']);
    expect(cli(['train', '--config', config]).status).toBe(0);
    // A checkpoint whose weights file lost its tail (as a half-deleted or half-copied folder would).
    const weights = join(out, 'checkpoint-4', 'model.safetensors');
    writeFileSync(weights, readFileSync(weights).subarray(0, 1000));
    const resumed = cli(['train', '--config', config, '--set', 'resume_from_checkpoint=true', '--set', 'max_steps=5']);
    expect(resumed.status).toBe(0);
    expect(resumed.stderr).toMatch(/resume: skipping .*checkpoint-4: model\.safetensors has 1000 bytes, the manifest says \d+/);
    expect(resumed.stderr).toContain(`resuming from ${join(out, 'checkpoint-2')}`);
    expect(lossRows(out).map((r) => r.step)).toEqual([1, 2, 3, 4, 5]);
  });

  it('a full disk while saving names the file and step and keeps the previous checkpoint', () => {
    const { config, out } = cliProject(4, ['save_steps: 2']);
    const full = cli(['train', '--config', config], { TORCH_DPO_FAULT_POINT: 'write:optimizer.safetensors@2:ENOSPC' });
    expect(full.status).toBe(1);
    expect(full.stderr.trim().split('\n').at(-1)).toMatch(/^torch-dpo: cannot write .*\.checkpoint-4\.partial-\d+\/optimizer\.safetensors at step 4: .*\(ENOSPC\)$/);
    expect(checkpointNames(out)).toEqual({ checkpoints: ['checkpoint-2'], temporaries: [] });
    expect(cli(['train', '--config', config, '--set', 'resume_from_checkpoint=true']).status).toBe(0);
  });

  it('a full disk while logging metrics names the file and step', () => {
    const { config, out } = cliProject(3);
    const full = cli(['train', '--config', config], { TORCH_DPO_FAULT_POINT: 'metrics:append@2:ENOSPC' });
    expect(full.status).toBe(1);
    expect(full.stderr.trim()).toBe(`torch-dpo: cannot append to ${join(out, 'metrics.jsonl')} at step 2: fault injected at metrics:append (TORCH_DPO_FAULT_POINT) (ENOSPC)`);
  });
});

describe('metrics.jsonl across unclean stops', () => {
  it('resume drops a torn last line and rows after the checkpoint; report warns and works', () => {
    const { config, out } = cliProject(4, ['save_steps: 2']);
    expect(cli(['train', '--config', config]).status).toBe(0);
    // As if the run had been killed after step 4 was logged but before its checkpoint, mid-write.
    expect(spawnSync('rm', ['-r', join(out, 'checkpoint-4')]).status).toBe(0);
    appendFileSync(join(out, 'metrics.jsonl'), '{"step": 5, "loss": 0.4');
    const report = cli(['report', out]);
    expect(report.status).toBe(0);
    expect(report.stderr).toMatch(/warning: .*metrics\.jsonl:5: the last line is incomplete/);
    const resumed = cli(['train', '--config', config, '--set', 'resume_from_checkpoint=true', '--set', 'max_steps=5']);
    expect(resumed.status).toBe(0);
    expect(resumed.stderr).toMatch(/the last line is incomplete/);
    expect(resumed.stderr).toMatch(/dropped 2 row\(s\) after step 2/);
    expect(lossRows(out).map((r) => r.step)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('one run per output_dir', () => {
  it('refuses a second run while the first is alive, and takes over the lock of a dead one', async () => {
    const { config, out } = cliProject(500);
    const first = startCli(['train', '--config', config]);
    await first.waitFor(/step 1 \|/);
    const second = cli(['train', '--config', config]);
    expect(second.status).toBe(1);
    expect(second.stderr.trim()).toMatch(new RegExp(`^torch-dpo: output_dir ${out} is in use by another torch-dpo run \\(pid ${first.child.pid}, since [^)]+\\): stop that run or choose another output_dir$`));
    first.child.kill('SIGKILL');
    await first.exit;
    // The CLI is the trainer itself (no re-executed child): nothing of the run survives a kill -9.
    expect(processesWithArgument(config)).toEqual([]);
    // The killed run's lock stays behind; the next run finds its pid gone and takes over.
    expect(JSON.parse(readFileSync(join(out, 'torch-dpo.lock'), 'utf8'))).toMatchObject({ pid: first.child.pid, host: hostname() });
    const third = cli(['train', '--config', config, '--set', 'max_steps=1']);
    expect(third.status).toBe(0);
    expect(third.stderr).toMatch(new RegExp(`taking over .*torch-dpo.lock: its run \\(pid ${first.child.pid}, since .*\\) is no longer running`));
    expect(existsSync(join(out, 'torch-dpo.lock'))).toBe(false);
  });
});
