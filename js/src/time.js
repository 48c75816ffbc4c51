// Time and counters as the core sees them: unsigned 64-bit nanoseconds
// (BigInt), with saturating arithmetic, so a port agrees with the reference
// core to the nanosecond and never wraps.

/** The largest u64: "never" for a deadline, the ceiling of every sum. */
export const U64_MAX = (1n << 64n) - 1n;
/** The largest u32: the ceiling of send counts. */
export const U32_MAX = 0xffff_ffff;

/** a + b, saturating at U64_MAX. */
export function addSat(a, b) {
  const s = a + b;
  return s > U64_MAX ? U64_MAX : s;
}

/** a - b, saturating at 0. */
export function subSat(a, b) {
  return a > b ? a - b : 0n;
}

/** Clamps any non-negative BigInt into u64 (Rust's `saturating_nanos`). */
export function clampU64(a) {
  return a > U64_MAX ? U64_MAX : a < 0n ? 0n : a;
}

export function maxBig(a, b) {
  return a > b ? a : b;
}

export function minBig(a, b) {
  return a < b ? a : b;
}

/** Milliseconds to nanoseconds. */
export function ms(n) {
  return BigInt(n) * 1_000_000n;
}
