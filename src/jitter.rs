//! Seeded randomness for back-off and skew jitter.
//!
//! SplitMix64: tiny, fast, and its whole state is one `u64`, so the core stays
//! `Clone + Eq + Hash` and two cores with the same seed and inputs agree.

use std::time::Duration;

use crate::time::saturating_nanos;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Jitter {
    state: u64,
}

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Jitter { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration drawn uniformly from `0..=max`.
    pub(crate) fn up_to(&mut self, max: Duration) -> Duration {
        let max = saturating_nanos(max);
        if max == 0 {
            return Duration::ZERO;
        }
        let span = max.saturating_add(1);
        // Multiply-shift maps 64 random bits onto `0..span` without the bias
        // a plain modulo has for large spans.
        let r = ((u128::from(self.next_u64()) * u128::from(span)) >> 64) as u64;
        Duration::from_nanos(r)
    }

    /// "Equal jitter": half of `d` for sure, the other half at random, so the
    /// wait never collapses to zero but clients still spread out.
    pub(crate) fn equal(&mut self, d: Duration) -> Duration {
        let half = d / 2;
        half + self.up_to(d - half)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_draws() {
        let mut a = Jitter::new(7);
        let mut b = Jitter::new(7);
        let max = Duration::from_millis(100);
        for _ in 0..100 {
            assert_eq!(a.up_to(max), b.up_to(max));
        }
    }

    #[test]
    fn draws_stay_in_range() {
        let mut j = Jitter::new(1);
        let d = Duration::from_millis(10);
        for _ in 0..1000 {
            assert!(j.up_to(d) <= d);
            let e = j.equal(d);
            assert!(e >= d / 2 && e <= d, "{e:?}");
        }
        assert_eq!(j.up_to(Duration::ZERO), Duration::ZERO);
        assert!(j.up_to(Duration::MAX) <= Duration::MAX);
    }
}
