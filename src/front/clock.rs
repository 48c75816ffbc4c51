//! Where a handle's time comes from ([`Clock`]), and how the fast path
//! tells that a published deadline has passed.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Timestamp;

/// Where a handle's time comes from: the system's monotonic clock measured
/// from the handle's construction, or a function (for tests and
/// simulations). Refreshers get one to turn a relative `expires_in` into
/// the [`Timestamp`] that [`Fresh::expiring_at`](crate::Fresh::expiring_at)
/// takes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::{Clock, Timestamp};
///
/// let clock = Clock::manual(|| Timestamp::from_millis(500));
/// assert_eq!(clock.after(Duration::from_millis(250)), Timestamp::from_millis(750));
/// assert!(Clock::system().now() < Timestamp::MAX);
/// ```
#[derive(Clone)]
pub struct Clock(ClockKind);

#[derive(Clone)]
enum ClockKind {
    System(Instant),
    Manual(Arc<dyn Fn() -> Timestamp + Send + Sync>),
}

impl Clock {
    /// The system's monotonic clock, with its origin now.
    pub fn system() -> Self {
        Clock(ClockKind::System(instant_now()))
    }

    /// A clock that reads `now`; it must never go backwards.
    pub fn manual(now: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        Clock(ClockKind::Manual(Arc::new(now)))
    }

    /// The time now.
    pub fn now(&self) -> Timestamp {
        match &self.0 {
            ClockKind::System(origin) => Timestamp::from_elapsed(instant_now() - *origin),
            ClockKind::Manual(now) => now(),
        }
    }

    /// The time `duration` from now, e.g. a token's expiry from its
    /// `expires_in`.
    pub fn after(&self, duration: Duration) -> Timestamp {
        self.now() + duration
    }

    /// How the fast path tells that this clock has reached `at`.
    pub(super) fn deadline(&self, at: Timestamp) -> Deadline {
        match &self.0 {
            // The exact inverse of `now`: `origin + at` is reached when
            // `now() >= at`, to the nanosecond. "Never" (or past what an
            // `Instant` can hold) is read as the clock reading `at`, which
            // it never does.
            ClockKind::System(origin) if at != Timestamp::MAX => origin
                .checked_add(Duration::from_nanos(at.as_nanos()))
                .map_or_else(|| Deadline::reading(at), Deadline::instant),
            ClockKind::System(_) | ClockKind::Manual(_) => Deadline::reading(at),
        }
    }

    /// The wall-clock instant at which this clock, reading `now`, reads
    /// `at` (roughly, for a manual clock), for waiting on a condition
    /// variable. `now` is read before the lock is taken: a user's clock
    /// never runs under it.
    pub(crate) fn instant_at(&self, at: Timestamp, now: Timestamp) -> Instant {
        instant_now() + at.saturating_since(now)
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ClockKind::System(_) => f.write_str("Clock::system"),
            ClockKind::Manual(_) => f.write_str("Clock::manual"),
        }
    }
}

/// The front-ends' only clock read. The core never reads a clock; the
/// front-ends must, to give it `now`. Inlined: the fast path is in the
/// user's crate, and a call here cost it two instructions more than the
/// `Instant::now()` it wraps.
#[allow(clippy::disallowed_methods)]
#[inline]
fn instant_now() -> Instant {
    Instant::now()
}

/// When a published snapshot stops being valid. For the system clock it is
/// an `Instant`, computed once when the snapshot is published, so that the
/// fast path compares `Instant::now()` with it and nothing else: turning
/// `now` into a [`Timestamp`] on every call (subtracting the clock's origin,
/// converting to nanoseconds) cost more than the rest of the fast path.
///
/// The instant comes first and alone on the valid path: one comparison
/// decides a valid token. Only once the instant is reached is `reading`
/// looked at, so the clocks whose deadline no instant tells exactly (a
/// manual clock; "never") keep one that is reached already (manual) or
/// centuries away (never), and are decided there by their own reading.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    /// Until this instant the deadline has not passed.
    at: Instant,
    /// Once `at` is reached: `None`, the deadline has passed; otherwise it
    /// has passed when the clock reads this (never, for `Timestamp::MAX`).
    reading: Option<Timestamp>,
}

impl Deadline {
    fn instant(at: Instant) -> Self {
        Deadline { at, reading: None }
    }

    /// A deadline the clock's own reading decides.
    fn reading(at: Timestamp) -> Self {
        let now = instant_now();
        Deadline {
            // "Never" on the system clock: an instant a few centuries on,
            // where one exists, so that the valid path is the instant's;
            // anything else is decided by the reading from now on.
            at: match at {
                Timestamp::MAX => now.checked_add(NEVER).unwrap_or(now),
                _ => now,
            },
            reading: Some(at),
        }
    }

    /// A deadline that has always passed: the snapshot cell's "nothing".
    pub(super) fn passed() -> Self {
        Deadline::instant(instant_now())
    }

    /// By reference: taken by value, the whole deadline was copied to the
    /// stack around the clock read, four instructions a call.
    #[inline]
    pub(super) fn has_passed(&self, clock: &Clock) -> bool {
        instant_now() >= self.at && self.reached(clock)
    }

    /// Whether a deadline whose instant is reached has passed.
    #[cold]
    #[inline(never)]
    fn reached(&self, clock: &Clock) -> bool {
        match self.reading {
            None => true,
            Some(Timestamp::MAX) => false,
            Some(at) => clock.now() >= at,
        }
    }
}

/// How far a "never" deadline's instant lies: far beyond any process's
/// life, near enough for every `Instant` to hold it.
const NEVER: Duration = Duration::from_secs(200 * 365 * 24 * 3600);

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A manual clock reading whatever `reading` holds, in milliseconds.
    fn manual(reading: &Arc<AtomicU64>) -> Clock {
        let reading = Arc::clone(reading);
        Clock::manual(move || Timestamp::from_millis(reading.load(Ordering::SeqCst)))
    }

    #[test]
    fn a_manual_clocks_deadline_passes_exactly_when_its_reading_reaches_it() {
        let reading = Arc::new(AtomicU64::new(0));
        let clock = manual(&reading);
        let deadline = clock.deadline(Timestamp::from_millis(1_000));
        reading.store(999, Ordering::SeqCst);
        assert!(!deadline.has_passed(&clock));
        reading.store(1_000, Ordering::SeqCst);
        assert!(deadline.has_passed(&clock));
        reading.store(500, Ordering::SeqCst);
        assert!(!deadline.has_passed(&clock));
    }

    #[test]
    fn never_never_passes_on_either_clock() {
        let reading = Arc::new(AtomicU64::new(u64::MAX / 2));
        for clock in [Clock::system(), manual(&reading)] {
            assert!(!clock.deadline(Timestamp::MAX).has_passed(&clock));
        }
    }

    #[test]
    fn a_system_clocks_deadline_passes_at_its_instant() {
        let clock = Clock::system();
        assert!(clock.deadline(clock.now()).has_passed(&clock));
        let later = clock.after(Duration::from_secs(3_600));
        assert!(!clock.deadline(later).has_passed(&clock));
    }

    #[test]
    fn the_deadline_of_nothing_has_always_passed() {
        let reading = Arc::new(AtomicU64::new(0));
        for clock in [Clock::system(), manual(&reading)] {
            assert!(Deadline::passed().has_passed(&clock));
        }
    }
}
