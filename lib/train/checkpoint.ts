import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file';
import { ConfigError, DataError } from '../errors';
import { faultPoint } from '../fault-point';
import { fileAction, fileActionAsync } from '../file-errors';
import { entryToTensor, readSafetensors, writeSafetensors } from '../models/safetensors';
import { cudaDeviceCount, rngStates, setRngStates } from '../runtime';
import type { Tensor } from '../tensor';
import { isProcessAlive } from './process-liveness';

/**
 * torch-dpo's own state in a checkpoint (torch_dpo_state.json), beside the weights, the optimizer
 * moments and HF's trainer_state.json (written for tools that read it; see hf-trainer-state.ts).
 */
export interface TorchDpoState {
  version: 2;
  step: number;
  optimizerSteps: number;
  tokensSeen: number;
  /** Steps skipped so far because of a non-finite loss or gradient. */
  nonfiniteSteps: number;
  /** Data-parallel ranks the run had; resume needs the same. */
  worldSize: number;
  /** ZeRO-1: each rank's optimizer moments are in optimizer.rank-<r>.safetensors instead of optimizer.safetensors. */
  optimizerSharding: boolean;
  /** ZeRO stage (absent in checkpoints before stage 2: optimizerSharding says 0 or 1). */
  zeroStage?: number;
  /** Training logs and evaluations so far (HF's log_history). */
  logHistory: Record<string, number>[];
  rng: string[];
  config: Record<string, unknown>;
}
export const STATE_FILE = 'torch_dpo_state.json';
export const HF_STATE_FILE = 'trainer_state.json';

/**
 * Written last into a checkpoint: every other file and its size. A checkpoint without it, or whose
 * files do not match it, is incomplete (a save that was interrupted) and is never resumed from.
 */
export const MANIFEST = 'manifest.json';
interface Manifest {
  version: 1;
  step: number;
  files: Record<string, number>;
}

const CHECKPOINT = /^checkpoint-(\d+)$/;
/** Temporary folders: a checkpoint being assembled, or one set aside to be deleted. Named by the pid that made them. */
const TEMPORARY = /^\.checkpoint-(\d+)\.(partial|trash)-(\d+)$/;

export interface CheckpointEntry {
  step: number;
  path: string;
}

/** Why the checkpoint folder is not complete, or null when its manifest and files agree. */
export function incompleteReason(path: string): string | null {
  const manifestPath = join(path, MANIFEST);
  if (!existsSync(manifestPath)) return `no ${MANIFEST} (the save did not finish)`;
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
  } catch (err) {
    return `${MANIFEST} is unreadable (${(err as Error).message})`;
  }
  for (const [file, size] of Object.entries(manifest.files ?? {})) {
    const filePath = join(path, file);
    if (!existsSync(filePath)) return `${file} is missing`;
    const actual = statSync(filePath).size;
    if (actual !== size) return `${file} has ${actual} bytes, the manifest says ${size}`;
  }
  return null;
}

/** Checkpoint folders of output_dir, oldest first, split into complete ones and the others with why. */
export function scanCheckpoints(outputDir: string): { complete: CheckpointEntry[]; incomplete: (CheckpointEntry & { reason: string })[] } {
  const complete: CheckpointEntry[] = [];
  const incomplete: (CheckpointEntry & { reason: string })[] = [];
  if (!existsSync(outputDir)) return { complete, incomplete };
  for (const name of readdirSync(outputDir)) {
    const match = CHECKPOINT.exec(name);
    if (!match) continue;
    const entry = { step: Number(match[1]), path: join(outputDir, name) };
    const reason = incompleteReason(entry.path);
    if (reason) incomplete.push({ ...entry, reason });
    else complete.push(entry);
  }
  const byStep = (a: CheckpointEntry, b: CheckpointEntry) => a.step - b.step;
  return { complete: complete.sort(byStep), incomplete: incomplete.sort(byStep) };
}

/**
 * resume_from_checkpoint: true — the newest complete checkpoint of output_dir; `notice` hears which
 * newer ones were skipped and why, and which is taken. A ConfigError when there is none.
 */
export function newestCompleteCheckpoint(outputDir: string, notice: (message: string) => void): string {
  const { complete, incomplete } = scanCheckpoints(outputDir);
  const newest = complete.at(-1);
  for (const skipped of incomplete.filter((e) => !newest || e.step > newest.step)) notice(`resume: skipping ${skipped.path}: ${skipped.reason}`);
  if (!newest) {
    const why = incomplete.length > 0 ? ` (only incomplete ones: ${incomplete.map((e) => e.path).join(', ')})` : '';
    throw new ConfigError(`resume_from_checkpoint: no complete checkpoint in ${outputDir}${why}`);
  }
  notice(`resuming from ${newest.path}`);
  return newest.path;
}

