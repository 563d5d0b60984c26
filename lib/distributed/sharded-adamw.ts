import { DataError, UsageError } from '../errors';
import { noGrad } from '../grad-mode';
import { keep, scope } from '../scope';
import type { NamedTensor } from '../models/script-module';
import { runFusedOp, type Tensor } from '../tensor';
import { zeros } from '../tensor-functions';
import { adamwAttrs, decays, type AdamWOptions } from '../optim/adamw';
import { optimizerFile } from '../optim/checkpoint-files';
import type { Optimizer } from '../optim/optimizer';
import { bucketIndices } from './buckets';
import type { GradReducer, ProcessGroup } from './process-group';

/** The part of one parameter this rank owns: elements [start, start + length) of its flat view. */
interface Piece {
  param: number;
  start: number;
  length: number;
  /** Where the piece sits in this rank's slice of the bucket. */
  sliceOffset: number;
}

/** Parameters flattened end to end, padded to a multiple of the world size; rank r owns slice r. */
interface Bucket {
  params: number[];
  offsets: number[];
  total: number;
  slice: number;
  pieces: Piece[];
  /** Stage 3: the unit whose shard holds this rank's values. */
  unit?: number;
}

/**
 * ZeRO-3: per unit, its parameters' names, sizes and shapes (in the units' order); this rank's slice
 * of each unit's values (the update lands there) and of its gradient sum (null: frozen). Under bf16
 * mixed precision the values are the fp32 masters' slices and the gradients the working copy's.
 */
export interface UnitLayout {
  members: { name: string; numel: number; shape: number[] }[][];
  shards(): Tensor[];
  gradShards(): (Tensor | null)[];
  /** After each micro-batch's backward: what is still gathered reduces its gradients and is freed. */
  finishMicroBatch(): Promise<void>;
  /** Before the slices are written: nothing stays gathered (a gathered copy would go stale). */
  release(): Promise<void>;
}

/**
 * ZeRO AdamW: every rank keeps the moments of its slice of the parameters only (1/world size of the
 * optimizer state). Stage 1: a step reduce-scatters the accumulated gradients (averaged). Stage 2:
 * the native reducer reduce-scatters each bucket as backward finalises it, in every micro-batch, and
 * releases the parameters' gradients at once; this rank's slices accumulate the sums, so no full
 * gradient outlives a bucket. Then: clip by the global norm, update the owned slice in place (views
 * of the parameters), all-gather the parameters. The arithmetic is AdamW's element by element, so the
 * trajectory equals unsharded data parallel.
 */
export class ShardedAdamW implements Optimizer {
  readonly params: NamedTensor[];
  private readonly buckets: Bucket[];
  private readonly pieces: Piece[];
  /** Per piece: its bucket, and 1 when its parameter takes weight decay. */
  private readonly pieceBucket: number[];
  private readonly decay: number[];
  private views: Tensor[] = [];
  private expAvg: Tensor[] = [];
  private expAvgSq: Tensor[] = [];
  /** This rank's slice of each bucket's averaged gradient (kept between steps: no fresh pages per step). */
  private gradSlices: Tensor[] = [];
  /** Per piece, its view into gradSlices. */
  private gradViews: Tensor[] = [];
  private reduced = false;
  private hasGrad: boolean[] = [];
  private stepCount = 0;
  /** Stage 2 and 3: the reducer that reduce-scatters the replicated parameters' gradients during backward into gradSlices. */
  private readonly reducer: GradReducer | null;
  /** Stage 3: this rank's slice of each unit's values (the updates land there; no all-gather after a step). */
  private readonly unitShards: Tensor[];
  lr: number;
  readonly statePerRank = true;
  /** Seconds this optimizer waited for its own collectives (cumulative): stage 1's reduce-scatter, the all-gather after an update. */
  readonly collectiveSeconds = { reduceScatter: 0, allGather: 0 };

