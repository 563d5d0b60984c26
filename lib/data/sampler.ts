import { ConfigError } from '../errors';

/** mulberry32: small, fast, seedable; the same sequence on every machine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffleInPlace<T>(items: T[], next: () => number): T[] {
  for (let i = items.length - 1; i > 0; i -= 1) {
    const j = Math.floor(next() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/** What the training loop asks of a sampler: this rank's micro-batches per epoch, all the same count. */
export interface PairSampler {
  /** Micro-batches per rank per epoch. */
  readonly stepsPerEpoch: number;
  /** This rank's micro-batches (indices into the dataset) for an epoch. */
  batches(epoch: number): number[][];
  /** Pairs in micro-batches [from, to) of an epoch over all ranks: what the step's loss is a mean over. */
  globalPairs(epoch: number, from: number, to: number): number;
}

export interface SamplerOptions {
  /** Pairs per batch on each rank. */
  batchSize: number;
  seed?: number;
  shuffle?: boolean;
  /** Batch pairs of similar length (less padding), in a shuffled batch order. */
  groupByLength?: boolean;
  rank?: number;
  worldSize?: number;
}

/**
 * Seeded batches, the same for a given (seed, epoch) on every run and rank. Each step takes one
 * global batch of batchSize × worldSize pairs and gives rank r its r-th slice, so ranks see
 * disjoint pairs and the same number of steps; the last incomplete global batch is left out.
 */
export class BatchSampler implements PairSampler {
  private readonly o: Required<SamplerOptions>;

  constructor(private readonly lengths: number[], options: SamplerOptions) {
    this.o = { seed: 42, shuffle: true, groupByLength: false, rank: 0, worldSize: 1, ...options };
    const { batchSize, rank, worldSize } = this.o;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new ConfigError(`batch size must be a positive integer, got ${batchSize}`);
    if (!Number.isInteger(worldSize) || worldSize < 1 || !Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
      throw new ConfigError(`rank ${rank} is not within world size ${worldSize}`);
    }
    if (lengths.length < batchSize * worldSize) {
      throw new ConfigError(`${lengths.length} pairs cannot fill one batch of ${batchSize} pairs on each of ${worldSize} rank(s)`);
    }
  }

  get stepsPerEpoch(): number {
    return Math.floor(this.lengths.length / (this.o.batchSize * this.o.worldSize));
  }

  globalPairs(_epoch: number, from: number, to: number): number {
    return (to - from) * this.o.batchSize * this.o.worldSize;
  }

  /** This rank's batches (indices into the dataset) for an epoch. */
  batches(epoch: number): number[][] {
    const { batchSize, worldSize, rank, seed } = this.o;
    const next = seededRandom(seed * 1000003 + epoch);
    let order = Array.from(this.lengths.keys());
    if (this.o.shuffle) shuffleInPlace(order, next);
    const global = batchSize * worldSize;
    if (this.o.groupByLength) {
      // Sort within mega-batches of 50 global batches, then shuffle whole global batches.
      const mega = global * 50;
      const sorted: number[] = [];
      for (let i = 0; i < order.length; i += mega) {
        sorted.push(...order.slice(i, i + mega).sort((a, b) => this.lengths[b] - this.lengths[a]));
      }
      const groups: number[][] = [];
      for (let s = 0; s < this.stepsPerEpoch; s += 1) groups.push(sorted.slice(s * global, (s + 1) * global));
      order = (this.o.shuffle ? shuffleInPlace(groups, next) : groups).flat();
    }
    const out: number[][] = [];
    for (let s = 0; s < this.stepsPerEpoch; s += 1) {
      const start = s * global + rank * batchSize;
      out.push(order.slice(start, start + batchSize));
    }
    return out;
  }
}

/** Yields from `source` while preparing the next `depth` items in the background. */
export async function* prefetch<T>(source: AsyncIterable<T> | Iterable<T>, depth = 1): AsyncGenerator<T> {
  const iterator = (Symbol.asyncIterator in source ? (source as AsyncIterable<T>)[Symbol.asyncIterator]() : (source as Iterable<T>)[Symbol.iterator]()) as AsyncIterator<T> | Iterator<T>;
  const queue: Promise<IteratorResult<T>>[] = [];
  const pull = () => queue.push(Promise.resolve(iterator.next()));
  for (let i = 0; i <= depth; i += 1) pull();
  for (;;) {
    const item = await queue.shift()!;
    if (item.done) return;
    pull();
    yield item.value;
  }
}
