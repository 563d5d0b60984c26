import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../errors';
import { entryToTensor, readSafetensors, writeSafetensors } from '../models/safetensors';
import { cudaDeviceCount, rngStates, setRngStates } from '../runtime';
import type { Tensor } from '../tensor';

/** What a checkpoint stores beside the weights and optimizer moments. */
export interface TrainerState {
  version: 1;
  step: number;
  optimizerSteps: number;
  tokensSeen: number;
  /** Data-parallel ranks the run had; resume needs the same. */
  worldSize?: number;
  history: Record<string, number>[];
  rng: string[];
  config: Record<string, unknown>;
}

const CHECKPOINT = /^checkpoint-(\d+)$/;

export function listCheckpoints(outputDir: string): { step: number; path: string }[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((name) => ({ match: CHECKPOINT.exec(name), name }))
    .filter((e) => e.match && existsSync(join(outputDir, e.name, 'trainer_state.json')))
    .map((e) => ({ step: Number(e.match![1]), path: join(outputDir, e.name) }))
    .sort((a, b) => a.step - b.step);
}

/**
 * Writes output_dir/checkpoint-<step> atomically: everything goes into a temporary folder that is
 * renamed when complete, so an interrupted save never replaces or corrupts a good checkpoint.
 */
export async function writeCheckpoint(
  outputDir: string,
  step: number,
  parts: { exportWeights: (dir: string) => Promise<void>; optimizer: Map<string, Tensor>; state: Omit<TrainerState, 'version' | 'rng'> },
  keep?: number,
): Promise<string> {
  const final = join(outputDir, `checkpoint-${step}`);
  const partial = join(outputDir, `.checkpoint-${step}.partial-${process.pid}`);
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  await parts.exportWeights(partial);
  await writeSafetensors(join(partial, 'optimizer.safetensors'), parts.optimizer);
  const state: TrainerState = { version: 1, ...parts.state, rng: rngStates().map((s) => Buffer.from(s).toString('base64')) };
  writeFileSync(join(partial, 'trainer_state.json'), `${JSON.stringify(state, null, 1)}\n`);
  rmSync(final, { recursive: true, force: true });
  renameSync(partial, final);
  if (keep !== undefined) {
    const all = listCheckpoints(outputDir);
    for (const old of all.slice(0, Math.max(0, all.length - keep))) rmSync(old.path, { recursive: true, force: true });
  }
  return final;
}

/** Reads a checkpoint folder; restores the generator states. Weights are loaded by the caller. */
export function readCheckpoint(path: string): { state: TrainerState; optimizer: Map<string, Tensor> } {
  const stateFile = join(path, 'trainer_state.json');
  if (!existsSync(stateFile)) throw new DataError(`${path}: not a checkpoint (no trainer_state.json)`);
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as TrainerState;
  if (state.version !== 1) throw new DataError(`${stateFile}: unknown checkpoint version ${String(state.version)}`);
  const optimizer = new Map<string, Tensor>();
  for (const [name, entry] of readSafetensors(join(path, 'optimizer.safetensors')).tensors) optimizer.set(name, entryToTensor(entry));
  // CPU first, then one per CUDA device; a GPU checkpoint resumed elsewhere restores what exists.
  setRngStates(state.rng.slice(0, 1 + cudaDeviceCount()).map((s) => new Uint8Array(Buffer.from(s, 'base64'))));
  return { state, optimizer };
}
