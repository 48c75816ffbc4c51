//! What a handle reports for health checks: [`Status`].

use crate::{Generation, Phase, Timestamp};

/// A handle's state at a glance, for health checks and metrics.
///
/// # Examples
///
/// ```
/// use tokenflight::{blocking, Fresh, Generation, Phase, RefreshError};
///
/// let handle = blocking::Handle::new(Default::default(), |_| {
///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
/// })
/// .unwrap();
/// assert_eq!(handle.status().generation, Generation::NONE);
/// handle.ticket().unwrap();
/// let status = handle.status();
/// assert_eq!((status.phase, status.generation), (Phase::Idle, Generation(1)));
/// assert_eq!(status.next_refresh, None, "no expiry: never refreshed ahead");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Status {
    /// Idle, refreshing, or failed.
    pub phase: Phase,
    /// The current token's generation ([`Generation::NONE`] before the
    /// first).
    pub generation: Generation,
    /// Requests waiting for a token now.
    pub waiters: usize,
    /// When the current token is next due for a refresh (or a failed
    /// refresh may be retried), on the handle's clock: `None` when no
    /// refresh is planned (no token, no expiry known, a refresh under way,
    /// or refused for good).
    pub next_refresh: Option<Timestamp>,
}
