//! Deliberately broken variants of the core, one per guarantee, so that the
//! explorer, proptest and the simulator can be shown to catch each kind of
//! bug. The switch exists only with the `mutants` feature, which only the
//! test build turns on; without it every check below is a constant `false`.

// Without the feature the type is still named by the core's checks (each a
// constant `false`), but nothing outside the crate can reach it.
#![cfg_attr(not(feature = "mutants"), allow(unreachable_pub, dead_code))]

/// A planted bug. Each names the guarantee it breaks.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mutant {
    /// S1: a rejection of the current token during a refresh starts another
    /// attempt beside the one in flight.
    RefreshBesideInFlight,
    /// S2: a rejection of an older generation is taken as a rejection of the
    /// current one, so it starts a refresh.
    RefreshOnStaleRejection,
    /// S2: a late or repeated successful answer is adopted even when its
    /// generation was already refreshed.
    AdoptEveryLateResult,
    /// S3: cancelling a waiter silently drops the next waiter too.
    LoseWaiterOnCancel,
    /// S4: the retry budget is never checked.
    IgnoreRetryBudget,
    /// S5: a token the server rejected is still handed out.
    HandOutRejectedToken,
    /// S6: giving up goes `Failed` without failing the waiters.
    KeepWaitersOnFailure,
    /// S7: `max_waiters` is never checked.
    IgnoreMaxWaiters,
    /// L1: the back-off timer is never reported, so a round stalls.
    ForgetBackoffTimer,
    /// S1: after a soft timeout the next attempt starts while the timed-out
    /// call is still outstanding at the endpoint.
    StartBesideOutstandingCall,
    /// S5b: a request that finds a usable token during a refresh ahead of
    /// expiry waits for the refresh instead of being sent.
    ParkWhileUsable,
}

impl Mutant {
    /// Every planted bug, for tests that must catch them all.
    pub const ALL: [Mutant; 11] = [
        Mutant::RefreshBesideInFlight,
        Mutant::RefreshOnStaleRejection,
        Mutant::AdoptEveryLateResult,
        Mutant::LoseWaiterOnCancel,
        Mutant::IgnoreRetryBudget,
        Mutant::HandOutRejectedToken,
        Mutant::KeepWaitersOnFailure,
        Mutant::IgnoreMaxWaiters,
        Mutant::ForgetBackoffTimer,
        Mutant::StartBesideOutstandingCall,
        Mutant::ParkWhileUsable,
    ];
}
