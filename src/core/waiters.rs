//! A round's waiters: request ids and how often each has been sent, kept
//! as one vector sorted by id.
//!
//! A round is answered far more often than it is searched: every waiter is
//! resumed (or failed) together, in ascending id order, which the action
//! sequences of the ports, the conformance vectors and the oracle all
//! depend on. A sorted vector walks that order in one pass with no node to
//! free, and costs 16 B a waiter; ids are handed out increasing, so a
//! waiter joins at the end in O(1). Ids out of order (the core accepts any
//! id) are inserted in place.
//!
//! A cancelled waiter leaves a tombstone (found by binary search, O(log n)),
//! so cancelling a whole herd one by one is not quadratic. Tombstones are
//! swept out as soon as they outnumber the live waiters, so the vector
//! holds at most twice the live waiters (plus one), and its capacity is
//! given back when a sweep leaves it mostly empty: the round's memory
//! follows its live waiters, at most `max_waiters` (S7).

use std::hash::{Hash, Hasher};

use crate::RequestId;

/// The waiters of one round, ascending by id; see the module docs.
#[derive(Clone, Default)]
pub(super) struct Waiters {
    /// Sorted by id, no id twice; `None` is a cancelled waiter's tombstone.
    entries: Vec<(RequestId, Option<u32>)>,
    /// The `Some` entries; tombstones are `entries.len() - live`, never
    /// more than `live` after any operation.
    live: usize,
}

impl Waiters {
    /// No waiters; allocates nothing.
    pub(super) const fn new() -> Self {
        Self {
            entries: Vec::new(),
            live: 0,
        }
    }

    /// One waiter, `id`, sent `sends` times so far.
    pub(super) fn one(id: RequestId, sends: u32) -> Self {
        Self {
            entries: vec![(id, Some(sends))],
            live: 1,
        }
    }

    /// How many requests wait (tombstones are not counted).
    pub(super) fn len(&self) -> usize {
        self.live
    }

    pub(super) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Whether `id` waits.
    pub(super) fn contains(&self, id: RequestId) -> bool {
        if self.after_last(id) {
            return false;
        }
        let at = self.find(id).ok();
        at.and_then(|at| self.entries.get(at))
            .is_some_and(|(_, sends)| sends.is_some())
    }

    /// Adds `id`, sent `sends` times. Returns `false`, changing nothing, if
    /// it already waits.
    pub(super) fn insert(&mut self, id: RequestId, sends: u32) -> bool {
        // The usual case: ids are handed out increasing.
        if self.after_last(id) {
            self.entries.push((id, Some(sends)));
            self.live += 1;
            return true;
        }
        match self.find(id) {
            Ok(at) => match self.entries.get_mut(at) {
                Some((_, slot @ None)) => *slot = Some(sends),
                _ => return false,
            },
            Err(at) => self.entries.insert(at, (id, Some(sends))),
        }
        self.live += 1;
        true
    }

    /// Removes `id`; returns how often it was sent, or `None` if it did
    /// not wait.
    pub(super) fn remove(&mut self, id: RequestId) -> Option<u32> {
        let at = self.find(id).ok()?;
        let sends = self.entries.get_mut(at)?.1.take()?;
        self.live -= 1;
        self.sweep();
        Some(sends)
    }

    /// Removes the waiter with the lowest id; returns it and its sends.
    pub(super) fn pop_first(&mut self) -> Option<(RequestId, u32)> {
        let (id, slot) = self.entries.iter_mut().find(|(_, s)| s.is_some())?;
        let first = (*id, slot.take()?);
        self.live -= 1;
        self.sweep();
        Some(first)
    }

    /// The waiters and their sends, ascending by id.
    pub(super) fn iter(&self) -> impl Iterator<Item = (RequestId, u32)> + '_ {
        self.entries
            .iter()
            .filter_map(|&(id, sends)| Some((id, sends?)))
    }

    /// The waiters' ids, ascending.
    pub(super) fn into_ids(self) -> impl Iterator<Item = RequestId> {
        self.into_iter().map(|(id, _)| id)
    }

    /// Whether `id` is above every id held, live or not: it joins at the end.
    fn after_last(&self, id: RequestId) -> bool {
        self.entries.last().is_none_or(|&(last, _)| last < id)
    }

    fn find(&self, id: RequestId) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&id, |&(id, _)| id)
    }

    /// Drops the tombstones once they outnumber the live waiters: each
    /// sweep costs the entries it walks, at most twice the tombstones it
    /// drops, so removals stay O(log n) amortised.
    fn sweep(&mut self) {
        let dead = self.entries.len() - self.live;
        if dead <= self.live {
            return;
        }
        self.entries.retain(|(_, sends)| sends.is_some());
        // Give memory back after a mass cancellation, keeping room to grow.
        if self.entries.capacity() > 4 * self.live {
            self.entries.shrink_to(2 * self.live);
        }
    }
}

