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

#[cfg(not(tokenflight_loom))]
mod imp {
    use std::sync::Arc;
    use std::time::Instant;

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
    /// lock.
    #[derive(Debug)]
    pub(crate) struct SnapshotCell<S>(arc_swap::ArcSwapOption<S>);

    /// What a read of a [`SnapshotCell`] holds: an `arc-swap` guard, which
    /// costs no reference count (no shared cache line is written) unless a
    /// writer replaces the value while it is held.
    pub(crate) type SnapshotGuard<S> = arc_swap::Guard<Option<Arc<S>>>;

    impl<S> SnapshotCell<S> {
        pub(crate) fn empty() -> Self {
            SnapshotCell(arc_swap::ArcSwapOption::empty())
        }

        pub(crate) fn load(&self) -> SnapshotGuard<S> {
            self.0.load()
        }

        pub(crate) fn store(&self, value: Option<Arc<S>>) {
            self.0.store(value);
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

    /// The snapshot a guard holds.
    pub(crate) fn guarded<S>(guard: &SnapshotGuard<S>) -> Option<&Arc<S>> {
        Option::as_ref(guard)
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
    #[derive(Debug)]
    pub(crate) struct SnapshotCell<S>(loom::sync::RwLock<Option<Arc<S>>>);

    pub(crate) type SnapshotGuard<S> = Option<Arc<S>>;

    impl<S> SnapshotCell<S> {
        pub(crate) fn empty() -> Self {
            SnapshotCell(loom::sync::RwLock::new(None))
        }

        pub(crate) fn load(&self) -> SnapshotGuard<S> {
            self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
        }

        pub(crate) fn store(&self, value: Option<Arc<S>>) {
            *self.0.write().unwrap_or_else(|e| e.into_inner()) = value;
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

    /// The snapshot a guard holds.
    pub(crate) fn guarded<S>(guard: &SnapshotGuard<S>) -> Option<&Arc<S>> {
        guard.as_ref()
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
