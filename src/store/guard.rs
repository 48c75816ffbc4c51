//! The refresher combinator that makes a fleet refresh once per expiry.
//!
//! Why a combinator: the handle already guarantees one refresher call at a
//! time within a process, and publishes a token only after its refresher
//! returns. Wrapping the refresher is therefore enough to extend both
//! across processes — a lease around the call, a re-read of the store
//! before it, a compare-and-swap after it — and neither the core nor the
//! handles need to know that a store exists.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;

use super::{
    After, GuardError, LeaseGrant, Owner, Record, Scope, Secret, Store, StoreError, StoredToken,
    Swap, UnixMillis,
};
use crate::{Clock, Fresh, Generation, Refresh, RefreshError, Sleep, SleepFuture, ThreadSleep};

/// What the user's refresher returns under a guard: the new token, and the
/// rotated credential if the token endpoint sent one (otherwise the old
/// credential is kept).
///
/// # Examples
///
/// ```
/// use tokenflight::store::Renewal;
/// use tokenflight::Fresh;
///
/// let renewal = Renewal::new(Fresh::new("access".to_string())).rotating("refresh-2");
/// assert!(!format!("{renewal:?}").contains("refresh-2"));
/// ```
#[derive(Debug, Clone)]
pub struct Renewal {
    token: Fresh<String>,
    credential: Option<Secret>,
}

impl Renewal {
    /// A renewal that keeps the stored credential.
    pub fn new(token: Fresh<String>) -> Self {
        Renewal {
            token,
            credential: None,
        }
    }

    /// The same, with the rotated credential to store for the next refresh.
    pub fn rotating(mut self, credential: impl Into<Secret>) -> Self {
        self.credential = Some(credential.into());
        self
    }
}

/// How a [`Guard`] waits and how long its lease lasts.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::store::GuardOptions;
///
/// let mut options = GuardOptions::default();
/// options.lease_ttl = Duration::from_secs(5);
/// options.min_call_window = Duration::from_secs(2);
/// assert!(options.min_call_window < options.lease_ttl);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GuardOptions {
    /// How long a lease lasts: longer than the token endpoint's worst
    /// latency, or a slow holder is taken over (and fenced) while its
    /// call is still out. Default 10 s.
    pub lease_ttl: Duration,
    /// The holder does not start the user's call with less lease left than
    /// this (at most half the lease); it takes the lease again. Default 5 s.
    pub min_call_window: Duration,
    /// How long one call waits for another process's lease before it fails
    /// with [`GuardError::Busy`] (transient: the handle backs off and
    /// tries again, and its waiters keep waiting). Default 8 s: below the
    /// handle's default `refresh_timeout` (10 s), so that a call that only
    /// waits ends by itself before the handle counts it timed out. A dead
    /// holder's lease is then taken over by the next call.
    pub wait_limit: Duration,
    /// A stored token is adopted only if it is good for at least this long
    /// yet (the core's safety margin). Default 5 s.
    pub safety_margin: Duration,
    /// Test-only planted bug: the holder does not re-read the store under
    /// the lease (F1 must catch it).
    #[cfg(feature = "mutants")]
    #[doc(hidden)]
    pub mutant_skip_reread: bool,
    /// Test-only planted bug: the holder writes over whatever the store
    /// holds instead of compare-and-swapping (F2 must catch it).
    #[cfg(feature = "mutants")]
    #[doc(hidden)]
    pub mutant_blind_write: bool,
}

impl Default for GuardOptions {
    fn default() -> Self {
        GuardOptions {
            lease_ttl: Duration::from_secs(10),
            min_call_window: Duration::from_secs(5),
            wait_limit: Duration::from_secs(8),
            safety_margin: Duration::from_secs(5),
            #[cfg(feature = "mutants")]
            mutant_skip_reread: false,
            #[cfg(feature = "mutants")]
            mutant_blind_write: false,
        }
    }
}

type Outcome<E> = Result<Fresh<String>, RefreshError<GuardError<E>>>;
type GuardFuture<E> = Pin<Box<dyn Future<Output = Outcome<E>> + Send + 'static>>;

/// A user's refresher wrapped so that the processes sharing a store make
/// one refresh per expiry between them, and every new token is stored
/// before the handle publishes it.
///
/// Every token the handle gets must come through the guard:
/// [`refresher`](Guard::refresher) for the handle, [`load`](Guard::load) at
/// start, [`login`](Guard::login) and [`logout`](Guard::logout). The guard
/// remembers the store generation of the token its handle holds; a refresh
/// is asked for *that* token, so a newer one in the store answers it.
///
/// Cloning is cheap; every clone is the same guard.
///
/// # Examples
///
/// See the [module docs](crate::store).
pub struct Guard<S, F> {
    inner: Arc<Inner<S, F>>,
}

