import type { GradReducer, ProcessGroup } from '../distributed/process-group';
import { noGrad } from '../grad-mode';
import { keep } from '../scope';
import type { NamedTensor } from '../models/script-module';
import { runFusedOp, type Tensor } from '../tensor';
import { zeros } from '../tensor-functions';
import { optimizerFile } from './checkpoint-files';
import type { Optimizer } from './optimizer';

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** No weight decay on biases and norm weights (1-D parameters), as TRL/HF Trainer group them. */
export function decays(p: NamedTensor, shape: number[] = p.tensor.shape): boolean {
  return shape.length > 1 && !/(^|\.)(bias|ln_\w*|.*norm\w*)\./.test(`${p.name}.`);
}

/** The adamw_step op's hyper-parameters for one step. */
export function adamwAttrs(options: AdamWOptions, lr: number, step: number) {
  const [beta1, beta2] = options.betas ?? [0.9, 0.999];
  return { lr, beta1, beta2, eps: options.eps ?? 1e-8, weight_decay: options.weightDecay ?? 0, step };
}

/**
 * AdamW (torch.optim.AdamW's update) over de-duplicated parameters; each step is one native job over
 * all of them. The learning rate is set per step by the scheduler. With a process group, gradients
 * are averaged over ranks in buckets while the final backward runs (every rank keeps all moments).
 */
export class AdamW implements Optimizer {
  readonly params: NamedTensor[];
  private expAvg: Tensor[] = [];
  private expAvgSq: Tensor[] = [];
  private readonly decay: number[];
  private stepCount = 0;
  private readonly reducer: GradReducer | null;
  lr: number;
  readonly statePerRank = false;

  constructor(params: NamedTensor[], private readonly options: AdamWOptions, group: ProcessGroup | null = null) {
    // The optimizer owns the handles it keeps (released by dispose), whatever scope made them.
    this.params = params.filter((p) => p.tensor.requiresGrad).map((p) => ({ ...p, tensor: keep(p.tensor) }));
    this.decay = this.params.map((p) => (decays(p) ? 1 : 0));
    this.lr = options.lr;
    this.reducer = group ? group.gradReducer(this.params.map((p) => p.tensor)) : null;
  }

  readonly zeroStage = 0;

  beforeBackward(final: boolean): void {
    if (final) this.reducer?.arm();
  }

  async afterMicroBatch(): Promise<void> {}

  async reduceAndClip(maxNorm: number | undefined): Promise<number> {
    await this.reducer?.finish();
    return this.clipGradNorm(maxNorm);
  }

  stateFile(): string {
    return optimizerFile(null);
  }

  /** Releases the moments and the parameter handles (the parameters themselves stay with the model). */
  dispose(): void {
    this.reducer?.dispose();
    for (const t of [...this.expAvg, ...this.expAvgSq, ...this.params.map((p) => p.tensor)]) t.dispose();
    this.expAvg = [];
    this.expAvgSq = [];
  }

  get steps(): number {
    return this.stepCount;
  }

  private async ensureState(): Promise<void> {
    if (this.expAvg.length === this.params.length) return;
    for (const p of this.params) {
      // Optimizer state outlives any scope the first step runs in.
      this.expAvg.push(keep(await zeros(p.tensor.shape, { dtype: p.tensor.dtype, device: p.tensor.device })));
      this.expAvgSq.push(keep(await zeros(p.tensor.shape, { dtype: p.tensor.dtype, device: p.tensor.device })));
    }
  }

  async step(): Promise<void> {
    await this.ensureState();
    this.stepCount += 1;
    await noGrad(() => runFusedOp('adamw_step', [...this.params.map((p) => p.tensor), ...this.expAvg, ...this.expAvgSq], {
      ...adamwAttrs(this.options, this.lr, this.stepCount), decay: this.decay, explicit_grads: false,
    }));
  }

  /** Releases every gradient (set to none, like zero_grad(set_to_none=True)). */
  async zeroGrad(): Promise<void> {
    await runFusedOp('zero_grads', this.params.map((p) => p.tensor));
  }

  /** Scales gradients so their global L2 norm is at most maxNorm; returns the norm before clipping. */
  async clipGradNorm(maxNorm?: number): Promise<number> {
    const { norm } = await runFusedOp('clip_grad_norm', this.params.map((p) => p.tensor), maxNorm === undefined ? {} : { max_norm: maxNorm });
    const value = (await norm.item()) as number;
    norm.dispose();
    return value;
  }

  /** State for checkpoints: moment tensors by parameter name, and the step count. */
  stateTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    this.params.forEach((p, i) => {
      if (this.expAvg[i]) {
        out.set(`exp_avg.${p.name}`, this.expAvg[i]);
        out.set(`exp_avg_sq.${p.name}`, this.expAvgSq[i]);
      }
    });
    return out;
  }

  async loadState(tensors: Map<string, Tensor>, steps: number, _source = 'optimizer state'): Promise<void> {
    await this.ensureState();
    await noGrad(async () => {
      for (const [i, p] of this.params.entries()) {
        const m = tensors.get(`exp_avg.${p.name}`);
        const v = tensors.get(`exp_avg_sq.${p.name}`);
        if (m && v) {
          await this.expAvg[i].copy_(m);
          await this.expAvgSq[i].copy_(v);
        }
      }
    });
    this.stepCount = steps;
  }
}
