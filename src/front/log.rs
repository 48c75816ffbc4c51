//! What the handles report, as `tracing` events: on the slow path only (the
//! fast path never reaches it), and never with a token, only ids,
//! generations, counts and errors (which carry no token either).
//!
//! A subscriber is user code, and no user code runs under a handle's lock:
//! the board writes [`Note`]s while it holds the lock, and the handle emits
//! them after releasing it.

use std::fmt;

use tracing::{debug, trace, warn};

use super::error::{Fault, HandleError};
use crate::{Error, RefreshFailure};

/// One event to report, noted under the lock and emitted after it.
#[derive(Debug)]
pub(crate) enum Note {
    AttemptStarts {
        attempt: u64,
        replacing: u64,
    },
    TimedOut {
        attempt: u64,
    },
    Adopted {
        attempt: u64,
        generation: u64,
    },
    NoToken {
        attempt: u64,
        outcome: &'static str,
    },
    LateAdopted {
        attempt: u64,
        generation: u64,
    },
    LateIgnored {
        attempt: u64,
    },
    Abandoned {
        attempt: u64,
    },
    StaleRejection {
        request: u64,
        rejected: u64,
        generation: u64,
    },
    Joins {
        request: u64,
        waiters: usize,
    },
    GaveUp {
        waiters_failed: usize,
        error: String,
        refused: bool,
    },
    TimerBroken,
}

impl Note {
    /// Emits the event. Called with no lock held.
    pub(crate) fn emit(self) {
        match self {
            Note::AttemptStarts { attempt, replacing } => {
                debug!(attempt, replacing, "refresh attempt starts");
            }
            Note::TimedOut { attempt } => debug!(attempt, "refresh attempt ends: timed out"),
            Note::Adopted {
                attempt,
                generation,
            } => debug!(attempt, generation, "refresh attempt ends: token adopted"),
            Note::NoToken { attempt, outcome } => {
                debug!(attempt, outcome, "refresh attempt ends without a token");
            }
            Note::LateAdopted {
                attempt,
                generation,
            } => debug!(attempt, generation, "late refresh answer adopted"),
            Note::LateIgnored { attempt } => debug!(attempt, "late refresh answer ignored"),
            Note::Abandoned { attempt } => {
                debug!(attempt, "refresh call abandoned: no answer in time");
            }
            Note::StaleRejection {
                request,
                rejected,
                generation,
            } => trace!(
                request,
                rejected,
                generation,
                "stale rejection answered with the current token, without a refresh"
            ),
            Note::Joins { request, waiters } => {
                trace!(request, waiters, "request joins the refresh under way");
            }
            Note::GaveUp {
                waiters_failed,
                error,
                refused: true,
            } => warn!(
                waiters_failed,
                error, "token refresh refused for good; a new login is needed"
            ),
            Note::GaveUp {
                waiters_failed,
                error,
                refused: false,
            } => warn!(
                waiters_failed,
                error, "token refresh gave up; requests fail fast until the cool-down ends"
            ),
            Note::TimerBroken => warn!(
                "the handle's timer panicked; timers fall back to the thread timer from now on"
            ),
        }
    }
}

/// Emits every note, in order. Called with no lock held.
pub(crate) fn emit(notes: Vec<Note>) {
    notes.into_iter().for_each(Note::emit);
}

/// A handle's error for a log line, whatever `E` is: the error's own words,
/// with the refresher's own error (which need not be `Display`) named, not
/// shown. Errors carry no token.
pub(crate) struct Described<'a, E>(pub(crate) &'a HandleError<E>);

impl<E> fmt::Display for Described<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn fault<E>(fault: &Fault<E>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match fault {
                Fault::Refresher(_) => f.write_str("the refresher's error"),
                // Its message is the refresher's own: named, not shown.
                Fault::Panicked(_) => f.write_str("the refresher panicked"),
            }
        }
        match self.0 {
            Error::RefreshUnavailable(failure) => {
                f.write_str("token refresh is failing, retry later: ")?;
                match failure {
                    RefreshFailure::Refresher(e) => fault(e, f),
                    RefreshFailure::TimedOut => f.write_str("refresh attempt timed out"),
                    RefreshFailure::ExpiredOnArrival => {
                        f.write_str("refresher returned an already expired token")
                    }
                }
            }
            Error::LoginRequired(e) => {
                f.write_str("token refresh was refused, a new login is needed: ")?;
                fault(e, f)
            }
            Error::Overloaded => f.write_str("too many requests are waiting for a token"),
            Error::AuthRejected { sends } => write!(
                f,
                "the server rejected the token on all {sends} sends of this request"
            ),
            Error::DuplicateRequest => f.write_str("request id is already waiting for a token"),
            Error::UnknownGeneration => {
                f.write_str("lease names a token generation this core never issued")
            }
            Error::Reentrant => f.write_str("the refresher asked its own handle for a token"),
        }
    }
}