impl<S, F> Clone for Guard<S, F> {
    fn clone(&self) -> Self {
        Guard {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S, F> std::fmt::Debug for Guard<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let memory = self.inner.memory.lock();
        f.debug_struct("Guard")
            .field("scope", &self.inner.scope)
            .field("held", &memory.held)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

struct Inner<S, F> {
    store: S,
    scope: Scope,
    refresher: F,
    options: GuardOptions,
    sleep: Arc<dyn Sleep>,
    memory: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    /// The store generation of the token the handle holds (never lowers).
    held: Generation,
    /// The newest record this process read or wrote: re-seeds a store that
    /// lost it (file deleted, Redis restarted empty), so the credential in
    /// memory is not lost with it.
    last: Option<Record>,
    /// A renewal the store failed to take (expected generation, record):
    /// written first on the next call, so a rotated credential survives a
    /// store outage in memory instead of being used again.
    pending: Option<(Generation, Record)>,
}

impl<S, F> Guard<S, F> {
    /// Wraps `refresher` (see also [`Store::guard`]). It gets the handle's
    /// clock and the stored credential, if any.
    pub fn new<Fut, E>(store: S, scope: Scope, refresher: F) -> Self
    where
        F: Fn(Clock, Option<Secret>) -> Fut,
        Fut: Future<Output = Result<Renewal, RefreshError<E>>>,
    {
        Guard {
            inner: Arc::new(Inner {
                store,
                scope,
                refresher,
                options: GuardOptions::default(),
                sleep: Arc::new(ThreadSleep),
                memory: Mutex::new(Memory::default()),
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner<S, F> {
        Arc::get_mut(&mut self.inner).expect("configure a guard before cloning it")
    }

    /// The same guard with `options`.
    ///
    /// # Panics
    ///
    /// If the guard was cloned already.
    pub fn with_options(mut self, options: GuardOptions) -> Self {
        self.inner_mut().options = options;
        self
    }

    /// The same guard, waiting with `sleep` (e.g. the executor's timer)
    /// instead of [`ThreadSleep`].
    ///
    /// # Panics
    ///
    /// If the guard was cloned already.
    pub fn with_sleep(mut self, sleep: impl Sleep) -> Self {
        self.inner_mut().sleep = Arc::new(sleep);
        self
    }

    /// The store generation of the token this process's handle holds.
    pub fn held(&self) -> Generation {
        self.inner.memory.lock().held
    }
}

impl<S: Store, F> Guard<S, F> {
    /// The token in the store, for the handle's
    /// [`set_token`](crate::Handle::set_token) at start: a restart needs
    /// no login. `None` if there is none or it has expired (the first
    /// request then refreshes with the stored credential).
    ///
    /// # Errors
    ///
    /// The store cannot be read.
    pub fn load(&self, clock: &Clock) -> Result<Option<Fresh<String>>, StoreError> {
        let record = self.inner.store.load(&self.inner.scope)?;
        let mut memory = self.inner.memory.lock();
        let Some(record) = record else {
            return Ok(None);
        };
        memory.held = memory.held.max(record.generation());
        let now = UnixMillis::now();
        let fresh = record
            .token()
            .filter(|t| t.expires_at().is_none_or(|at| at > now))
            .map(|t| to_fresh(t, clock, now));
        remember(&mut memory, record);
        Ok(fresh)
    }

    /// Stores a token obtained by a login, as a new generation, and returns
    /// it for the handle's [`set_token`](crate::Handle::set_token): stored
    /// first, then published.
    ///
    /// # Errors
    ///
    /// The store cannot be written.
    pub fn login(
        &self,
        clock: &Clock,
        token: Fresh<String>,
        credential: Option<Secret>,
    ) -> Result<Fresh<String>, StoreError> {
        let now = UnixMillis::now();
        let stored = StoredToken::new(
            token.token().clone(),
            credential,
            token
                .expires_at()
                .map(|at| UnixMillis::from_clock(at, clock, now)),
        );
        self.write_over(Some(stored))?;
        Ok(token)
    }

    /// Logs the scope out in the store: every process's next refresh fails
    /// with [`GuardError::LoggedOut`] (the generation goes on, so no older
    /// token can come back).
    ///
    /// # Errors
    ///
    /// The store cannot be written.
    pub fn logout(&self) -> Result<(), StoreError> {
        self.write_over(None)
    }

    /// A new generation over whatever the store holds (login, logout).
    fn write_over(&self, token: Option<StoredToken>) -> Result<(), StoreError> {
        let inner = &*self.inner;
        loop {
            let current = match inner.store.load(&inner.scope) {
                Ok(r) => r.map_or(Generation(0), |r| r.generation()),
                Err(StoreError::Corrupt { .. }) => Generation(0),
                Err(e) => return Err(e),
            };
            let generation = {
                let memory = inner.memory.lock();
                let last = memory
                    .last
                    .as_ref()
                    .map_or(Generation(0), Record::generation);
                next(current.max(memory.held).max(last))
            };
            let record = Record::new(generation, Owner::unique(), token.clone());
            // A conflict means another writer moved on meanwhile: write
            // over theirs with a newer generation (a login is the user's
            // word and wins), which takes as many tries as writers race.
            if inner.store.swap(&inner.scope, current, &record)? == Swap::Done {
                let mut memory = inner.memory.lock();
                memory.held = memory.held.max(generation);
                memory.pending = None;
                remember(&mut memory, record);
                return Ok(());
            }
        }
    }
}

impl<S, F> Guard<S, F>
where
    S: Store,
{
    /// The refresher to build the handle with.
    pub fn refresher<Fut, E>(
        &self,
    ) -> impl Fn(Refresh<String>) -> GuardFuture<E> + Send + Sync + 'static
    where
        F: Fn(Clock, Option<Secret>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Renewal, RefreshError<E>>> + Send + 'static,
        E: Send + 'static,
    {
        let guard = self.clone();
        move |refresh: Refresh<String>| {
            let (guard, clock) = (guard.clone(), refresh.clock().clone());
            Box::pin(async move { guard.refresh(clock).await })
        }
    }

    async fn refresh<Fut, E>(&self, clock: Clock) -> Outcome<E>
    where
        F: Fn(Clock, Option<Secret>) -> Fut,
        Fut: Future<Output = Result<Renewal, RefreshError<E>>>,
    {
        let inner = &*self.inner;
        let base = inner.memory.lock().held;
        let start = UnixMillis::now();
        let changes = inner.store.changes(&inner.scope);
        loop {
            let seen = changes.as_ref().map(|c| c.count());
            // Without the lease first: waiters of other processes end here
            // once the holder has stored the new generation.
            match inner.store.load(&inner.scope) {
                Ok(record) => {
                    if let Some(fresh) = self.adopt(record.as_ref(), base, &clock) {
                        return Ok(fresh);
                    }
                }
                Err(StoreError::Corrupt { .. }) => {}
                Err(e) => return Err(RefreshError::Transient(e.into())),
            }
            let owner = Owner::unique();
            let ttl = inner.options.lease_ttl;
            match inner.store.try_lease(&inner.scope, &owner, ttl) {
                Err(e) => return Err(RefreshError::Transient(e.into())),
                Ok(Some(grant)) => {
                    let held = Holding {
                        store: &inner.store,
                        scope: &inner.scope,
                        owner: &owner,
                    };
                    let outcome = self.holding(&clock, base, &owner, grant).await;
                    drop(held);
                    match outcome {
                        Some(outcome) => return outcome,
                        None => continue,
                    }
                }
                Ok(None) => {
                    let waited = UnixMillis::now().saturating_since(start);
                    if waited >= inner.options.wait_limit {
                        return Err(RefreshError::Transient(GuardError::Busy { waited }));
                    }
                    let tick = inner.sleep.sleep(inner.store.poll_interval());
                    let change = changes.as_ref().zip(seen).map(|(c, s)| c.after(s));
                    FirstOf { tick, change }.await;
                }
            }
        }
    }

    /// Under the lease: re-read, then adopt, or call the user's refresher
    /// and store its token. `None`: too little lease left to start the
    /// call; take it again.
    async fn holding<Fut, E>(
        &self,
        clock: &Clock,
        base: Generation,
        owner: &Owner,
        grant: LeaseGrant,
    ) -> Option<Outcome<E>>
    where
        F: Fn(Clock, Option<Secret>) -> Fut,
        Fut: Future<Output = Result<Renewal, RefreshError<E>>>,
    {
        let inner = &*self.inner;
        let transient = |e: StoreError| Some(Err(RefreshError::Transient(e.into())));
        let mut record = match inner.store.load(&inner.scope) {
            Ok(record) => record,
            // Nothing readable: an empty store, re-seeded from memory below.
            Err(StoreError::Corrupt { .. }) => None,
            Err(e) => return transient(e),
        };
        let mut expected = record.as_ref().map_or(Generation(0), Record::generation);
        let pending = inner.memory.lock().pending.take();
        if let Some((pending_expected, pending)) = pending {
            if pending_expected == expected {
                match inner.store.swap(&inner.scope, expected, &pending) {
                    Ok(Swap::Done) => {
                        expected = pending.generation();
                        record = Some(pending);
                    }
                    Ok(Swap::Conflict { .. }) => {}
                    Err(e) => {
                        inner.memory.lock().pending = Some((pending_expected, pending));
                        return transient(e);
                    }
                }
            }
        }
        #[cfg(feature = "mutants")]
        let reread = !inner.options.mutant_skip_reread;
        #[cfg(not(feature = "mutants"))]
        let reread = true;
        if let Some(fresh) = self.adopt(record.as_ref().filter(|_| reread), base, clock) {
            return Some(Ok(fresh));
        }
        // The newest record known: the store's, or ours if it lost it.
        let source = {
            let memory = inner.memory.lock();
            match (&record, &memory.last) {
                (Some(r), Some(l)) if l.generation() > r.generation() => Some(l.clone()),
                (Some(r), _) => Some(r.clone()),
                (None, l) => l.clone(),
            }
        };
        if source.as_ref().is_some_and(|r| r.token().is_none()) {
            return Some(Err(RefreshError::Permanent(GuardError::LoggedOut)));
        }
        // Clamped to half the lease: a window the lease can never give
        // would make the holder give up every lease it takes.
        let window = inner
            .options
            .min_call_window
            .min(inner.options.lease_ttl / 2);
        if grant.until.saturating_since(UnixMillis::now()) < window {
            return None;
        }
        let old = source.as_ref().and_then(Record::token);
        let credential = old.and_then(StoredToken::credential).cloned();
        let answer = (inner.refresher)(clock.clone(), credential.clone()).await;
        match answer {
            Ok(renewal) => {
                let now = UnixMillis::now();
                let expires_at = renewal
                    .token
                    .expires_at()
                    .map(|at| UnixMillis::from_clock(at, clock, now));
                let known = source.as_ref().map_or(Generation(0), Record::generation);
                let generation = next(expected.max(known).max(base));
                let stored = StoredToken::new(
                    renewal.token.token().clone(),
                    renewal.credential.or(credential),
                    expires_at,
                );
                #[allow(unused_mut)]
                let (mut expected, mut generation) = (expected, generation);
                #[cfg(feature = "mutants")]
                if inner.options.mutant_blind_write {
                    if let Ok(current) = inner.store.load(&inner.scope) {
                        expected = current.map_or(Generation(0), |r| r.generation());
                        generation = next(expected);
                    }
                }
                let new = Record::new(generation, owner.clone(), Some(stored));
                match self.persist(expected, &new, grant.until).await {
                    Ok(Swap::Done) => {
                        let mut memory = inner.memory.lock();
                        memory.held = memory.held.max(generation);
                        memory.pending = None;
                        remember(&mut memory, new);
                        tracing::debug!(generation = generation.0, "token store: refreshed");
                        Some(Ok(renewal.token))
                    }
                    Ok(Swap::Conflict { current }) => {
                        // Our lease ran out and someone else stored a newer
                        // generation: never publish ours over theirs.
                        inner.memory.lock().pending = None;
                        tracing::warn!(
                            ours = generation.0,
                            current = current.0,
                            "token store: refresh fenced by a newer generation"
                        );
                        let latest = inner.store.load(&inner.scope).ok().flatten();
                        Some(
                            self.adopt(latest.as_ref(), base, clock)
                                .ok_or(RefreshError::Transient(GuardError::Fenced)),
                        )
                    }
                    // Pending already: written first on the next call.
                    Err(e) => transient(e),
                }
            }
            Err(RefreshError::Permanent(e)) => {
                // Another process may have rotated the credential (our
                // lease ran out): the session is dead only if not.
                let latest = inner.store.load(&inner.scope).ok().flatten();
                let newer = latest.filter(|r| r.generation() > expected);
                if let Some(fresh) = self.adopt(newer.as_ref(), base, clock) {
                    return Some(Ok(fresh));
                }
                // Dead for the whole fleet: say so in the store, so that no
                // other process spends the same refused credential again.
                let ended = Record::new(next(expected.max(base)), owner.clone(), None);
                if let Ok(Swap::Done) = inner.store.swap(&inner.scope, expected, &ended) {
                    let mut memory = inner.memory.lock();
                    memory.held = memory.held.max(ended.generation());
                    remember(&mut memory, ended);
                }
                Some(Err(RefreshError::Permanent(GuardError::Refresher(e))))
            }
            Err(RefreshError::Transient(e)) => {
                Some(Err(RefreshError::Transient(GuardError::Refresher(e))))
            }
        }
    }

    /// Compare-and-swaps a fresh renewal, trying again after a failed
    /// write for as long as the lease lasts. The server has rotated the
    /// credential already: given back unwritten, the lease would let the
    /// next holder spend the old one, a reuse that revokes the login. The
    /// renewal is pending in memory from the first failure on, so a call
    /// dropped while it waits here still keeps it for the next call.
    async fn persist(
        &self,
        expected: Generation,
        new: &Record,
        until: UnixMillis,
    ) -> Result<Swap, StoreError> {
        let inner = &*self.inner;
        let mut delay = REWRITE_FIRST_DELAY;
        loop {
            let error = match inner.store.swap(&inner.scope, expected, new) {
                Err(e) => e,
                done_or_conflict => return done_or_conflict,
            };
            inner.memory.lock().pending = Some((expected, new.clone()));
            // The wait and as long again for the write itself: a write
            // that lands after the lease ran out would race a new holder.
            let left = until.saturating_since(UnixMillis::now());
            if left < delay.saturating_mul(2) {
                tracing::warn!(error = %error, "token store: renewal not stored, kept in memory");
                return Err(error);
            }
            tracing::debug!(error = %error, ?delay, "token store: renewal not stored, trying again");
            inner.sleep.sleep(delay).await;
            delay = (delay * 2).min(REWRITE_MAX_DELAY);
        }
    }

    /// The stored token, if it is newer than `base` and good for at least
    /// the safety margin; remembers what it saw.
    fn adopt(
        &self,
        record: Option<&Record>,
        base: Generation,
        clock: &Clock,
    ) -> Option<Fresh<String>> {
        let record = record?;
        let mut memory = self.inner.memory.lock();
        remember(&mut memory, record.clone());
        if record.generation() <= base {
            return None;
        }
        let now = UnixMillis::now();
        let margin = self.inner.options.safety_margin;
        let token = record.token().filter(|t| {
            t.expires_at()
                .is_none_or(|at| at > now.saturating_add(margin))
        })?;
        memory.held = memory.held.max(record.generation());
        tracing::debug!(
            generation = record.generation().0,
            "token store: adopted a newer token"
        );
        Some(to_fresh(token, clock, now))
    }
}

/// The first wait before a failed renewal write is tried again; it
/// doubles per failure up to [`REWRITE_MAX_DELAY`].
const REWRITE_FIRST_DELAY: Duration = Duration::from_millis(50);
const REWRITE_MAX_DELAY: Duration = Duration::from_secs(1);

fn next(g: Generation) -> Generation {
    Generation(g.0.saturating_add(1))
}

fn remember(memory: &mut Memory, record: Record) {
    if memory
        .last
        .as_ref()
        .is_none_or(|l| record.generation() >= l.generation())
    {
        memory.last = Some(record);
    }
}

fn to_fresh(token: &StoredToken, clock: &Clock, now: UnixMillis) -> Fresh<String> {
    let fresh = Fresh::new(token.access_token().expose().to_string());
    match token.expires_at() {
        Some(at) => fresh.expiring_at(at.on_clock(clock, now)),
        None => fresh,
    }
}

/// The lease, released when dropped: after the holder's work, and also when
/// the handle drops the refresh future mid-call (a login superseded it, or
/// it was abandoned), so that the other processes need not wait for the
/// lease to run out (F1's liveness). What the call had done is not undone:
/// a dropped call whose server answer was never stored is the documented
/// limit of a holder that dies.
struct Holding<'a, S: Store> {
    store: &'a S,
    scope: &'a Scope,
    owner: &'a Owner,
}

impl<S: Store> Drop for Holding<'_, S> {
    fn drop(&mut self) {
        if let Err(e) = self.store.release(self.scope, self.owner) {
            // It runs out by itself; the others wait that long.
            tracing::warn!(error = %e, "token store: lease not released");
        }
    }
}

/// Ends when the poll tick ends or a change is announced, whichever first.
struct FirstOf {
    tick: SleepFuture,
    change: Option<After>,
}

impl Future for FirstOf {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.tick.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        match self.change.as_mut() {
            Some(change) => Pin::new(change).poll(cx),
            None => Poll::Pending,
        }
    }
}
