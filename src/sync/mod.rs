//! The one place the front-ends get their synchronisation primitives from.
//!
//! Normally these are `parking_lot`, `std` (its `OnceLock` too) and
//! `arc-swap`. Under `--cfg tokenflight_loom` they are `loom`'s, so that the
//! loom suite checks the front-ends' real shared-state code in every
//! interleaving. The cfg name
//! is our own on purpose: a plain `--cfg loom` would also switch tokio (and
//! anything else that honours it) into loom mode.
//!
//! Only what the front-ends use is here, with one API for both builds: locks
//! return their guard directly (no poisoning), and the condition variable
//! takes and returns the guard.

mod channel;

pub(crate) use channel::{channel, Sender};
pub(crate) use imp::*;

/// A snapshot cell's value when there is nothing to read: it must read as
/// nothing to whoever loads it (the fast path finds its deadline passed).
pub(crate) trait Nothing {
    fn nothing() -> Self;
}

#[cfg(not(tokenflight_loom))]
mod imp {
    use std::sync::Arc;
    use std::time::Instant;

    use super::Nothing;

    /// A mutex without poisoning: a panic never runs while it is held.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(parking_lot::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }

        /// Whether someone holds it: the probe the planted bug that runs
        /// user code under the lock is caught with.
        #[cfg(feature = "mutants")]
        pub(crate) fn is_locked(&self) -> bool {
            self.0.is_locked()
        }
    }

    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(parking_lot::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(&mut guard);
            guard
        }

        /// Waits for a notification or until `deadline`, whichever is first.
        pub(crate) fn wait_until<'a, T>(
            &self,
            mut guard: MutexGuard<'a, T>,
            deadline: Instant,
        ) -> MutexGuard<'a, T> {
            let _ = self.0.wait_until(&mut guard, deadline);
            guard
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// The published snapshot: read without a lock, written under the core's
    /// lock. Never empty: "nothing to read" is a value of its own (see
    /// [`Nothing`]), so that a read is one `ArcSwap` load with no null test,
    /// where an `ArcSwapOption` cost that test and three instructions more
    /// in arc-swap's load.
    #[derive(Debug)]
    pub(crate) struct SnapshotCell<S> {
        cell: arc_swap::ArcSwap<S>,
        nothing: Arc<S>,
    }

    /// What a read of a [`SnapshotCell`] holds: an `arc-swap` guard, which
    /// costs no reference count (no shared cache line is written) unless a
    /// writer replaces the value while it is held.
    pub(crate) type SnapshotGuard<S> = arc_swap::Guard<Arc<S>>;

    impl<S: Nothing> SnapshotCell<S> {
        pub(crate) fn empty() -> Self {
            let nothing = Arc::new(S::nothing());
            SnapshotCell {
                cell: arc_swap::ArcSwap::new(Arc::clone(&nothing)),
                nothing,
            }
        }
    }

    impl<S> SnapshotCell<S> {
        pub(crate) fn load(&self) -> SnapshotGuard<S> {
            self.cell.load()
        }

        /// Stores `value`, or the value that reads as nothing.
        pub(crate) fn store(&self, value: Option<Arc<S>>) {
            self.cell
                .store(value.unwrap_or_else(|| Arc::clone(&self.nothing)));
        }
    }

    /// A value set once, under the core's lock, and read without a lock
    /// by whoever holds the cell: a round's outcome, which its waiters read
    /// when woken without queueing on the handle's lock.
    #[derive(Debug)]
    pub(crate) struct OnceCell<T>(std::sync::OnceLock<T>);

    impl<T> OnceCell<T> {
        pub(crate) fn new() -> Self {
            OnceCell(std::sync::OnceLock::new())
        }

        /// Sets the value; a cell is set at most once.
        pub(crate) fn set(&self, value: T) {
            let fresh = self.0.set(value).is_ok();
            debug_assert!(fresh, "a once-set cell was set twice");
        }

        /// `f` of the value, if it is set: a set that happened before (in
        /// any thread) is seen.
        pub(crate) fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
            self.0.get().map(f)
        }
    }

    /// Starts a named thread of the handle's own.
    pub(crate) fn spawn_thread(name: &str, f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .expect("the handle's thread could not be started");
    }

    std::thread_local! {
        /// See `crate::front::Driving`.
        pub(crate) static DRIVING: std::cell::RefCell<Vec<usize>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
}

