import { noGrad } from '../grad-mode';
import type { CausalLM } from '../models/causal-lm';
import { inEvalMode } from '../models/eval-mode';
import { sequenceLogps } from '../ops/sequence-logps';
import { scope } from '../scope';
import { Tensor } from '../tensor';
import { onDevice } from '../tensor-functions';

export interface PromptAndCompletion {
  promptIds: number[];
  ids: number[];
}

/**
 * Σ log p(completion token | prefix) per row under `model` (eval mode, no gradient), with the
 * trainer's op (sequenceLogps: completion tokens only, labels shifted by one): what a generation's
 * logprobs sum to under the model that generated it, and its reference's side of a KL estimate.
 */
export async function completionLogps(model: CausalLM, rows: PromptAndCompletion[], batchSize = 32): Promise<number[]> {
  const out: number[] = [];
  await inEvalMode(model, () => noGrad(async () => {
    for (let start = 0; start < rows.length; start += batchSize) {
      const chunk = rows.slice(start, start + batchSize);
      const width = Math.max(...chunk.map((r) => r.promptIds.length + r.ids.length));
      const ids = new BigInt64Array(chunk.length * width);
      const attention = new BigInt64Array(chunk.length * width);
      const completion = new Uint8Array(chunk.length * width);
      chunk.forEach((row, b) => {
        [...row.promptIds, ...row.ids].forEach((id, t) => {
          ids[b * width + t] = BigInt(id);
          attention[b * width + t] = 1n;
          if (t >= row.promptIds.length) completion[b * width + t] = 1;
        });
      });
      const values = await scope(async () => {
        const device = model.module.device;
        const put = (t: Tensor) => onDevice(t, device);
        const shape = [chunk.length, width];
        const inputIds = await put(Tensor.from(ids, { shape }));
        const logits = await model.forward(inputIds, await put(Tensor.from(attention, { shape })));
        const { logps } = await sequenceLogps(logits, inputIds, await put(Tensor.from(completion, { shape, dtype: 'bool' })));
        return Array.from(await logps.toTypedArray() as Float32Array | Float64Array);
      });
      out.push(...values);
    }
  }));
  return out;
}
