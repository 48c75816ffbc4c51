//! A future kept in the handle's shared state and polled, outside the lock,
//! by whoever drives it.

/// A future kept in the shared state and polled by whichever waiter comes.
pub(super) enum Job<K, F> {
    Empty,
    /// Due, its future not made yet (making it runs user code, which never
    /// happens under the lock).
    Start(K),
    /// Made, waiting to be polled.
    Parked(K, F),
    /// A waiter is polling it outside the lock.
    Out(K),
}

impl<K: Copy + PartialEq, F> Job<K, F> {
    pub(super) fn key(&self) -> Option<K> {
        match self {
            Job::Empty => None,
            Job::Start(k) | Job::Parked(k, _) | Job::Out(k) => Some(*k),
        }
    }

    /// Whether it is due and its future not made yet.
    pub(super) fn is_start(&self) -> bool {
        matches!(self, Job::Start(_))
    }

    pub(super) fn is_waiting(&self) -> bool {
        matches!(self, Job::Start(_) | Job::Parked(..))
    }

    /// Takes the job out to poll it; `(key, None)` means it must be made.
    pub(super) fn take_out(&mut self) -> Option<(K, Option<F>)> {
        let taken = match std::mem::replace(self, Job::Empty) {
            Job::Start(k) => (k, None),
            Job::Parked(k, f) => (k, Some(f)),
            other => {
                *self = other;
                return None;
            }
        };
        *self = Job::Out(taken.0);
        Some(taken)
    }

    /// Makes `want` the job. Returns whether there is new work, and the
    /// job it replaces if that job's future was made: `(key, Some(future))`
    /// if parked, `(key, None)` if out (its poller brings it back).
    pub(super) fn retarget(&mut self, want: Option<K>) -> (bool, Option<(K, Option<F>)>) {
        if self.key() == want {
            return (false, None);
        }
        let old = std::mem::replace(self, want.map_or(Job::Empty, Job::Start));
        let old = match old {
            Job::Parked(k, f) => Some((k, Some(f))),
            Job::Out(k) => Some((k, None)),
            Job::Empty | Job::Start(_) => None,
        };
        (want.is_some(), old)
    }

    /// Brings back a job taken out: parks a pending future if the job is
    /// still wanted, otherwise hands it back to be dropped.
    pub(super) fn bring_back(&mut self, key: K, pending: Option<F>) -> Option<F> {
        if !matches!(self, Job::Out(k) if *k == key) {
            return pending;
        }
        *self = match pending {
            Some(f) => Job::Parked(key, f),
            None => Job::Empty,
        };
        None
    }
}