  constructor(params: NamedTensor[], private readonly options: AdamWOptions, private readonly group: ProcessGroup, readonly zeroStage: 1 | 2 | 3 = 1, private readonly layers: UnitLayout | null = null) {
    // The optimizer owns the handles it keeps (released by dispose), whatever scope made them.
    this.params = params.filter((p) => p.tensor.requiresGrad).map((p) => ({ ...p, tensor: keep(p.tensor) }));
    this.lr = options.lr;
    const { rank, size } = group;
    // Stage 3: the layers' parameters are empty at rest; their sizes come with the units.
    const unitSizes = new Map(layers?.members.flat().map((m) => [m.name, m.numel]) ?? []);
    const sizeOf = (i: number) => unitSizes.get(this.params[i].name) ?? this.params[i].tensor.numel;
    const indexOf = (name: string) => {
      const i = this.params.findIndex((p) => p.name === name);
      if (i < 0) throw new UsageError(`ShardedAdamW: unit parameter '${name}' is not a trainable parameter`);
      return i;
    };
    const replicated = this.params.map((_, i) => i).filter((i) => !unitSizes.has(this.params[i].name));
    this.reducer = zeroStage >= 2 && replicated.length > 0 ? group.gradReducer(replicated.map((i) => this.params[i].tensor), { shard: true }) : null;
    // Stage 2 owns slices of the reducer's buckets (laid out in backward order); stage 3 also the units'.
    const layout: { indices: number[]; unit?: number }[] = this.reducer
      ? this.reducer.layout().map((bucket) => ({ indices: bucket.map((k) => replicated[k]) }))
      : zeroStage >= 2 ? [] : bucketIndices(this.params.map((p) => p.tensor), group.bucketBytes).map((indices) => ({ indices }));
    // Units of frozen weights (LoRA's base) are not the optimizer's.
    const trainable = new Set(this.params.map((p) => p.name));
    const trainedUnits = (layers?.members ?? []).map((members, unit) => ({ members, unit })).filter(({ members }) => members.some((m) => trainable.has(m.name)));
    for (const { members, unit } of trainedUnits) layout.push({ indices: members.map((m) => indexOf(m.name)), unit });
    this.buckets = layout.map(({ indices, unit }) => {
      const offsets: number[] = [];
      let total = 0;
      for (const i of indices) {
        offsets.push(total);
        total += sizeOf(i);
      }
      const slice = Math.ceil(total / size);
      const [from, to] = [rank * slice, Math.min(total, (rank + 1) * slice)];
      const pieces: Piece[] = [];
      indices.forEach((param, k) => {
        const start = Math.max(from, offsets[k]);
        const end = Math.min(to, offsets[k] + sizeOf(param));
        if (end > start) pieces.push({ param, start: start - offsets[k], length: end - start, sliceOffset: start - from });
      });
      return { params: indices, offsets, total, slice, pieces, unit };
    });
    this.pieces = this.buckets.flatMap((b) => b.pieces);
    this.pieceBucket = this.buckets.flatMap((b, i) => b.pieces.map(() => i));
    // A unit's parameters are empty at rest: their decay follows their real shapes.
    const unitShapes = new Map(layers?.members.flat().map((m) => [m.name, m.shape]) ?? []);
    this.decay = this.pieces.map((piece) => (decays(this.params[piece.param], unitShapes.get(this.params[piece.param].name)) ? 1 : 0));
    const gradShards = layers?.gradShards() ?? [];
    this.gradSlices = [...(this.reducer?.slices() ?? []), ...trainedUnits.map(({ unit }) => gradShards[unit]!)];
    for (const [u, g] of gradShards.entries()) if (!trainedUnits.some((t) => t.unit === u)) g?.dispose();
    this.unitShards = layers?.shards() ?? [];
  }

  get steps(): number {
    return this.stepCount;
  }

  /** Elements of each moment (exp_avg, exp_avg_sq) this rank holds. */
  get stateNumel(): number {
    return this.pieces.reduce((s, p) => s + p.length, 0);
  }

