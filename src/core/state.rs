//! The core's state, shaped so that illegal states do not compile: only a
//! round of refreshing has waiters, so "no waiter remains once the core is
//! `Idle` or `Failed`" (S3) holds by construction.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{Error, RefreshId, RequestId, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum State<E> {
    Idle,
    Refreshing(Round),
    Failed {
        /// What every request gets while failed.
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
    /// Waiting requests and how often each has been sent.
    pub(super) waiters: BTreeMap<RequestId, u32>,
    /// Failed attempts so far; below `max_refresh_attempts` (S7).
    pub(super) failures: u32,
    pub(super) step: Step,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Step {
    /// One attempt is out (S1: there is never a second).
    InFlight {
        attempt: RefreshId,
        deadline: Timestamp,
    },
    /// Between two attempts of a round.
    BackingOff { retry_at: Timestamp },
}

/// The current token and what is known about it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct Current<T> {
    pub(super) token: Arc<T>,
    pub(super) expires_at: Option<Timestamp>,
    /// When to refresh ahead of expiry; `None`: not ahead of time.
    pub(super) refresh_at: Option<Timestamp>,
    /// The server rejected it (or the caller invalidated it): it is never
    /// handed out again (S5).
    pub(super) rejected: bool,
}

impl<T> Current<T> {
    pub(super) fn unexpired(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }

    /// Not known to be bad: neither rejected nor expired.
    pub(super) fn fresh_at(&self, now: Timestamp) -> bool {
        !self.rejected && self.unexpired(now)
    }

    /// Fresh, and not yet due for a refresh ahead of its expiry.
    pub(super) fn usable(&self, now: Timestamp) -> bool {
        self.fresh_at(now) && self.refresh_at.is_none_or(|r| now < r)
    }

    /// When the fast path must stop handing it out; [`Timestamp::MAX`]
    /// stands for never.
    pub(super) fn valid_until(&self) -> Timestamp {
        let expiry = self.expires_at.unwrap_or(Timestamp::MAX);
        self.refresh_at.map_or(expiry, |r| r.min(expiry))
    }
}