/** The complete checkpoints of output_dir, oldest first. */
export function listCheckpoints(outputDir: string): CheckpointEntry[] {
  return scanCheckpoints(outputDir).complete;
}

/** The temporary folder a checkpoint is assembled in (every rank must name the same one). */
export const partialCheckpointDir = (outputDir: string, step: number, tag: number) => join(outputDir, `.checkpoint-${step}.partial-${tag}`);
const trashDir = (outputDir: string, step: number) => join(outputDir, `.checkpoint-${step}.trash-${process.pid}`);

/**
 * Tidies temporary checkpoint folders left by processes that are gone (killed during a save or a
 * prune): one that is complete while its checkpoint-<step> is missing is moved into place (a kill
 * between "set aside" and "rename in" leaves the step only there); the rest are removed. Folders of
 * live processes are left alone. Returns one line per folder, saying what was done.
 */
export function recoverStaleTemporaries(outputDir: string): string[] {
  if (!existsSync(outputDir)) return [];
  const done: string[] = [];
  // Sorted: a step's new copy (partial) is considered before its old one (trash).
  for (const name of readdirSync(outputDir).sort()) {
    const match = TEMPORARY.exec(name);
    if (!match || isProcessAlive(Number(match[3]))) continue;
    const path = join(outputDir, name);
    const final = join(outputDir, `checkpoint-${match[1]}`);
    if (!existsSync(final) && incompleteReason(path) === null) {
      fileAction('move into place', path, () => renameSync(path, final));
      done.push(`recovered ${final} from ${name}, complete but left aside by a run that was killed`);
      continue;
    }
    fileAction('remove the stale folder', path, () => rmSync(path, { recursive: true, force: true }));
    done.push(`removed ${path}, left by a run that was killed while saving or pruning`);
  }
  return done;
}

/** Starts a checkpoint in its temporary folder (emptied), renamed by finishCheckpoint when complete. */
export function beginCheckpoint(partial: string, step: number): void {
  fileAction('create the checkpoint folder', partial, () => {
    rmSync(partial, { recursive: true, force: true });
    mkdirSync(partial, { recursive: true });
  }, `at step ${step}`);
  faultPoint('checkpoint:begin');
}

/** Writes the weights into a checkpoint's temporary folder (rank 0). */
export async function writeCheckpointWeights(partial: string, step: number, exportWeights: (dir: string) => Promise<void>): Promise<void> {
  await fileActionAsync('write the weights into', partial, () => exportWeights(partial), `at step ${step}`);
  faultPoint('checkpoint:weights');
}

/** Writes optimizer state tensors into a checkpoint's temporary folder (each rank its own file when sharded). */
export async function writeOptimizerState(partial: string, file: string, tensors: Map<string, Tensor>, step: number): Promise<void> {
  const path = join(partial, file);
  await fileActionAsync('write', path, () => writeSafetensors(path, tensors), `at step ${step}`);
  faultPoint('checkpoint:optimizer');
}

/** Removes a checkpoint's temporary folder after a failed save (the previous checkpoints stay). */
export function abandonCheckpoint(partial: string): void {
  rmSync(partial, { recursive: true, force: true });
}

/**
 * Completes output_dir/checkpoint-<step> from its temporary folder (where weights and optimizer state
 * are already): state files, and last the manifest; then it is renamed into place. An existing
 * checkpoint of the same step is renamed aside first and deleted only once the new one is in place,
 * so at every instant output_dir holds a complete copy. Then keeps the newest `keep` checkpoints.
 * A failure (full disk, I/O error) removes the temporary folder and names the file and step.
 */
export async function finishCheckpoint(
  partial: string,
  outputDir: string,
  step: number,
  parts: { state: Omit<TorchDpoState, 'version' | 'rng'>; hfState: object },
  keep?: number,
): Promise<string> {
  const final = join(outputDir, `checkpoint-${step}`);
  const at = `at step ${step}`;
  try {
    const state: TorchDpoState = { version: 2, ...parts.state, rng: rngStates().map((s) => Buffer.from(s).toString('base64')) };
    const stateFile = join(partial, STATE_FILE);
    fileAction('write', stateFile, () => writeFileAtomic(stateFile, `${JSON.stringify(state, null, 1)}\n`), at);
    const hfFile = join(partial, HF_STATE_FILE);
    fileAction('write', hfFile, () => writeFileAtomic(hfFile, `${JSON.stringify(parts.hfState, null, 2)}\n`), at);
    faultPoint('checkpoint:state');
    writeManifest(partial, step);
    faultPoint('checkpoint:manifest');
  } catch (err) {
    abandonCheckpoint(partial);
    throw err;
  }
  installCheckpoint(partial, final, outputDir, step);
  if (keep !== undefined) pruneCheckpoints(outputDir, keep);
  return final;
}

