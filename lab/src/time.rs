//! The lab's virtual time: one clock for the handle, the timers and the
//! scripted refresher, moved only by the driver.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokenflight::{Clock, Timestamp};

/// The lab's time, shared by everything in it. It only moves forward, and
/// only when the driver moves it ([`Lab::advance_to`](crate::Lab::advance_to)).
///
/// # Examples
///
/// ```
/// use tokenflight::Timestamp;
/// use tokenflight_lab::Time;
///
/// let time = Time::new();
/// let clock = time.clock();
/// time.set(Timestamp::from_millis(5));
/// assert_eq!(clock.now(), Timestamp::from_millis(5));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Time(Arc<AtomicU64>);

impl Time {
    /// Time zero.
    pub fn new() -> Self {
        Time::default()
    }

    /// The time now.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_nanos(self.0.load(Ordering::SeqCst))
    }

    /// Moves the time to `at`.
    ///
    /// # Panics
    ///
    /// If `at` is earlier than now: the handles' clocks never go back.
    pub fn set(&self, at: Timestamp) {
        let before = self.0.swap(at.as_nanos(), Ordering::SeqCst);
        assert!(
            before <= at.as_nanos(),
            "the lab's time went back from {before} ns to {at}"
        );
    }

    /// A handle's [`Clock`] that reads this time.
    pub fn clock(&self) -> Clock {
        let time = self.clone();
        Clock::manual(move || time.now())
    }
}
