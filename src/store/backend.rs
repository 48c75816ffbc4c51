//! The trait every backend implements: a record per scope read and written
//! by compare-and-swap on its generation, and a lease with an owner tag.

use std::sync::Arc;
use std::time::Duration;

use std::future::Future;

use super::{Changes, Guard, Owner, Record, Renewal, Scope, Secret, StoreError, UnixMillis};
use crate::{Clock, Generation, RefreshError};

/// The outcome of [`Store::swap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Swap {
    /// The record is written.
    Done,
    /// The store held another generation: nothing was written.
    Conflict {
        /// The generation the store holds (zero: no record).
        current: Generation,
    },
}

/// A lease granted by [`Store::try_lease`], valid until `until` on the wall
/// clock unless released earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGrant {
    /// When the lease runs out.
    pub until: UnixMillis,
}

/// Where tokens are kept and how processes take turns refreshing them.
///
/// Every call is short and bounded (a file lock held for one read or write,
/// a Redis round trip with timeouts): the store never waits for another
/// process. Waiting is the [`Guard`]'s job.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::store::{FileStore, Owner, Record, Scope, Store, Swap};
/// use tokenflight::Generation;
///
/// let dir = std::env::temp_dir().join(format!("tf-doc-trait-{}", std::process::id()));
/// let store = FileStore::open(&dir).unwrap();
/// let scope = Scope::new("svc");
/// let owner = Owner::unique();
///
/// let first = Record::new(Generation(1), owner.clone(), None);
/// assert_eq!(store.swap(&scope, Generation(0), &first).unwrap(), Swap::Done);
/// // A writer that still believes in generation 0 lost the race.
/// let stale = Record::new(Generation(1), owner.clone(), None);
/// assert_eq!(
///     store.swap(&scope, Generation(0), &stale).unwrap(),
///     Swap::Conflict { current: Generation(1) }
/// );
///
/// assert!(store.try_lease(&scope, &owner, Duration::from_secs(1)).unwrap().is_some());
/// assert!(store.try_lease(&scope, &Owner::unique(), Duration::from_secs(1)).unwrap().is_none());
/// assert!(store.release(&scope, &owner).unwrap());
/// # std::fs::remove_dir_all(&dir).ok();
/// ```
pub trait Store: Send + Sync + 'static {
    /// The scope's record, if any.
    ///
    /// # Errors
    ///
    /// The backend cannot be read, or holds nothing readable.
    fn load(&self, scope: &Scope) -> Result<Option<Record>, StoreError>;

    /// Writes `record` iff the store holds generation `expected` (zero: no
    /// record) and `record` is newer than it. Atomic: of two writers that
    /// expect the same generation, exactly one succeeds.
    ///
    /// # Errors
    ///
    /// The backend cannot be written; then nothing was (the old record
    /// stays whole).
    fn swap(
        &self,
        scope: &Scope,
        expected: Generation,
        record: &Record,
    ) -> Result<Swap, StoreError>;

    /// Takes the scope's lease for `owner` for `ttl`, unless another owner
    /// holds an unexpired one (then `None`).
    ///
    /// # Errors
    ///
    /// The backend cannot be reached.
    fn try_lease(
        &self,
        scope: &Scope,
        owner: &Owner,
        ttl: Duration,
    ) -> Result<Option<LeaseGrant>, StoreError>;

    /// Gives the lease back if `owner` still holds it; `false` if it had
    /// run out (and maybe been taken by someone else, who keeps it).
    ///
    /// # Errors
    ///
    /// The backend cannot be reached; the lease then runs out by itself.
    fn release(&self, scope: &Scope, owner: &Owner) -> Result<bool, StoreError>;

    /// Where the backend announces that a scope's record changed, if it can
    /// (Redis pub/sub); waiters poll as well, so this only makes them wake
    /// sooner.
    fn changes(&self, scope: &Scope) -> Option<Changes> {
        let _ = scope;
        None
    }

    /// How often a waiter re-reads the store while another process holds
    /// the lease.
    fn poll_interval(&self) -> Duration {
        Duration::from_millis(5)
    }

    /// Wraps `refresher` so that the processes sharing this store make one
    /// refresh between them per expiry (see [`Guard`]).
    fn guard<F, Fut, E>(self, scope: Scope, refresher: F) -> Guard<Self, F>
    where
        Self: Sized,
        F: Fn(Clock, Option<Secret>) -> Fut,
        Fut: Future<Output = Result<Renewal, RefreshError<E>>>,
    {
        Guard::new(self, scope, refresher)
    }
}

impl<S: Store + ?Sized> Store for Arc<S> {
    fn load(&self, scope: &Scope) -> Result<Option<Record>, StoreError> {
        (**self).load(scope)
    }

    fn swap(
        &self,
        scope: &Scope,
        expected: Generation,
        record: &Record,
    ) -> Result<Swap, StoreError> {
        (**self).swap(scope, expected, record)
    }

    fn try_lease(
        &self,
        scope: &Scope,
        owner: &Owner,
        ttl: Duration,
    ) -> Result<Option<LeaseGrant>, StoreError> {
        (**self).try_lease(scope, owner, ttl)
    }

    fn release(&self, scope: &Scope, owner: &Owner) -> Result<bool, StoreError> {
        (**self).release(scope, owner)
    }

    fn changes(&self, scope: &Scope) -> Option<Changes> {
        (**self).changes(scope)
    }

    fn poll_interval(&self) -> Duration {
        (**self).poll_interval()
    }
}
