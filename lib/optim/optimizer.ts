import type { ProcessGroup } from '../distributed/process-group';
import { ShardedAdamW, type UnitLayout } from '../distributed/sharded-adamw';
import type { NamedTensor } from '../models/script-module';
import type { Tensor } from '../tensor';
import { AdamW } from './adamw';
import type { OptimizerConfig } from './optimizer-config';

/**
 * What the training loop asks of an optimizer (torch::optim::Optimizer's role): one interface, so the
 * loop never asks which optimizer it has. AdamW (gradients all-reduced in buckets during backward when
 * several ranks train) and ShardedAdamW (ZeRO-1: gradients reduce-scattered to their owners at the
 * step; ZeRO-2: during every backward, gradients released; ZeRO-3: layers' values and gradients in
 * sharded units) implement it.
 */
export interface Optimizer {
  /** The learning rate of the next step (the scheduler sets it). */
  lr: number;
  /** Optimizer steps taken (AdamW's bias correction counts them). */
  readonly steps: number;
  /** ZeRO stage (DeepSpeed's numbering): 0 = every rank keeps everything; 1 = optimizer state sharded; 2 = gradients too. */
  readonly zeroStage: number;
  /** Called before each micro-batch's backward; `final` for the last of a step (its gradients are final). */
  beforeBackward(final: boolean): void;
  /** Called after each micro-batch's backward (and the mixed-precision gradient accumulation). */
  afterMicroBatch(): Promise<void>;
  /**
   * Gradients averaged over ranks, then clipped to maxNorm (none when undefined); returns the global
   * L2 norm before clipping, the same on every rank.
   */
  reduceAndClip(maxNorm: number | undefined): Promise<number>;
  step(): Promise<void>;
  /** Releases every gradient (zero_grad(set_to_none=True)). */
  zeroGrad(): Promise<void>;
  /** The checkpoint file holding this rank's optimizer state. */
  stateFile(rank: number): string;
  /** True when every rank writes its own state file (then output_dir must be one shared folder). */
  readonly statePerRank: boolean;
  /** The state tensors for a checkpoint (this rank's part when statePerRank). */
  stateTensors(): Map<string, Tensor>;
  /** Restores moments and the step count from a checkpoint's tensors (`source` names the file in errors). */
  loadState(tensors: Map<string, Tensor>, steps: number, source: string): Promise<void>;
  dispose(): void;
}

/** The optimizer a config asks for, over these parameters, on this process group (null: one process). */
export function createOptimizer(parameters: NamedTensor[], config: OptimizerConfig, group: ProcessGroup | null, layers: UnitLayout | null = null): Optimizer {
  const options = { lr: config.learning_rate, betas: [config.adam_beta1, config.adam_beta2] as [number, number], eps: config.adam_epsilon, weightDecay: config.weight_decay };
  const stage = zeroStageOf(config);
  if (stage > 0 && group) return new ShardedAdamW(parameters, options, group, stage as 1 | 2 | 3, stage === 3 ? layers : null);
  return new AdamW(parameters, options, group);
}

/** The ZeRO stage a config asks for: zero_stage, or 1 for optimizer_sharding: true. */
export function zeroStageOf(config: OptimizerConfig): number {
  return Math.max(config.zero_stage, config.optimizer_sharding ? 1 : 0);
}
