import { scheduleFactor, warmupSteps } from '../lib/optim/schedulers';

describe('learning-rate schedules (HF formulas)', () => {
  it('linear: warms up, then decays to zero at the last step', () => {
    expect([0, 1, 2, 3, 4, 5].map((s) => scheduleFactor('linear', s, 6, 2))).toEqual([0, 0.5, 1, 0.75, 0.5, 0.25]);
    expect(scheduleFactor('linear', 0, 10, 0)).toBe(1);
  });
  it('cosine: half a cosine after warmup', () => {
    expect(scheduleFactor('cosine', 1, 11, 1)).toBeCloseTo(1, 12);
    expect(scheduleFactor('cosine', 6, 11, 1)).toBeCloseTo(0.5, 12);
    expect(scheduleFactor('cosine', 11, 11, 1)).toBeCloseTo(0, 12);
  });
  it('constant ignores warmup; constant_with_warmup uses it', () => {
    expect(scheduleFactor('constant', 0, 10, 5)).toBe(1);
    expect(scheduleFactor('constant_with_warmup', 1, 10, 4)).toBe(0.25);
    expect(scheduleFactor('constant_with_warmup', 7, 10, 4)).toBe(1);
  });
  it('takes warmup_steps over warmup_ratio', () => {
    expect(warmupSteps(100, 0, 0.1)).toBe(10);
    expect(warmupSteps(100, 7, 0.1)).toBe(7);
    expect(warmupSteps(15, 0, 0.1)).toBe(2);
  });
});
