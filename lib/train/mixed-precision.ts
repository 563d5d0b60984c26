import { ConfigError } from '../errors';
import { CausalLM } from '../models/causal-lm';
import { keep, scope } from '../scope';
import { runFusedOp, type Tensor } from '../tensor';
import { bakedDowncastProblem } from '../models/load-model';
import { noGrad } from '../grad-mode';
import { ZeroLayers } from '../distributed/zero-layers';
import type { ProcessGroup } from '../distributed/process-group';
import type { UnitLayout } from '../distributed/sharded-adamw';

/** Parameter handles owned by the caller (released by dispose), by name. */
function handles(model: CausalLM): Promise<{ name: string; tensor: Tensor }[]> {
  return scope(async () => (await model.namedParameters()).map((p) => ({ name: p.name, tensor: keep(p.tensor) })));
}

/**
 * bf16 mixed precision (TRL's `bf16: true`) with fp32 master weights. The policy the trainer owns
 * stays in fp32: the optimizer, its moments, gradient clipping, checkpoints and exports see only it.
 * Forward and backward run on a bf16 working copy; after each micro-batch's backward its bf16
 * gradients are added into the masters' fp32 gradients (accumulation in fp32) and released; after
 * each update the masters are copied back into the working copy (rounding to nearest even).
 *
 * Why working copies and not autocast: they work the same on libtorch 1.13 and 2.x, on CPU and CUDA,
 * inside TorchScript graphs (autocast does not reach into scripted methods reliably), and cast each
 * weight once per step instead of once per use in every micro-batch's forward and backward.
 * Bytes per parameter: 2 (bf16 working) + 4 (fp32 master) + 4 (fp32 gradient) + 8 (AdamW) = 18,
 * plus 2 for a bf16 gradient while a micro-batch's backward runs; fp32 training takes 16.
 */
export class MixedPrecision {
  /** ZeRO-3: the masters' and the working copy's layer units (slice for slice the same layout). */
  #layers: { master: ZeroLayers; working: ZeroLayers } | null = null;

  private constructor(
    /** The bf16 copy forward and backward run on. */
    readonly working: CausalLM,
    private workingParams: Tensor[],
    private masterParams: Tensor[],
    private names: string[],
  ) {}

  static async create(master: CausalLM): Promise<MixedPrecision> {
    const problem = await bakedDowncastProblem(master, 'bfloat16');
    if (problem) throw new ConfigError(`bf16: true needs a bfloat16 working copy of ${master.info.path}, but ${problem}`);
    const masterDtypes = new Set((await scope(async () => (await master.parameters()).map((p) => p.dtype))));
    if (!(masterDtypes.size === 1 && masterDtypes.has('float32'))) {
      throw new ConfigError(`bf16: true keeps fp32 master weights, but the parameters are ${[...masterDtypes].join(', ')}: drop dtype (or set dtype: float32)`);
    }
    const working = new CausalLM(await master.module.deepCopy(), master.config, { ...master.info, warnings: [...master.info.warnings] });
    try {
      await working.to({ dtype: 'bfloat16' });
      // Paired by name: the copy has the same structure (tied weights stay tied, listed once).
      const workingByName = new Map((await handles(working)).map((p) => [p.name, p.tensor]));
      const masters = await handles(master);
      const workingParams = masters.map((p) => workingByName.get(p.name)!);
      // A deep copy comes without requires_grad: the working weights train where the masters do.
      for (const [i, w] of workingParams.entries()) await w.setRequiresGrad(masters[i].tensor.requiresGrad);
      return new MixedPrecision(working, workingParams, masters.map((p) => p.tensor), masters.map((p) => p.name));
    } catch (err) {
      working.dispose();
      throw err;
    }
  }

  /**
   * ZeRO-3: the masters' layers sharded in fp32 (values only: they are updated, never computed
   * with) and the working copy's in bf16 with fp32 gradient slices (each layer's bf16 gradients are
   * reduce-scattered in fp32 as its backward ends: the accumulation stays fp32). Both use the same
   * layout, so an update reaches the working slices slice by slice, with no traffic.
   */
  async shardLayers(master: CausalLM, group: ProcessGroup, device?: string): Promise<void> {
    const masterLayers = await ZeroLayers.shard(master, group, { grads: false, device });
    const workingLayers = await ZeroLayers.shard(this.working, group, { gradDtype: 'float32', device });
    this.#layers = { master: masterLayers, working: workingLayers };
    // The layers' parameters are empty at rest: only the replicated ones stay paired.
    const inUnits = new Set(masterLayers.members.flat().map((m) => m.name));
    const keepIt = this.names.map((name) => !inUnits.has(name));
    for (const [i, kept] of keepIt.entries()) if (!kept) {
      this.workingParams[i].dispose();
      this.masterParams[i].dispose();
    }
    this.workingParams = this.workingParams.filter((_, i) => keepIt[i]);
    this.masterParams = this.masterParams.filter((_, i) => keepIt[i]);
    this.names = this.names.filter((_, i) => keepIt[i]);
  }

  /** ZeRO-3: what the optimizer updates (the masters' fp32 slices) and reads (the working copy's fp32 gradient slices). */
  unitLayout(): UnitLayout | null {
    const layers = this.#layers;
    if (!layers) return null;
    return {
      members: layers.master.members, shards: () => layers.master.shards(), gradShards: () => layers.working.gradShards(),
      // The working copy computes (and gathers); the masters are only ever updated.
      finishMicroBatch: () => layers.working.finishMicroBatch(), release: () => layers.working.release(),
    };
  }

  /** After a micro-batch's backward: its bf16 gradients go into the masters' fp32 gradients. */
  async accumulateGrads(): Promise<void> {
    // (ZeRO-3: every weight may be in a unit, whose gradients are reduced in fp32 by the units.)
    if (this.workingParams.length > 0) await runFusedOp('accumulate_grads', [...this.workingParams, ...this.masterParams]);
  }

  /** After an update (or a restore): the working copy takes the masters' values. */
  async refresh(): Promise<void> {
    if (this.workingParams.length > 0) await runFusedOp('copy_params', [...this.workingParams, ...this.masterParams]);
    const layers = this.#layers;
    if (layers) {
      await layers.working.release();
      await noGrad(() => layers.master.withSlices((masters) => layers.working.withSlices(async (slices) => {
        for (const [u, slice] of slices.entries()) await slice.copy_(masters[u]);
      })));
    }
  }

  dispose(): void {
    for (const t of [...this.workingParams, ...this.masterParams]) t.dispose();
    this.working.dispose();
  }
}
