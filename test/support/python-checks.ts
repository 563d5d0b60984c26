import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The Python half of the fidelity tests: HF/PEFT-equivalent code in scripts/ run by Debian's
 * python3-torch (.ci/run installs it; users never need it). Without it those tests are skipped, and
 * counted so.
 */
export const pythonTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

/** Runs scripts/<name> from the repository root (the tests also run compiled, from .gpu-bundle/js/test). */
export function runPythonCheck(name: string, args: string[]): SpawnSyncReturns<string> {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const script = join(dir, 'scripts', name);
    if (existsSync(script)) return spawnSync('/usr/bin/python3', [script, ...args], { encoding: 'utf8' });
  }
  throw new Error(`no scripts/${name} above ${__dirname}`);
}
