import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkpointNames, cli, cliProject, lossRows, processesWithEnv, signalGroup, startCli } from './support/cli-project';
import { freePort } from './support/free-port';

/** A folder nobody may write to: a read-only tmpfs as root (permission bits do not stop root), else mode 0555. */
function readOnlyFolder(): { path: string; cleanup: () => void } | null {
  const path = mkdtempSync(join(tmpdir(), 'torch-dpo-ro-'));
  if (process.getuid?.() !== 0) {
    execFileSync('chmod', ['555', path]);
    return { path, cleanup: () => execFileSync('chmod', ['755', path]) };
  }
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', path]);
  return mounted.status === 0 ? { path, cleanup: () => spawnSync('umount', [path]) } : null;
}

describe('errors a user meets, each one line', () => {
  it('rejects an output_dir that is a file, empty or read-only before loading anything', () => {
    const { dir, config } = cliProject(3);
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const asFile = cli(['train', '--config', config, '--set', `output_dir=${file}`]);
    expect(asFile.status).toBe(1);
    expect(asFile.stderr.trim()).toBe(`torch-dpo: output_dir ${file} cannot be written: it is a file, not a folder`);
    const empty = cli(['train', '--config', config, '--set', 'output_dir=""']);
    expect(empty.stderr.trim()).toBe('torch-dpo: output_dir is empty: give the folder checkpoints and metrics go to');
    const readOnly = readOnlyFolder();
    if (!readOnly) throw new Error('could not make a read-only folder (mount refused as root)');
    try {
      const denied = cli(['train', '--config', config, '--set', `output_dir=${join(readOnly.path, 'out')}`, '--set', 'model_name_or_path=/does/not/matter']);
      expect(denied.status).toBe(1);
      // Checked before the (missing) model is looked at.
      expect(denied.stderr.trim()).toMatch(new RegExp(`^torch-dpo: output_dir ${join(readOnly.path, 'out')} cannot be written: (read-only file system \\(EROFS\\)|permission denied \\(EACCES\\))$`));
    } finally {
      readOnly.cleanup();
    }
  });

  it('an unknown flag is a one-line usage error with exit 2', () => {
    const run = cli(['train', '--confg', 'x.yaml']);
    expect(run.status).toBe(2);
    expect(run.stderr.trim()).toBe("torch-dpo train: unknown option '--confg' (did you mean --config?); torch-dpo train --help lists the options");
  });

  it('says loudly how many steps were skipped as non-finite', () => {
    // A learning rate this large blows the weights up within a step: every later step is non-finite.
    const { config, out } = cliProject(6, ['max_grad_norm: null', 'max_nonfinite_steps: 100']);
    const run = cli(['train', '--config', config, '--set', 'learning_rate=1e30']);
    expect(run.status).toBe(0);
    const skipped = Number(/WARNING: (\d+) of 6 steps skipped: non-finite loss or gradient/.exec(run.stderr)?.[1]);
    expect(skipped).toBeGreaterThanOrEqual(4);
    expect(run.stdout).toMatch(/\| nonfinite 0/);
    const rows = lossRows(out);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => typeof r.nonfinite_steps === 'number')).toBe(true);
  });
});

describe('torch-dpo launch: signals, and workers share the launcher\'s fate', () => {
  it('a group SIGINT reaches each worker once; they save and the run resumes', async () => {
    const { config, out } = cliProject(500, ['lr_scheduler_type: constant']);
    const port = await freePort();
    const launch = startCli(['launch', '--nproc-per-node', '2', '--master-port', String(port), '--', 'train', '--config', config]);
    await launch.waitFor(/\[rank 0\] step 2 \|/);
    signalGroup(launch.child, 'SIGINT');
    expect(await launch.exit).toEqual({ code: 130, signal: null });
    expect(launch.stderr()).not.toMatch(/already stopping/); // one signal each, not the group's plus a forwarded one
    const stopped = checkpointNames(out).checkpoints;
    expect(stopped).toHaveLength(1);
    const step = Number(stopped[0].slice('checkpoint-'.length));
    const resumed = cli(['launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--', 'train', '--config', config,
      '--set', 'resume_from_checkpoint=true', '--set', `max_steps=${step + 1}`]);
    expect(resumed.status).toBe(0);
    expect(lossRows(out).map((r) => r.step)).toEqual(Array.from({ length: step + 1 }, (_, i) => i + 1));
  });

  it('kill -9 of the launcher leaves no worker alive', async () => {
    const { config } = cliProject(5000);
    const launch = startCli(['launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--', 'train', '--config', config]);
    await launch.waitFor(/\[rank 0\] step 1 \|/);
    const marker = `TORCH_DPO_LAUNCHER_PID=${launch.child.pid}`;
    expect(processesWithEnv(marker)).toHaveLength(2);
    launch.child.kill('SIGKILL');
    await launch.exit;
    const deadline = Date.now() + 5000;
    while (processesWithEnv(marker).length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(processesWithEnv(marker)).toEqual([]);
  });
});