  private async ensureState(): Promise<void> {
    if (this.views.length === this.pieces.length) return;
    await noGrad(async () => {
      for (const [k, piece] of this.pieces.entries()) {
        const p = this.params[piece.param].tensor;
        const unit = this.buckets[this.pieceBucket[k]].unit;
        if (unit !== undefined) {
          this.views.push(await this.unitShards[unit].narrow(0, piece.sliceOffset, piece.length));
        } else {
          // view(), not reshape(): an update must land in the parameter, never in a copy.
          const flat = await p.view([-1]);
          this.views.push(await flat.narrow(0, piece.start, piece.length));
          flat.dispose();
        }
        this.expAvg.push(await zeros([piece.length], { dtype: p.dtype, device: p.device }));
        this.expAvgSq.push(await zeros([piece.length], { dtype: p.dtype, device: p.device }));
      }
    });
  }

  /** Stage 1 reduce-scatters after the step's backwards, in reduceAndClip; stage 2 during each one. */
  beforeBackward(): void {
    this.reducer?.arm();
  }

  /** Stage 2: the buckets backward did not finish, and every bucket's sum folded into this rank's slices; stage 3 also the outer unit's. */
  async afterMicroBatch(): Promise<void> {
    await this.reducer?.finish();
    await this.layers?.finishMicroBatch();
  }

  reduceAndClip(maxNorm: number | undefined): Promise<number> {
    return this.reduceGradients(maxNorm);
  }

  stateFile(rank: number): string {
    return optimizerFile(rank);
  }

  /** Releases moments, gradient slices, views and parameter handles (the parameters stay with the model). */
  dispose(): void {
    this.reducer?.dispose();
    for (const t of [...this.gradViews, ...this.views, ...this.gradSlices, ...this.unitShards, ...this.expAvg, ...this.expAvgSq, ...this.params.map((p) => p.tensor)]) t.dispose();
    this.gradViews = [];
    this.views = [];
    this.gradSlices = [];
    this.expAvg = [];
    this.expAvgSq = [];
  }

  /**
   * Averages the gradients over ranks (each rank receives its slice), then clips them by the global
   * L2 norm when maxNorm is set. Returns the norm before clipping (the same on every rank).
   */
  async reduceGradients(maxNorm?: number): Promise<number> {
    if (this.zeroStage >= 2) {
      // Stage 2 and 3: the slices hold sums over ranks already; their average, as stage 1's reduce gives.
      // (A unit's parameters all compute in their layer: they always have gradients.)
      this.hasGrad = this.params.map(() => true);
      const seen = this.reducer?.takeSeen() ?? [];
      this.replicatedIndices().forEach((i, k) => (this.hasGrad[i] = seen[k]));
      await noGrad(async () => {
        for (const slice of this.gradSlices) await slice.mul_(1 / this.group.size);
      });
    } else {
      // The gradients' handles (and zeros for missing ones) end with this scope: zeroGrad then frees the
      // gradients themselves, not the garbage collector some time later.
      await scope(async () => {
        const grads = await Promise.all(this.params.map((p) => p.tensor.grad()));
        this.hasGrad = grads.map((g) => g !== null);
        await noGrad(async () => {
          for (const [b, bucket] of this.buckets.entries()) {
            const first = this.params[bucket.params[0]].tensor;
            this.gradSlices[b] ??= keep(await zeros([bucket.slice], { dtype: first.dtype, device: first.device }));
            const parts = await Promise.all(bucket.params.map(async (i) => grads[i] ?? (await zeros(this.params[i].tensor.shape, { dtype: first.dtype, device: first.device }))));
            await this.timed('reduceScatter', this.group.reduceScatter(parts, 'avg', this.gradSlices[b]));
          }
        });
      });
    }
    if (this.gradViews.length === 0) {
      for (const [k, piece] of this.pieces.entries()) this.gradViews.push(await this.gradSlices[this.pieceBucket[k]].narrow(0, piece.sliceOffset, piece.length));
    }
    this.reduced = true;
    const { sum } = await runFusedOp('sum_of_squares', this.gradSlices);
    await this.group.allReduce([sum], 'sum');
    const norm = Math.sqrt((await sum.item()) as number);
    sum.dispose();
    if (maxNorm !== undefined && Number.isFinite(norm) && norm > maxNorm) {
      // The coefficient clip_grad_norm uses, so unsharded and sharded runs scale alike.
      const coefficient = maxNorm / (norm + 1e-6);
      await noGrad(async () => {
        for (const slice of this.gradSlices) await slice.mul_(coefficient);
      });
    }
    return norm;
  }

