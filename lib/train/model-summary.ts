import type { CausalLM } from '../models/causal-lm';
import type { NamedTensor } from '../models/script-module';
import { scope } from '../scope';

/** A model as the start summary and the report describe it. */
export interface ModelSummary {
  architecture: string;
  source: string;
  path: string | null;
  /** Distinct parameters (tied weights counted once) and how many of them train. */
  parameters: number;
  trainable: number;
  dtype: string;
  device: string;
  warnings: string[];
}

export function describeModel(model: CausalLM, device: string): Promise<ModelSummary> {
  // The parameter handles are made for this look only: the scope releases them.
  return scope(async () => summarise(model, await model.namedParameters(), device));
}

function summarise(model: CausalLM, parameters: NamedTensor[], device: string): ModelSummary {
  const dtypes = [...new Set(parameters.map((p) => p.tensor.dtype))];
  return {
    architecture: model.info.architecture, source: model.info.source, path: model.info.path ?? null,
    parameters: parameters.reduce((s, p) => s + p.tensor.numel, 0),
    trainable: parameters.filter((p) => p.tensor.requiresGrad).reduce((s, p) => s + p.tensor.numel, 0),
    dtype: dtypes.join('+'), device, warnings: [...model.info.warnings],
  };
}

/** 124439808 → "124.4M". */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}
