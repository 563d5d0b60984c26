import type { HfTokenizer } from '../data/tokenizer';
import { noGrad } from '../grad-mode';
import { scope } from '../scope';
import type { CausalLM } from '../models/causal-lm';
import { Tensor } from '../tensor';

/** Greedy decoding, one forward pass per token (no cache: meant for tiny demo models). */
export async function generateGreedy(model: CausalLM, tokenizer: HfTokenizer, prompt: string, maxNewTokens = 12): Promise<string> {
  const ids = tokenizer.encode(prompt);
  const start = ids.length;
  await noGrad(async () => {
    for (let i = 0; i < maxNewTokens; i += 1) {
      const next = await scope(async () => {
        const input = await Tensor.from([ids], { dtype: 'int64' }).to(model.module.device);
        const mask = await Tensor.from([ids.map(() => 1)], { dtype: 'int64' }).to(model.module.device);
        const logits = await model.forward(input, mask);
        const last = await (await logits.narrow(1, ids.length - 1, 1)).argmax(2);
        return Number((await last.item()) as bigint);
      });
      ids.push(next);
      if (next === tokenizer.eosId) break;
    }
  });
  return tokenizer.decode(ids.slice(start), { skipSpecialTokens: true });
}