  /** Updates this rank's slice with AdamW, then every rank gathers the full parameters. */
  async step(): Promise<void> {
    if (!this.reduced) throw new UsageError('ShardedAdamW.step: call reduceGradients() first');
    await this.layers?.release();
    await this.ensureState();
    this.stepCount += 1;
    const owned = this.pieces.map((piece, k) => ({ piece, k })).filter(({ piece }) => this.hasGrad[piece.param]);
    await noGrad(async () => {
      const pick = (list: Tensor[]) => owned.map(({ k }) => list[k]);
      await runFusedOp('adamw_step', [...pick(this.views), ...pick(this.expAvg), ...pick(this.expAvgSq), ...pick(this.gradViews)], {
        ...adamwAttrs(this.options, this.lr, this.stepCount), decay: owned.map(({ k }) => this.decay[k]), explicit_grads: true,
      });
      for (const bucket of this.buckets.filter((b) => b.unit === undefined)) await this.timed('allGather', this.group.allGatherSlices(bucket.params.map((i) => this.params[i].tensor)));
    });
    this.reduced = false;
  }

  private async timed(kind: keyof ShardedAdamW['collectiveSeconds'], collective: Promise<unknown>): Promise<void> {
    const start = process.hrtime.bigint();
    await collective;
    this.collectiveSeconds[kind] += Number(process.hrtime.bigint() - start) / 1e9;
  }

  /** The parameters the reducer covers, in the order it was given them. */
  private replicatedIndices(): number[] {
    const inUnits = new Set(this.buckets.filter((b) => b.unit !== undefined).flatMap((b) => b.params));
    return this.params.map((_, i) => i).filter((i) => !inUnits.has(i));
  }

  /** Releases every gradient (stage 2 and 3: zeroes the accumulated slices). */
  async zeroGrad(): Promise<void> {
    this.reduced = false;
    await runFusedOp('zero_grads', this.params.map((p) => p.tensor));
    if (this.zeroStage >= 2) await noGrad(async () => {
      for (const slice of this.gradSlices) await slice.zero_();
    });
  }

  private key(kind: string, piece: Piece): string {
    return `${kind}.${this.params[piece.param].name}[${piece.start}:${piece.start + piece.length}]`;
  }

  /** This rank's moments, keyed `exp_avg.<name>[start:end]` (a per-rank checkpoint file). */
  stateTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    this.pieces.forEach((piece, k) => {
      if (!this.expAvg[k]) return;
      out.set(this.key('exp_avg', piece), this.expAvg[k]);
      out.set(this.key('exp_avg_sq', piece), this.expAvgSq[k]);
    });
    return out;
  }

  async loadState(tensors: Map<string, Tensor>, steps: number, source: string): Promise<void> {
    await this.ensureState();
    await noGrad(async () => {
      for (const [k, piece] of this.pieces.entries()) {
        for (const [kind, target] of [['exp_avg', this.expAvg[k]], ['exp_avg_sq', this.expAvgSq[k]]] as const) {
          const saved = tensors.get(this.key(kind, piece));
          // Step 0 has no moments yet; otherwise every owned slice must be there.
          if (!saved && steps > 0) throw new DataError(`${source}: no '${this.key(kind, piece)}' (the checkpoint was written with other ranks, parameters or bucket layout)`);
          if (saved) await target.copy_(saved);
        }
      }
    });
    this.stepCount = steps;
  }
}
