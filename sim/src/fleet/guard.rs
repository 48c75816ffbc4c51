//! The guard's protocol, as `tokenflight::store::Guard` runs it, written
//! as a state machine the fleet world steps: the real guard is an `async`
//! function over a blocking store and the wall clock, so it cannot be
//! driven on a virtual clock without rewriting it. Each state names the
//! store operation or call it is waiting for; the transitions follow the
//! real one line for line (see `Fleet::guard_step`).

use tokenflight::core::RefreshId;

use super::store::Rec;

/// Where one guard call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading the store without the lease.
    FreeRead,
    /// Asking for the lease.
    Leasing,
    /// Another process holds the lease: waiting for the next poll or a
    /// change of the store's generation.
    Waiting,
    /// Re-reading the store under the lease.
    HeldRead,
    /// Writing the renewal the store failed to take last time.
    PendingSwap { read: Option<Rec> },
    /// The token server has the refresh call.
    Calling,
    /// Writing the new token (compare-and-swap on `expected`).
    Persisting { rec: Rec },
    /// The write failed: waiting `delay` ns, lease kept, to write again.
    Rewriting { rec: Rec, delay: u64 },
    /// The swap lost: reading the newer generation to adopt.
    Fenced,
    /// The server refused for good: re-reading before ending the session.
    PermanentRead,
    /// Writing the tombstone that ends the session for the fleet.
    Ending,
}

/// One call of the guard (the handle makes one at a time).
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// The world's id of this call (store replies carry it).
    pub id: u64,
    /// The core's attempt this call answers.
    pub attempt: RefreshId,
    /// The store generation of the token the handle holds.
    pub base: u64,
    /// When the call began (for the wait limit).
    pub start: u64,
    /// The lease owner tag of the current try.
    pub owner: u64,
    /// When the lease runs out, once granted.
    pub lease_until: u64,
    /// The generation the store held at the re-read under the lease.
    pub expected: u64,
    /// The newest record known at the re-read (the store's or memory's).
    pub source: Option<Rec>,
    /// Bumped per wait, so a stale wake-up is told apart.
    pub wait: u64,
    /// The back-off before the next retry of a failed renewal write (zero:
    /// none failed yet).
    pub rewrite_delay: u64,
    pub phase: Phase,
}

impl Call {
    /// Whether the lease is held in this phase (released when it ends).
    pub(crate) fn holds_lease(&self) -> bool {
        matches!(
            self.phase,
            Phase::HeldRead
                | Phase::PendingSwap { .. }
                | Phase::Calling
                | Phase::Persisting { .. }
                | Phase::Rewriting { .. }
                | Phase::Fenced
                | Phase::PermanentRead
                | Phase::Ending
        )
    }
}

/// The first wait before a failed renewal write is tried again, and the
/// longest (it doubles per failure): the guard's `REWRITE_*_DELAY`.
pub(crate) const REWRITE_FIRST_DELAY_NS: u64 = 50_000_000;
pub(crate) const REWRITE_MAX_DELAY_NS: u64 = 1_000_000_000;

/// The wait before writing a failed renewal again, if the lease still has
/// the wait and as long again for the write (the guard's `persist`).
pub(crate) fn rewrite_after(delay: u64, now: u64, lease_until: u64) -> Option<u64> {
    (lease_until.saturating_sub(now) >= delay.saturating_mul(2)).then_some(delay)
}

/// The stored token, if newer than `base` and good for `margin` yet (the
/// guard's `adopt`).
pub(crate) fn adoptable(rec: Option<Rec>, base: u64, now: u64, margin: u64) -> Option<Rec> {
    let rec = rec?;
    let token = rec.token?;
    (rec.generation > base && token.expires_at > now.saturating_add(margin)).then_some(rec)
}

/// The newer of two records.
pub(crate) fn newest(a: Option<Rec>, b: Option<Rec>) -> Option<Rec> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.generation > x.generation { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}
