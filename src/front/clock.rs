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
/// A struct rather than an enum of the three cases: the fast path then
/// tests one flag word instead of decoding a discriminant kept in the
/// `Instant`'s nanoseconds, which cost it eight instructions a call.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    /// The instant the system clock reaches it; unused when `reading` is
    /// set.
    at: Instant,
    /// Compare the clock's own reading with this instead: a manual clock,
    /// or a deadline no `Instant` can hold (never).
    reading: Option<Timestamp>,
}

impl Deadline {
    fn instant(at: Instant) -> Self {
        Deadline { at, reading: None }
    }

    fn reading(at: Timestamp) -> Self {
        Deadline {
            // Any instant: never compared.
            at: instant_now(),
            reading: Some(at),
        }
    }

    #[inline]
    pub(super) fn has_passed(self, clock: &Clock) -> bool {
        match self.reading {
            None => instant_now() >= self.at,
            Some(Timestamp::MAX) => false,
            Some(at) => clock.now() >= at,
        }
    }
}