#[cfg(tokenflight_loom)]
mod imp {
    use std::sync::Arc;
    use std::time::Instant;

    use super::Nothing;

    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            // Nothing panics while holding it, so it is never poisoned.
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }

        #[cfg(feature = "mutants")]
        pub(crate) fn is_locked(&self) -> bool {
            self.0.try_lock().is_err()
        }
    }

    #[derive(Debug, Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(guard).unwrap_or_else(|e| e.into_inner())
        }

        /// Loom models no time: this waits for a notification only, so loom
        /// models must not depend on timers.
        pub(crate) fn wait_until<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            _deadline: Instant,
        ) -> MutexGuard<'a, T> {
            self.wait(guard)
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// Loom has no `ArcSwap`; a loom `RwLock` over an `Arc` has the same
    /// contract for what we rely on (a load sees the latest completed store,
    /// or a later one) and lets loom explore every order of loads and
    /// stores. Only the "no reference count on the hot path" cost property
    /// is not modelled, which is a performance matter, not a correctness one.
    /// Never empty, as the `ArcSwap` cell is not.
    #[derive(Debug)]
    pub(crate) struct SnapshotCell<S> {
        cell: loom::sync::RwLock<Arc<S>>,
        nothing: Arc<S>,
    }

    pub(crate) type SnapshotGuard<S> = Arc<S>;

    impl<S: Nothing> SnapshotCell<S> {
        pub(crate) fn empty() -> Self {
            let nothing = Arc::new(S::nothing());
            SnapshotCell {
                cell: loom::sync::RwLock::new(Arc::clone(&nothing)),
                nothing,
            }
        }
    }

    impl<S> SnapshotCell<S> {
        pub(crate) fn load(&self) -> SnapshotGuard<S> {
            Arc::clone(&self.cell.read().unwrap_or_else(|e| e.into_inner()))
        }

        /// Stores `value`, or the value that reads as nothing.
        pub(crate) fn store(&self, value: Option<Arc<S>>) {
            *self.cell.write().unwrap_or_else(|e| e.into_inner()) =
                value.unwrap_or_else(|| Arc::clone(&self.nothing));
        }
    }

    /// Loom has no `OnceLock`; a loom `RwLock` over an `Option` has the
    /// same contract for what we rely on (a read sees a set that happened
    /// before it, and a value once set never changes) and lets loom explore
    /// every order of the set and the reads.
    #[derive(Debug)]
    pub(crate) struct OnceCell<T>(loom::sync::RwLock<Option<T>>);

    impl<T> OnceCell<T> {
        pub(crate) fn new() -> Self {
            OnceCell(loom::sync::RwLock::new(None))
        }

        pub(crate) fn set(&self, value: T) {
            let mut cell = self.0.write().unwrap_or_else(|e| e.into_inner());
            assert!(cell.is_none(), "a once-set cell was set twice");
            *cell = Some(value);
        }

        pub(crate) fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
            self.0
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(f)
        }
    }

    /// Starts a thread in the model (loom names none).
    pub(crate) fn spawn_thread(_name: &str, f: impl FnOnce() + Send + 'static) {
        drop(loom::thread::spawn(f));
    }

    loom::thread_local! {
        /// See `crate::front::Driving`.
        pub(crate) static DRIVING: std::cell::RefCell<Vec<usize>> =
            std::cell::RefCell::new(Vec::new());
    }
}
