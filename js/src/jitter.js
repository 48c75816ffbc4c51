// Seeded jitter: one SplitMix64 stream per core, shared by back-off,
// cool-down and skew draws, in the order the core makes them. The state
// starts at the seed itself (the first output mixes seed + golden gamma).

import { U64_MAX } from './time.js';

const MASK = U64_MAX;
const GAMMA = 0x9e37_79b9_7f4a_7c15n;

export class Jitter {
  /** @param {bigint} seed */
  constructor(seed, mutant = null) {
    this.state = BigInt.asUintN(64, seed);
    this.mutant = mutant;
  }

  nextU64() {
    this.state = (this.state + GAMMA) & MASK;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58_476d_1ce4_e5b9n) & MASK;
    z = ((z ^ (z >> 27n)) * 0x94d0_49bb_1331_11ebn) & MASK;
    return z ^ (z >> 31n);
  }

  /** Uniform in 0..=max (ns); no draw at all when max is 0. */
  upTo(max) {
    if (max === 0n) return 0n;
    if (this.mutant === 'JitterModulo') return this.nextU64() % (max + 1n);
    const span = max === U64_MAX ? U64_MAX : max + 1n;
    // Multiply-shift maps 64 random bits onto 0..span without modulo bias.
    return (this.nextU64() * span) >> 64n;
  }

  /** "Equal jitter": half of d, plus up to the other half. */
  equal(d) {
    const half = d >> 1n;
    if (this.mutant === 'JitterFull') return this.upTo(d);
    return half + this.upTo(d - half);
  }
}
