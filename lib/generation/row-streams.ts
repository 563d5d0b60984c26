/**
 * One stream of uniform numbers per generated row, seeded by (seed, row): a row draws the same
 * numbers whether it runs alone or in a batch of any size, so sampling is reproducible by seed and
 * independent of batching. xoshiro128** (32-bit state words, exact in JS), seeded through splitmix32.
 */
export class RowStream {
  #s: Uint32Array;

  constructor(seed: number, row: number) {
    let x = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(row + 1, 0x85ebca6b)) >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#s = Uint32Array.from([next(), next(), next(), next()]);
    // An all-zero state would stay zero.
    if (this.#s.every((w) => w === 0)) this.#s[0] = 1;
  }

  private nextWord(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** A uniform number in [0, 1) with 53 random bits. */
  uniform(): number {
    const high = this.nextWord() >>> 5;
    const low = this.nextWord() >>> 6;
    return (high * 67108864 + low) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
