import type { ProcessGroup } from '../distributed/process-group';
import { ShardedAdamW } from '../distributed/sharded-adamw';
import type { NamedTensor } from '../models/script-module';
import type { Tensor } from '../tensor';
import { AdamW } from './adamw';
import type { OptimizerConfig } from './optimizer-config';

/**
 * What the training loop asks of an optimizer (torch::optim::Optimizer's role): one interface, so the
 * loop never asks which optimizer it has. AdamW (gradients all-reduced in buckets during backward when
 * several ranks train) and ShardedAdamW (ZeRO-1: gradients reduce-scattered to their owners) implement it.
 */
export interface Optimizer {
  /** The learning rate of the next step (the scheduler sets it). */
  lr: number;
  /** Optimizer steps taken (AdamW's bias correction counts them). */
  readonly steps: number;
  /** Called before the backward whose gradients are final (the last micro-batch of a step). */
  beforeFinalBackward(): void;
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
export function createOptimizer(parameters: NamedTensor[], config: OptimizerConfig, group: ProcessGroup | null): Optimizer {
  const options = { lr: config.learning_rate, betas: [config.adam_beta1, config.adam_beta2] as [number, number], eps: config.adam_epsilon, weightDecay: config.weight_decay };
  if (config.optimizer_sharding && group) return new ShardedAdamW(parameters, options, group);
  return new AdamW(parameters, options, group);
}
