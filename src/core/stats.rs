//! Running counts of what the core did, for a user's metrics.

use std::hash::{Hash, Hasher};

/// What the core has done since it was made: the numbers an operator wants
/// on a dashboard (how often tokens are refreshed, how many requests rode on
/// someone else's refresh, how many stale rejections were answered without
/// one, how often refreshing failed).
///
/// # Examples
///
/// ```
/// use tokenflight::core::{Core, RequestId};
/// use tokenflight::{Config, Timestamp};
///
/// let mut core: Core<&str, ()> = Core::new(Config::default()).unwrap();
/// let _ = core.handle_acquire(Timestamp::ZERO, RequestId(1));
/// let _ = core.handle_acquire(Timestamp::ZERO, RequestId(2));
/// assert_eq!(core.stats().refreshes_started, 1);
/// assert_eq!(core.stats().joins, 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stats {
    /// Refresh attempts started.
    pub refreshes_started: u64,
    /// Tokens adopted from refresh answers (each made a new generation).
    pub tokens_adopted: u64,
    /// Of those, answers that came after their attempt had timed out.
    pub late_results_adopted: u64,
    /// Attempts that failed: transient errors, timeouts, expired tokens.
    pub attempts_failed: u64,
    /// Of those, attempts that timed out.
    pub attempts_timed_out: u64,
    /// Rounds that gave up after transient failures, failing their waiters
    /// (a round ahead of expiry has none).
    pub rounds_given_up: u64,
    /// Refresher calls given up for good after `refresh_abandon_after`
    /// without an answer.
    pub calls_abandoned: u64,
    /// Refreshes refused for good (a new login is needed).
    pub permanent_failures: u64,
    /// Requests that waited for a refresh another request had started.
    pub joins: u64,
    /// Rejections of the current token (each marks it bad).
    pub rejections: u64,
    /// Rejections of an older token, answered with the current one at once,
    /// without a refresh.
    pub stale_rejections_skipped: u64,
    /// Requests failed at once because refreshing had failed.
    pub fast_failures: u64,
    /// Requests refused because `max_waiters` requests were waiting.
    pub overloaded: u64,
    /// Requests that ran out of retries.
    pub auth_rejected: u64,
}

/// Counts kept beside the state but not part of it: two cores that differ
/// only in their counts behave alike, so they compare equal and hash alike
/// (the explorer would otherwise tell apart states that are the same).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Uncompared(pub(super) Stats);

impl PartialEq for Uncompared {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Uncompared {}

impl Hash for Uncompared {
    fn hash<H: Hasher>(&self, _: &mut H) {}
}
