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
  /** ZeRO-1: each rank's optimizer moments are in optimizer.rank-<r>.safetensors instead of optimizer.safetensors. */
  optimizerSharding?: boolean;
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

/** The optimizer file of a checkpoint: one for the run, or one per rank with optimizer sharding. */
export const optimizerFile = (rank: number | null) => (rank === null ? 'optimizer.safetensors' : `optimizer.rank-${rank}.safetensors`);

/** The temporary folder a checkpoint is assembled in (every rank must name the same one). */
export const partialCheckpointDir = (outputDir: string, step: number, tag: number) => join(outputDir, `.checkpoint-${step}.partial-${tag}`);

/** Starts a checkpoint in its temporary folder (emptied), renamed by finishCheckpoint when complete. */
export function beginCheckpoint(partial: string): void {
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
}

/**
 * Completes output_dir/checkpoint-<step> from its temporary folder: weights, optimizer moments (unless
 * each rank wrote its own), state; then the rename, so an interrupted save never replaces or corrupts
 * a good checkpoint. Keeps the newest `keep` checkpoints.
 */
export async function finishCheckpoint(
  partial: string,
  outputDir: string,
  step: number,
  parts: { exportWeights: (dir: string) => Promise<void>; optimizer: Map<string, Tensor> | null; state: Omit<TrainerState, 'version' | 'rng'> },
  keep?: number,
): Promise<string> {
  const final = join(outputDir, `checkpoint-${step}`);
  await parts.exportWeights(partial);
  if (parts.optimizer) await writeSafetensors(join(partial, optimizerFile(null)), parts.optimizer);
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

/**
 * Reads a checkpoint folder (the optimizer file of `rank` when it was written sharded); restores the
 * generator states. Weights are loaded by the caller.
 */
export function readCheckpoint(path: string, rank: number | null = null): { state: TrainerState; optimizer: Map<string, Tensor> } {
  const stateFile = join(path, 'trainer_state.json');
  if (!existsSync(stateFile)) throw new DataError(`${path}: not a checkpoint (no trainer_state.json)`);
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as TrainerState;
  if (state.version !== 1) throw new DataError(`${stateFile}: unknown checkpoint version ${String(state.version)}`);
  const optimizer = new Map<string, Tensor>();
  const file = join(path, optimizerFile(state.optimizerSharding ? rank ?? 0 : null));
  if (!existsSync(file)) throw new DataError(`${path}: no ${optimizerFile(state.optimizerSharding ? rank ?? 0 : null)} (an incomplete checkpoint?)`);
  for (const [name, entry] of readSafetensors(file).tensors) optimizer.set(name, entryToTensor(entry));
  // CPU first, then one per CUDA device; a GPU checkpoint resumed elsewhere restores what exists.
  setRngStates(state.rng.slice(0, 1 + cudaDeviceCount()).map((s) => new Uint8Array(Buffer.from(s, 'base64'))));
  return { state, optimizer };
}