impl IntoIterator for Waiters {
    type Item = (RequestId, u32);
    type IntoIter = std::iter::FilterMap<
        std::vec::IntoIter<(RequestId, Option<u32>)>,
        fn((RequestId, Option<u32>)) -> Option<(RequestId, u32)>,
    >;

    /// The waiters and their sends, ascending by id.
    fn into_iter(self) -> Self::IntoIter {
        fn alive((id, sends): (RequestId, Option<u32>)) -> Option<(RequestId, u32)> {
            Some((id, sends?))
        }
        self.entries.into_iter().filter_map(alive as fn(_) -> _)
    }
}

impl FromIterator<(RequestId, u32)> for Waiters {
    /// Later duplicates of an id are refused, as by [`Waiters::insert`].
    fn from_iter<I: IntoIterator<Item = (RequestId, u32)>>(iter: I) -> Self {
        let mut waiters = Self::new();
        for (id, sends) in iter {
            waiters.insert(id, sends);
        }
        waiters
    }
}

// Equality and hashing see the live waiters only: where tombstones lie is
// history, not state, and two rounds with the same waiters are the same
// state to the model checker.
impl PartialEq for Waiters {
    fn eq(&self, other: &Self) -> bool {
        self.live == other.live && self.iter().eq(other.iter())
    }
}

impl Eq for Waiters {}

impl Hash for Waiters {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.live.hash(state);
        for waiter in self.iter() {
            waiter.hash(state);
        }
    }
}

