//! The vocabulary of a history: what a system that refreshes tokens can be
//! seen to do, independent of how it is built. The core's recorder speaks
//! it, and so does the simulator's port of the recipe, so one checker judges
//! both.

use crate::{Generation, Phase, RefreshId, RequestId, Timestamp};

/// One observable step of a system that coordinates token refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Event {
    /// A user started request `id`.
    Arrived {
        /// The request.
        id: RequestId,
    },
    /// Request `id` left for the server carrying token `generation`.
    Sent {
        /// The request.
        id: RequestId,
        /// The token it carries.
        generation: Generation,
    },
    /// The server rejected the token `generation` that request `id` carried.
    Rejected {
        /// The request.
        id: RequestId,
        /// The rejected token.
        generation: Generation,
    },
    /// Request `id` waits for a refresh.
    Waiting {
        /// The request.
        id: RequestId,
    },
    /// Request `id` ended with the server's (non-auth) response.
    Completed {
        /// The request.
        id: RequestId,
    },
    /// Request `id` ended with an error.
    Failed {
        /// The request.
        id: RequestId,
    },
    /// The user gave up on request `id`.
    Cancelled {
        /// The request.
        id: RequestId,
    },
    /// The refresher was called, or the front-end decided to call it: the
    /// call is outstanding at the endpoint from here. A front-end that
    /// decides under its lock and calls once the lock is released reports
    /// the decision, so that a login in between comes after the call.
    RefreshStarted {
        /// The attempt.
        attempt: RefreshId,
    },
    /// The refresher call's future completed: the call is over.
    RefreshEnded {
        /// The attempt.
        attempt: RefreshId,
        /// Whether it brought a token.
        ok: bool,
    },
    /// The system stopped waiting for a refresh attempt (it timed out, or a
    /// login superseded it). The call is still outstanding: its answer may
    /// still arrive.
    RefreshAbandoned {
        /// The attempt.
        attempt: RefreshId,
    },
    /// The refresher call's future was dropped before it completed: the
    /// call is over, without an answer.
    RefreshDropped {
        /// The attempt.
        attempt: RefreshId,
    },
    /// A new token became current.
    NewGeneration {
        /// Its generation.
        generation: Generation,
        /// When it expires, if known.
        expires_at: Option<Timestamp>,
        /// The refresh attempt it came from; `None` for a login.
        from: Option<RefreshId>,
    },
    /// The caller declared `generation` bad.
    Invalidated {
        /// The token declared bad.
        generation: Generation,
    },
    /// The coordinator changed state.
    PhaseChanged {
        /// The new state.
        phase: Phase,
    },
}
