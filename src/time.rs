//! The core's notion of time: a point on the caller's clock.

use std::fmt;
use std::ops::Add;
use std::time::Duration;

/// A point in time, as nanoseconds since an origin the caller picks.
///
/// The core never reads a clock: every input carries a `Timestamp`. Front-ends
/// measure it from an [`std::time::Instant`] taken when they start; the
/// simulator and the conformance traces use virtual time starting at zero.
/// Using plain nanoseconds (not `Instant`) keeps the core deterministic,
/// hashable and easy to port: a trace written here replays byte for byte in
/// any language.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::Timestamp;
///
/// let t = Timestamp::from_millis(1_500);
/// assert_eq!(t + Duration::from_millis(500), Timestamp::from_millis(2_000));
/// assert_eq!(t.saturating_since(Timestamp::from_millis(2_000)), Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The origin of the caller's clock.
    pub const ZERO: Timestamp = Timestamp(0);
    /// The latest representable time; used as "never".
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// A timestamp `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// A timestamp `millis` milliseconds after the origin (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis.saturating_mul(1_000_000))
    }

    /// A timestamp `elapsed` after the origin (saturating at [`Timestamp::MAX`]).
    pub fn from_elapsed(elapsed: Duration) -> Self {
        Timestamp(saturating_nanos(elapsed))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self - d`, or [`Timestamp::ZERO`] if that would precede the origin.
    pub fn saturating_sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(saturating_nanos(d)))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    /// Saturates at [`Timestamp::MAX`] rather than overflowing, so no input
    /// makes the core panic.
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(saturating_nanos(d)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", Duration::from_nanos(self.0))
    }
}

pub(crate) fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        assert_eq!(Timestamp::MAX + Duration::from_secs(1), Timestamp::MAX);
        assert_eq!(Timestamp::from_elapsed(Duration::MAX), Timestamp::MAX);
        assert_eq!(
            Timestamp::ZERO.saturating_sub(Duration::from_secs(1)),
            Timestamp::ZERO
        );
        assert_eq!(Timestamp::from_millis(u64::MAX), Timestamp::MAX);
    }

    #[test]
    fn since_is_zero_when_time_runs_backwards() {
        let a = Timestamp::from_millis(10);
        let b = Timestamp::from_millis(4);
        assert_eq!(a.saturating_since(b), Duration::from_millis(6));
        assert_eq!(b.saturating_since(a), Duration::ZERO);
    }
}
