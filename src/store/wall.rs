//! Wall-clock time, for what processes share: expiries and lease ends.
//! Processes share no `Instant`, so the store speaks unix milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{Clock, Timestamp};

/// A wall-clock time in milliseconds since the unix epoch.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::store::UnixMillis;
///
/// let t = UnixMillis::from_u64(1_000);
/// assert_eq!(t.saturating_add(Duration::from_millis(500)).as_u64(), 1_500);
/// assert!(UnixMillis::now().as_u64() > 1_600_000_000_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(u64);

impl UnixMillis {
    /// `ms` milliseconds after the epoch.
    pub const fn from_u64(ms: u64) -> Self {
        UnixMillis(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The wall clock now (the epoch if the clock is set before it).
    // The one wall-clock read of the stores; the core never reads a clock.
    #[allow(clippy::disallowed_methods)]
    pub fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        UnixMillis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }

    /// `self + d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Self {
        UnixMillis(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: UnixMillis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// The same instant on a handle's `clock`, seen from `now` on the wall.
    pub(crate) fn on_clock(self, clock: &Clock, now: UnixMillis) -> Timestamp {
        let here = clock.now();
        if self >= now {
            here + self.saturating_since(now)
        } else {
            here.saturating_sub(now.saturating_since(self))
        }
    }

    /// The wall-clock instant of `at` on a handle's `clock`, seen from `now`.
    pub(crate) fn from_clock(at: Timestamp, clock: &Clock, now: UnixMillis) -> Self {
        let here = clock.now();
        if at >= here {
            now.saturating_add(at.saturating_since(here))
        } else {
            let back = u64::try_from(here.saturating_since(at).as_millis()).unwrap_or(u64::MAX);
            UnixMillis(now.0.saturating_sub(back))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_ways_on_a_manual_clock() {
        let clock = Clock::manual(|| Timestamp::from_millis(10_000));
        let now = UnixMillis::from_u64(1_000_000);
        let later = UnixMillis::from_u64(1_004_000);
        assert_eq!(later.on_clock(&clock, now), Timestamp::from_millis(14_000));
        let earlier = UnixMillis::from_u64(997_000);
        assert_eq!(earlier.on_clock(&clock, now), Timestamp::from_millis(7_000));
        assert_eq!(
            UnixMillis::from_clock(Timestamp::from_millis(14_000), &clock, now),
            later
        );
        assert_eq!(
            UnixMillis::from_clock(Timestamp::from_millis(7_000), &clock, now),
            earlier
        );
    }
}
