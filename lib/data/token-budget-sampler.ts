import { ConfigError } from '../errors';
import { seededRandom, shuffleInPlace, type PairSampler } from './sampler';

export interface TokenBudgetOptions {
  /** Tokens per micro-batch (max_tokens_per_batch), counted as the packed layout runs them. */
  budget: number;
  seed?: number;
  shuffle?: boolean;
  rank?: number;
  worldSize?: number;
}

/**
 * Micro-batches by token budget (max_tokens_per_batch): pairs sorted by their tokens fill each
 * micro-batch up to the budget, so pairs of similar length go together and a micro-batch of short
 * pairs holds more of them. The partition is made once (its count, and so the schedule, is the same
 * every epoch); each epoch shuffles the micro-batches' order (seeded) and deals them round-robin, so
 * every rank gets the same number per epoch: micro-batch g goes to rank g mod worldSize, and a last
 * round that cannot serve every rank is left out.
 */
export class TokenBudgetSampler implements PairSampler {
  private readonly partition: number[][];
  private readonly o: Required<TokenBudgetOptions>;

  constructor(private readonly tokens: number[], options: TokenBudgetOptions) {
    this.o = { seed: 42, shuffle: true, rank: 0, worldSize: 1, ...options };
    const longest = Math.max(...tokens);
    if (longest > this.o.budget) {
      const over = tokens.filter((t) => t > this.o.budget).length;
      throw new ConfigError(`max_tokens_per_batch ${this.o.budget} is below ${over} pair(s) (the longest takes ${longest} tokens in the packed layout): raise it to ${longest} or more, or lower max_length`);
    }
    const order = Array.from(tokens.keys()).sort((a, b) => tokens[b] - tokens[a] || a - b);
    this.partition = [];
    let current: number[] = [];
    let used = 0;
    for (const i of order) {
      if (used + tokens[i] > this.o.budget) {
        this.partition.push(current);
        current = [];
        used = 0;
      }
      current.push(i);
      used += tokens[i];
    }
    if (current.length) this.partition.push(current);
    if (this.stepsPerEpoch < 1) throw new ConfigError(`${tokens.length} pairs make ${this.partition.length} micro-batch(es) of ${this.o.budget} tokens, fewer than the ${this.o.worldSize} ranks`);
  }

  /** Micro-batches per rank per epoch. */
  get stepsPerEpoch(): number {
    return Math.floor(this.partition.length / this.o.worldSize);
  }

  private epochOrder(epoch: number): number[][] {
    const batches = [...this.partition];
    return this.o.shuffle ? shuffleInPlace(batches, seededRandom(this.o.seed * 1000003 + epoch)) : batches;
  }

  batches(epoch: number): number[][] {
    const order = this.epochOrder(epoch);
    return Array.from({ length: this.stepsPerEpoch }, (_, k) => order[k * this.o.worldSize + this.o.rank]);
  }

  globalPairs(epoch: number, from: number, to: number): number {
    const order = this.epochOrder(epoch);
    let pairs = 0;
    for (let k = from; k < to; k += 1) for (let r = 0; r < this.o.worldSize; r += 1) pairs += order[k * this.o.worldSize + r].length;
    return pairs;
  }
}
