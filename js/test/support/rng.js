// A small seeded generator for test data (not the core's jitter stream).

export class Rng {
  constructor(seed) {
    this.s = (Number(BigInt.asUintN(32, BigInt(seed))) ^ 0x9e3779b9) >>> 0;
  }

  /** Uniform 32-bit (mulberry32). */
  u32() {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in 0..n (n > 0). */
  below(n) {
    return Math.floor((this.u32() / 2 ** 32) * n);
  }

  chance(p) {
    return this.u32() / 2 ** 32 < p;
  }

  pick(xs) {
    return xs[this.below(xs.length)];
  }

  u64() {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }

  /** Picks a key of `weights` ({key: weight}) in proportion. */
  weighted(weights) {
    const entries = Object.entries(weights);
    let r = this.below(entries.reduce((s, [, w]) => s + w, 0));
    for (const [k, w] of entries) {
      if ((r -= w) < 0) return k;
    }
    return entries[0][0];
  }
}
