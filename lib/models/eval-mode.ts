import type { CausalLM } from './causal-lm';

/** Runs `compute` with the model in eval mode (dropout off), then restores the mode it had. */
export async function inEvalMode<T>(model: CausalLM, compute: () => Promise<T>): Promise<T> {
  const training = model.training;
  await model.eval();
  try {
    return await compute();
  } finally {
    await model.train(training);
  }
}