function writeManifest(dir: string, step: number): void {
  const files: Record<string, number> = {};
  // Files of subfolders too (TR-DPO's ref_model/), by their relative path.
  const walk = (relative: string) => {
    for (const name of readdirSync(join(dir, relative)).sort()) {
      const path = relative ? `${relative}/${name}` : name;
      if (statSync(join(dir, path)).isDirectory()) walk(path);
      else files[path] = statSync(join(dir, path)).size;
    }
  };
  walk('');
  const manifest: Manifest = { version: 1, step, files };
  const path = join(dir, MANIFEST);
  fileAction('write', path, () => writeFileAtomic(path, `${JSON.stringify(manifest, null, 1)}\n`), `at step ${step}`);
}

/** Renames a complete temporary folder into place (an old copy of the same step goes aside first). */
function installCheckpoint(partial: string, final: string, outputDir: string, step: number): void {
  const aside = existsSync(final) ? trashDir(outputDir, step) : null;
  fileAction('move into place the checkpoint', final, () => {
    if (aside) {
      renameSync(final, aside);
      faultPoint('checkpoint:aside');
    }
    renameSync(partial, final);
    syncFolder(outputDir);
  }, `at step ${step}`);
  faultPoint('checkpoint:installed');
  if (aside) rmSync(aside, { recursive: true, force: true });
}

/** Keeps the newest `keep` complete checkpoints; each older one is renamed to a trash name, then deleted. */
export function pruneCheckpoints(outputDir: string, keep: number): void {
  const all = listCheckpoints(outputDir);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) {
    const trash = trashDir(outputDir, old.step);
    fileAction('set aside the old checkpoint', old.path, () => renameSync(old.path, trash));
    faultPoint('prune:trashed');
    rmSync(trash, { recursive: true, force: true });
  }
}

/** Makes renames inside a folder durable (the folder's entries reach the disk). */
function syncFolder(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Version 1 checkpoints kept everything in trainer_state.json with history as the training logs. */
function upgradeState(raw: Record<string, unknown>, file: string): TorchDpoState {
  if (raw.version === 2) return raw as unknown as TorchDpoState;
  if (raw.version === 1) {
    const { history, ...rest } = raw as { history?: Record<string, number>[] };
    return { nonfiniteSteps: 0, worldSize: 1, optimizerSharding: false, ...rest, version: 2, logHistory: history ?? [] } as TorchDpoState;
  }
  throw new DataError(`${file}: unknown checkpoint version ${String(raw.version)}`);
}

/** Reads a complete checkpoint folder's state and restores the generator states; weights and optimizer are loaded by the caller. */
export function readCheckpoint(path: string): TorchDpoState {
  // Checkpoints of torch-dpo 0.1 have only trainer_state.json, in their own schema.
  const stateFile = existsSync(join(path, STATE_FILE)) ? join(path, STATE_FILE) : join(path, HF_STATE_FILE);
  if (!existsSync(stateFile)) throw new DataError(`${path}: not a checkpoint (no ${STATE_FILE})`);
  const reason = incompleteReason(path);
  if (reason) throw new DataError(`${path} is incomplete: ${reason}; resume from an earlier checkpoint (resume_from_checkpoint: true picks the newest complete one)`);
  const state = upgradeState(JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, unknown>, stateFile);
  // CPU first, then one per CUDA device; a GPU checkpoint resumed elsewhere restores what exists.
  setRngStates(state.rng.slice(0, 1 + cudaDeviceCount()).map((s) => new Uint8Array(Buffer.from(s, 'base64'))));
  return state;
}

/** The optimizer state tensors of a checkpoint file. */
export function readOptimizerState(path: string, file: string): Map<string, Tensor> {
  const full = join(path, file);
  if (!existsSync(full)) throw new DataError(`${path}: no ${file} (written with another optimizer_sharding setting or world size?)`);
  const out = new Map<string, Tensor>();
  for (const [name, entry] of readSafetensors(full).tensors) out.set(name, entryToTensor(entry));
  return out;
}
