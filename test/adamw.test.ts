import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, noGrad } from '../lib';
import { AdamW } from '../lib/optim/adamw';

// Written by scripts/make-optimizer-fixtures.py (torch.optim.AdamW + clip_grad_norm_, float64).
const golden = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'adamw-golden.json'), 'utf8'));
const values = async (t: Tensor) => Array.from((await t.toTypedArray()) as Float64Array);

describe('AdamW and gradient clipping against torch.optim', () => {
  it('matches four clipped steps with weight decay on matrices only', async () => {
    const w = Tensor.from(golden.w, { dtype: 'float64', requiresGrad: true });
    const b = Tensor.from(golden.b, { dtype: 'float64', requiresGrad: true });
    const optimizer = new AdamW([{ name: 'layer.weight', tensor: w, aliases: [] }, { name: 'layer.bias', tensor: b, aliases: [] }],
      { lr: golden.lr, betas: golden.betas, eps: golden.eps, weightDecay: golden.weight_decay });
    for (const [i, [gw, gb]] of (golden.grads as number[][][][]).entries()) {
      // Gradients as a backward pass would leave them: d(Σ w·gw + Σ b·gb) = (gw, gb).
      const loss = await (await (await w.mul(Tensor.from(gw, { dtype: 'float64' }))).sum()).add(await (await b.mul(Tensor.from(gb, { dtype: 'float64' }))).sum());
      await loss.backward();
      expect(Math.abs((await optimizer.clipGradNorm(golden.max_norm)) - golden.norms[i])).toBeLessThan(1e-12);
      await optimizer.step();
      await optimizer.zeroGrad();
      expect(await w.grad()).toBeNull();
    }
    const close = (a: number[], e: number[]) => a.forEach((x, i) => expect(Math.abs(x - e[i])).toBeLessThan(1e-12));
    close(await values(w.detach()), (golden.final_w as number[][]).flat());
    close(await values(b.detach()), golden.final_b);
    expect(optimizer.steps).toBe(4);
    expect(await noGrad(async () => w.requiresGrad)).toBe(true);
  });
});
