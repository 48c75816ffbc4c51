//! The core's state, shaped so that illegal states do not compile: only a
//! round of refreshing has waiters, so "no waiter remains once the core is
//! `Idle` or `Failed`" (S3) holds by construction, and the refresher call
//! outstanding is one `Option`, so there is never a second (S1).

use std::sync::Arc;

use super::waiters::Waiters;
use crate::{Error, Generation, RefreshId, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum State<E> {
    Idle,
    Refreshing(Round),
    Failed {
        /// What every request that finds no usable token gets while failed.
        error: Error<E>,
        /// When the next request may start a new round; `None` after a
        /// permanent failure: only a new login ends it.
        retry_at: Option<Timestamp>,
    },
}

/// Consecutive attempts, from the first until a token is adopted or
/// refreshing gives up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Round {
    /// Waiting requests and how often each has been sent. Empty for a
    /// round ahead of expiry: while the token is usable nobody waits (S5b).
    pub(super) waiters: Waiters,
    /// Failed attempts so far; below `max_refresh_attempts` (S7).
    pub(super) failures: u32,
    pub(super) step: Step,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Step {
    /// The round's attempt is out and its answer awaited until `deadline`
    /// (the soft timeout). It is the outstanding call.
    InFlight {
        attempt: RefreshId,
        deadline: Timestamp,
    },
    /// Between two attempts of a round.
    BackingOff { retry_at: Timestamp },
    /// The next attempt is due, but an earlier call is still outstanding:
    /// it starts once that call answers or is abandoned (S1).
    Queued,
}

/// The one refresher call outstanding at the endpoint: from
/// `StartRefresh` until its answer arrives or it is abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Call {
    pub(super) attempt: RefreshId,
    /// The generation current when it started: only an answer for the
    /// still current generation may become the next one (S2).
    pub(super) base: Generation,
    /// When it is given up for good (`refresh_abandon_after`).
    pub(super) abandon_at: Timestamp,
}

/// The current token and what is known about it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct Current<T> {
    pub(super) token: Arc<T>,
    pub(super) expires_at: Option<Timestamp>,
    /// The stated expiry minus the safety margin; `None`: no expiry.
    pub(super) usable_until: Option<Timestamp>,
    /// When the first request starts a refresh ahead of expiry; never after
    /// `usable_until`. `None`: not ahead of time.
    pub(super) refresh_at: Option<Timestamp>,
    /// The server rejected it (or the caller invalidated it): it is never
    /// handed out again (S5).
    pub(super) rejected: bool,
}

impl<T> Current<T> {
    /// Before `usable_until`, whether rejected or not.
    pub(super) fn unexpired(&self, now: Timestamp) -> bool {
        self.usable_until.is_none_or(|u| now < u)
    }

    /// Handed out to every request: neither rejected nor (within the
    /// safety margin) expired.
    pub(super) fn usable(&self, now: Timestamp) -> bool {
        !self.rejected && self.unexpired(now)
    }

    /// Usable, and due for a refresh ahead of its expiry.
    pub(super) fn due(&self, now: Timestamp) -> bool {
        self.usable(now) && self.refresh_at.is_some_and(|r| now >= r)
    }

    /// When it stops being usable; [`Timestamp::MAX`] stands for never.
    pub(super) fn usable_until(&self) -> Timestamp {
        self.usable_until.unwrap_or(Timestamp::MAX)
    }
}
