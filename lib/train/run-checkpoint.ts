import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DataError } from '../errors';
import type { CausalLM } from '../models/causal-lm';
import { abandonCheckpoint, beginCheckpoint, finishCheckpoint, partialCheckpointDir, readCheckpoint, readOptimizerState, writeCheckpointWeights, writeOptimizerState, type TorchDpoState } from './checkpoint';
import { letPendingSignalsIn } from '../event-loop-turns';
import { hfTrainerState } from './hf-trainer-state';
import type { RunParts } from './run-setup';

/** The progress of a run that a checkpoint keeps beside weights and optimizer. */
export interface RunProgress {
  step: number;
  tokensSeen: number;
  nonfiniteSteps: number;
  logHistory: Record<string, number>[];
}

/**
 * Saves output_dir/checkpoint-<step>; every rank calls it. Rank 0 assembles the temporary folder;
 * optimizer state is written by the rank(s) that hold it, then rank 0 adds weights and state files
 * and renames the folder into place. Returns the checkpoint's path.
 */
export async function saveRunCheckpoint(run: RunParts, progress: RunProgress): Promise<string> {
  const c = run.config;
  const rank = run.parallel?.rank ?? 0;
  const isMain = rank === 0;
  const partial = partialCheckpointDir(c.output_dir, progress.step, run.parallel?.tag ?? process.pid);
  try {
    // ZeRO-3 without LoRA: the layers are saved as each rank's slices (under LoRA they are frozen: the adapter is what is saved).
    const zero = run.policy.info.adapters ? null : run.policy.shardedLayers;
    if (isMain) {
      beginCheckpoint(partial, progress.step);
      if (!zero) await writeCheckpointWeights(partial, progress.step, (dir) => run.policy.saveTrained(dir));
    }
    // Between the phases of a save, signals are heard (a third Ctrl-C exits here, a second one reports).
    await letPendingSignalsIn();
    if (run.optimizer.statePerRank) await run.parallel?.barrier();
    // TR-DPO: the synced reference is part of the run's state (a resume must not restart it from the initial model).
    const synced = syncedReference(run);
    if (synced?.shardedLayers) {
      // (Stage 3: every rank has passed the barrier above, after rank 0 created the folder.)
      mkdirSync(join(partial, REFERENCE_DIR), { recursive: true });
      await writeCheckpointWeights(partial, progress.step, (dir) => synced.shardedLayers!.saveShards(synced, join(dir, REFERENCE_DIR)));
    } else if (synced && isMain) {
      await writeCheckpointWeights(partial, progress.step, (dir) => synced.exportSafetensors(join(dir, REFERENCE_DIR)));
    }
    if (isMain || run.optimizer.statePerRank) {
      if (!existsSync(partial)) {
        throw new ConfigError(`optimizer_sharding: rank ${rank} does not see ${partial}, which rank 0 created: every rank writes its optimizer file into the checkpoint, so output_dir must be one folder shared by all ranks (the same path on shared storage)`);
      }
      if (zero) await writeCheckpointWeights(partial, progress.step, (dir) => zero.saveShards(run.policy, dir));
      await writeOptimizerState(partial, run.optimizer.stateFile(rank), run.optimizer.stateTensors(), progress.step);
    }
    if (run.optimizer.statePerRank) await run.parallel?.barrier();
    await letPendingSignalsIn();
    if (isMain) await finishCheckpoint(partial, c.output_dir, progress.step, { state: runState(run, progress), hfState: hfState(run, progress) }, c.save_total_limit);
  } catch (err) {
    if (isMain) abandonCheckpoint(partial);
    throw err;
  }
  return join(c.output_dir, `checkpoint-${progress.step}`);
}

/** Where a checkpoint keeps TR-DPO's reference (an HF folder, or ZeRO-3 slices). */
export const REFERENCE_DIR = 'ref_model';

/** The reference a run keeps changing (TR-DPO's sync_ref_model), if any. */
function syncedReference(run: RunParts): CausalLM | null {
  return run.config.sync_ref_model && run.reference.kind === 'model' ? run.reference.model : null;
}

function runState(run: RunParts, progress: RunProgress): Omit<TorchDpoState, 'version' | 'rng'> {
  return {
    step: progress.step, optimizerSteps: run.optimizer.steps, tokensSeen: progress.tokensSeen, nonfiniteSteps: progress.nonfiniteSteps,
    worldSize: run.parallel?.worldSize ?? 1, optimizerSharding: run.optimizer.statePerRank, zeroStage: run.optimizer.zeroStage, logHistory: progress.logHistory, config: run.config as Record<string, unknown>,
  };
}

function hfState(run: RunParts, progress: RunProgress): Record<string, unknown> {
  const { stepsPerEpoch, totalSteps, loggingSteps, evalSteps, saveSteps } = run.schedule;
  return hfTrainerState({
    globalStep: progress.step, epoch: progress.step / stepsPerEpoch, maxSteps: totalSteps, numTrainEpochs: Math.ceil(totalSteps / stepsPerEpoch),
    loggingSteps, evalSteps, saveSteps, trainBatchSize: run.config.per_device_train_batch_size, tokensSeen: progress.tokensSeen, logHistory: progress.logHistory,
  });
}

/** Restores weights, optimizer moments, RNG and progress from a checkpoint written with the same world size and sharding. */
export async function resumeRun(run: RunParts, path: string): Promise<RunProgress> {
  const state = readCheckpoint(path);
  const worldSize = run.parallel?.worldSize ?? 1;
  const rank = run.parallel?.rank ?? 0;
  if (state.worldSize !== worldSize) {
    throw new ConfigError(`${path} was written by ${state.worldSize} rank(s); resume it with the same world size (now ${worldSize})`);
  }
  const savedStage = state.zeroStage ?? (state.optimizerSharding ? 1 : 0);
  if (savedStage !== run.optimizer.zeroStage) {
    // Stage 1 and 2 shard the moments along different bucket layouts: they do not load into each other.
    const setting = (stage: number) => (stage === 0 ? 'optimizer_sharding off' : stage === 1 ? 'optimizer_sharding on' : `zero_stage ${stage}`);
    throw new ConfigError(`${path} was written with ${setting(savedStage)}; resume it with the same setting (now ${setting(run.optimizer.zeroStage)})`);
  }
  await run.policy.loadTrained(path); // the checkpoint folder: weights (one file, or shards with their index) or the adapter
  await run.mixed?.refresh(); // the bf16 working copy follows the restored fp32 masters
  // TR-DPO's reference as it was synced. A checkpoint written without sync_ref_model has the
  // initial reference, which the run has loaded already.
  const synced = syncedReference(run);
  const saved = join(path, REFERENCE_DIR);
  if (synced && existsSync(saved)) await synced.loadTrained(saved);
  else if (synced && state.config?.sync_ref_model) {
    throw new DataError(`${path} has no ${REFERENCE_DIR}/ (written before torch-dpo saved TR-DPO's synced reference): its reference cannot be restored; start the run again`);
  }
  const file = run.optimizer.stateFile(rank);
  const tensors = readOptimizerState(path, file);
  try {
    await run.optimizer.loadState(tensors, state.optimizerSteps, join(path, file));
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return { step: state.step, tokensSeen: state.tokensSeen, nonfiniteSteps: state.nonfiniteSteps, logHistory: state.logHistory };
}
