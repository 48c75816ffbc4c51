//! Deliberately broken variants of the async handle, one per way a driver
//! can betray a correct core, so that the lab's proptest and scenarios can
//! be shown to catch each. Only with the `mutants` feature, which only the
//! test build turns on; without it none of this exists.

/// A planted bug in the async handle. Each names what it breaks.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mutant {
    /// A call's future is dropped when its attempt times out, while the
    /// core still counts the call outstanding: its late answer (with a
    /// rotating refresh token, the only valid one) is lost.
    DropTimedOutCall,
    /// When an attempt times out, the core is told its call is over while
    /// its future is kept alive: the next attempt starts while the call is
    /// still outstanding at the endpoint (S1).
    StartBesideOutstandingCall,
    /// A round's waiters are not woken when their outcome arrives (L1).
    ForgetToWakeRound,
    /// The observer is called with the handle's lock held (user code under
    /// the lock: an observer that calls the handle deadlocks).
    ReportUnderLock,
}

impl Mutant {
    /// Every planted bug, for tests that must catch them all.
    pub const ALL: [Mutant; 4] = [
        Mutant::DropTimedOutCall,
        Mutant::StartBesideOutstandingCall,
        Mutant::ForgetToWakeRound,
        Mutant::ReportUnderLock,
    ];
}
