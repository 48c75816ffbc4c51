//! The simulated token store the processes of a fleet share: one record
//! with a fleet-wide generation, a lease with an owner tag and an expiry,
//! and the compare-and-swap every write goes through (as `Store::swap`
//! and `Store::try_lease` define them). The store has its own latency and
//! faults; what it answers is decided when the operation reaches it.

use std::collections::BTreeSet;

/// What the store keeps for the one credential scope of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rec {
    /// The fleet-wide generation (never lowers under a correct guard).
    pub generation: u64,
    /// The access token and its refresh token; `None` after the session
    /// was ended for the fleet (a tombstone).
    pub token: Option<Stored>,
}

/// A stored token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The server's access token id.
    pub access: u64,
    /// The refresh token to spend next.
    pub refresh: u64,
    /// Announced expiry, virtual ns.
    pub expires_at: u64,
}

/// An operation a guard sends to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Read the record.
    Load,
    /// Take the lease for `owner` for `ttl` ns.
    Lease {
        /// Who asks.
        owner: u64,
        /// For how long, ns.
        ttl: u64,
    },
    /// Give the lease back if `owner` still holds it.
    Release {
        /// Who gives it back.
        owner: u64,
    },
    /// Write `rec` iff the store holds `expected` and `rec` is newer.
    Swap {
        /// The generation the writer read (0: none).
        expected: u64,
        /// What to write.
        rec: Rec,
    },
    /// Planted bug: write `rec` whatever the store holds.
    Blind {
        /// What to write.
        rec: Rec,
    },
}

/// The store's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The record (`None`: empty store).
    Loaded(Option<Rec>),
    /// The lease, until this time; `None`: another owner holds it.
    Leased(Option<u64>),
    /// Whether the release freed our lease.
    Released(bool),
    /// The write happened.
    Done,
    /// The store held another generation: nothing written.
    Conflict(u64),
    /// The store could not be reached or failed the operation.
    Failed,
}

/// One write the store took, for the fleet check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    /// When.
    pub at: u64,
    /// The generation it replaced (0: none).
    pub over: u64,
    /// What it wrote.
    pub rec: Rec,
}

/// The store.
#[derive(Debug, Default)]
pub struct SimStore {
    /// The record.
    pub rec: Option<Rec>,
    lease: Option<(u64, u64)>,
    /// Every write taken, in order.
    pub writes: Vec<Write>,
    /// Bumped on every write: what waiters watch.
    pub changes: u64,
    stored: BTreeSet<u64>,
}

impl SimStore {
    /// Carries out `op` at `now`.
    pub fn apply(&mut self, now: u64, op: Op) -> Reply {
        match op {
            Op::Load => Reply::Loaded(self.rec),
            Op::Lease { owner, ttl } => match self.lease {
                Some((o, until)) if o != owner && until > now => Reply::Leased(None),
                _ => {
                    self.lease = Some((owner, now + ttl));
                    Reply::Leased(Some(now + ttl))
                }
            },
            Op::Release { owner } => match self.lease {
                Some((o, until)) if o == owner => {
                    self.lease = None;
                    Reply::Released(until > now)
                }
                _ => Reply::Released(false),
            },
            Op::Swap { expected, rec } => {
                let current = self.generation();
                if current != expected || rec.generation <= current {
                    return Reply::Conflict(current);
                }
                self.write(now, rec);
                Reply::Done
            }
            Op::Blind { rec } => {
                self.write(now, rec);
                Reply::Done
            }
        }
    }

    /// The generation the store holds (0: none).
    pub fn generation(&self) -> u64 {
        self.rec.map_or(0, |r| r.generation)
    }

    /// The lease holder's owner tag, if its lease runs at `now`.
    pub fn holder(&self, now: u64) -> Option<u64> {
        self.lease.filter(|&(_, until)| until > now).map(|(o, _)| o)
    }

    fn write(&mut self, now: u64, rec: Rec) {
        self.writes.push(Write {
            at: now,
            over: self.generation(),
            rec,
        });
        if let Some(t) = rec.token {
            self.stored.insert(t.access);
        }
        self.rec = Some(rec);
        self.changes += 1;
    }

    /// Whether the store has taken `access`, as of now.
    pub fn stored(&self, access: u64) -> bool {
        self.stored.contains(&access)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(generation: u64) -> Rec {
        Rec {
            generation,
            token: None,
        }
    }

    #[test]
    fn swap_lets_one_of_two_racers_win_and_never_goes_back() {
        let mut s = SimStore::default();
        assert_eq!(
            s.apply(
                0,
                Op::Swap {
                    expected: 0,
                    rec: rec(1)
                }
            ),
            Reply::Done
        );
        assert_eq!(
            s.apply(
                1,
                Op::Swap {
                    expected: 0,
                    rec: rec(1)
                }
            ),
            Reply::Conflict(1)
        );
        assert_eq!(
            s.apply(
                2,
                Op::Swap {
                    expected: 1,
                    rec: rec(1)
                }
            ),
            Reply::Conflict(1)
        );
        assert_eq!(s.generation(), 1);
    }

    #[test]
    fn a_lease_runs_out_and_only_its_owner_releases_it() {
        let mut s = SimStore::default();
        assert_eq!(
            s.apply(0, Op::Lease { owner: 1, ttl: 10 }),
            Reply::Leased(Some(10))
        );
        assert_eq!(
            s.apply(5, Op::Lease { owner: 2, ttl: 10 }),
            Reply::Leased(None)
        );
        assert_eq!(
            s.apply(10, Op::Lease { owner: 2, ttl: 10 }),
            Reply::Leased(Some(20))
        );
        assert_eq!(
            s.apply(11, Op::Release { owner: 1 }),
            Reply::Released(false)
        );
        assert_eq!(s.holder(11), Some(2));
        assert_eq!(s.apply(12, Op::Release { owner: 2 }), Reply::Released(true));
        assert_eq!(s.holder(12), None);
    }
}