impl std::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::hash::BuildHasher;

    use super::*;

    fn id(n: u64) -> RequestId {
        RequestId(n)
    }

    fn ids(waiters: &Waiters) -> Vec<u64> {
        waiters.iter().map(|(id, _)| id.0).collect()
    }

    /// Tombstones never outnumber the live waiters.
    fn assert_bounded(waiters: &Waiters) {
        let dead = waiters.entries.len() - waiters.live;
        assert!(
            dead <= waiters.live,
            "{dead} tombstones, {} live",
            waiters.live
        );
        assert_eq!(
            waiters.live,
            waiters.entries.iter().filter(|(_, s)| s.is_some()).count()
        );
        assert!(
            waiters.entries.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted"
        );
    }

    #[test]
    fn increasing_ids_keep_their_order_and_sends() {
        let waiters: Waiters = (1..=5).map(|n| (id(n), n as u32 * 10)).collect();
        assert_eq!(waiters.len(), 5);
        assert_eq!(
            waiters.into_iter().collect::<Vec<_>>(),
            (1..=5).map(|n| (id(n), n as u32 * 10)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn out_of_order_ids_are_sorted_in() {
        let mut waiters = Waiters::new();
        for n in [5, 1, 9, 3, 7, 2] {
            assert!(waiters.insert(id(n), 0));
            assert_bounded(&waiters);
        }
        assert_eq!(ids(&waiters), [1, 2, 3, 5, 7, 9]);
    }

    #[test]
    fn a_duplicate_is_refused_and_keeps_the_first_sends() {
        let mut waiters = Waiters::one(id(4), 1);
        assert!(waiters.insert(id(8), 1));
        assert!(!waiters.insert(id(4), 7), "duplicate, not at the end");
        assert!(!waiters.insert(id(8), 7), "duplicate at the end");
        assert_eq!(waiters.len(), 2);
        assert_eq!(waiters.remove(id(4)), Some(1));
        assert_eq!(waiters.remove(id(8)), Some(1));
    }

    #[test]
    fn removing_an_absent_id_changes_nothing() {
        let mut waiters: Waiters = [(id(2), 0), (id(4), 0)].into_iter().collect();
        assert_eq!(waiters.remove(id(3)), None, "between");
        assert_eq!(waiters.remove(id(9)), None, "past the end");
        assert_eq!(waiters.remove(id(2)), Some(0));
        assert_eq!(waiters.remove(id(2)), None, "already removed");
        assert!(!waiters.contains(id(2)));
        assert!(waiters.contains(id(4)));
        assert_eq!(waiters.len(), 1);
        assert_bounded(&waiters);
    }

    #[test]
    fn a_removed_id_may_wait_again_in_its_place() {
        let mut waiters: Waiters = (1..=4).map(|n| (id(n), 0)).collect();
        assert_eq!(waiters.remove(id(2)), Some(0));
        assert!(waiters.insert(id(2), 3), "revives its tombstone");
        assert_eq!(ids(&waiters), [1, 2, 3, 4]);
        assert_eq!(waiters.remove(id(2)), Some(3));
    }

    #[test]
    fn pop_first_takes_the_lowest_live_id() {
        let mut waiters: Waiters = (1..=4).map(|n| (id(n), n as u32)).collect();
        waiters.remove(id(1));
        assert_eq!(waiters.pop_first(), Some((id(2), 2)));
        assert_eq!(ids(&waiters), [3, 4]);
        waiters.pop_first();
        waiters.pop_first();
        assert_eq!(waiters.pop_first(), None);
        assert!(waiters.is_empty());
    }

    #[test]
    fn mass_removal_sweeps_the_tombstones_and_gives_memory_back() {
        let n = 10_000;
        let mut waiters: Waiters = (0..n).map(|n| (id(n), 0)).collect();
        let grown = waiters.entries.capacity();
        for n in (0..n).filter(|n| n % 100 != 0) {
            assert_eq!(waiters.remove(id(n)), Some(0));
            assert_bounded(&waiters);
        }
        assert_eq!(waiters.len(), 100);
        assert!(
            waiters.entries.len() <= 200,
            "{} entries",
            waiters.entries.len()
        );
        assert!(
            waiters.entries.capacity() <= 4 * 100 && waiters.entries.capacity() < grown,
            "capacity {} after growing to {grown}",
            waiters.entries.capacity()
        );
        // Then new waiters join, at the end and in between.
        assert!(waiters.insert(id(n), 0));
        assert!(waiters.insert(id(1), 0));
        let mut expected: Vec<u64> = (0..n).step_by(100).collect();
        expected.extend([n]);
        expected.insert(1, 1);
        assert_eq!(ids(&waiters), expected);
        for n in expected {
            waiters.remove(id(n));
            assert_bounded(&waiters);
        }
        assert!(waiters.is_empty());
        assert_eq!(waiters.entries.len(), 0, "the last removal sweeps");
    }

    #[test]
    fn equal_waiters_compare_and_hash_equal_whatever_their_tombstones() {
        let mut swept: Waiters = (1..=3).map(|n| (id(n), 0)).collect();
        let mut tombstoned = swept.clone();
        tombstoned.insert(id(4), 0);
        tombstoned.remove(id(4));
        swept.remove(id(1));
        swept.remove(id(2));
        swept.insert(id(2), 0);
        tombstoned.remove(id(1));
        assert_ne!(swept.entries, tombstoned.entries, "laid out differently");
        assert_eq!(swept, tombstoned);
        let hasher = std::collections::hash_map::RandomState::new();
        assert_eq!(hasher.hash_one(&swept), hasher.hash_one(&tombstoned));
        tombstoned.remove(id(3));
        assert_ne!(swept, tombstoned);
    }

    /// Any sequence of inserts and removals leaves the same waiters, in the
    /// same order, as the map it replaces.
    #[test]
    fn behaves_as_an_ordered_map() {
        let mut waiters = Waiters::new();
        let mut map = BTreeMap::new();
        // A fixed pseudo-random walk over a small id space, so ids collide,
        // come back and arrive out of order.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = x % 64;
            match x >> 60 {
                0..=8 => {
                    let fresh = !map.contains_key(&n);
                    if fresh {
                        map.insert(n, step);
                    }
                    assert_eq!(waiters.insert(id(n), step), fresh);
                }
                9..=14 => assert_eq!(waiters.remove(id(n)), map.remove(&n)),
                _ => assert_eq!(
                    waiters.pop_first(),
                    map.pop_first().map(|(n, s)| (id(n), s))
                ),
            }
            assert_eq!(waiters.len(), map.len());
            assert_eq!(waiters.contains(id(n)), map.contains_key(&n));
            assert_bounded(&waiters);
        }
        assert!(waiters
            .into_iter()
            .eq(map.into_iter().map(|(n, s)| (id(n), s))));
    }
}
