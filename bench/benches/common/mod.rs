//! What users would build or pick instead of tokenflight, written the way
//! they usually are, shared by the hot-path and herd benches.
//!
//! Every alternative hands out the token the way its design allows: an
//! `ArcSwap` guard for the floor, an `Arc<Token>` clone wherever the token
//! must outlive a lock guard.

// Benches measure wall time: reading the clock is the point here.
#![allow(clippy::disallowed_methods)]
// Each bench binary uses a different part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

/// A token as the alternatives keep it: the value and when it expires.
#[derive(Debug)]
pub(crate) struct Token {
    pub(crate) value: String,
    pub(crate) expires_at: Instant,
}

impl Token {
    pub(crate) fn new(value: &str, lifetime: Duration) -> Self {
        Token {
            value: value.to_string(),
            expires_at: Instant::now() + lifetime,
        }
    }

    /// A token that has already expired.
    pub(crate) fn expired(value: &str) -> Self {
        Token {
            value: value.to_string(),
            expires_at: Instant::now(),
        }
    }

    /// The expiry check every alternative does on every call.
    #[inline]
    pub(crate) fn is_valid(&self) -> bool {
        Instant::now() < self.expires_at
    }
}

/// How an alternative gets a new token.
pub(crate) type RefreshFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Token> + Send>> + Send + Sync>;

/// A refresher for the hot path, where the token never expires.
pub(crate) fn never_called() -> RefreshFn {
    Arc::new(|| Box::pin(async { unreachable!("the hot path never refreshes") }))
}

/// Polls a future on this thread until it is ready, without an executor's
/// overhead: every async contender pays the same. Uncontended, the hot path
/// is ready at the first poll; when two threads contend for an async lock,
/// the loser is re-polled (spinning) until the lock is handed to it, which
/// is what its task would do after being woken, minus the scheduler.
///
/// Always inlined, as the poll of a small future awaited inside the
/// caller's own `async fn` is: left to itself, the compiler kept this out
/// of line, and every async contender paid a call, a stack frame and a copy
/// of its future that the floors do not.
#[inline(always)]
pub(crate) fn poll_once<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::hint::spin_loop(),
        }
    }
}

/// Polls a future once, as [`poll_once`] does, for a future that must be
/// ready at once: tokenflight's `ticket()` on a usable token never waits,
/// so `Pending` means the measurement went wrong (the token stopped being
/// usable), and spinning would hide it.
#[inline(always)]
pub(crate) fn ready_now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a hot-path call waited: the token was not usable"),
    }
}

/// The usual async recipe: an `ArcSwap` read, and on expiry a
/// `tokio::sync::Mutex` so that one caller refreshes while the others wait
/// for the lock and then find the new token (double-checked).
pub(crate) struct SwapMutex {
    token: ArcSwap<Token>,
    refreshing: tokio::sync::Mutex<()>,
    refresh: RefreshFn,
}

impl SwapMutex {
    pub(crate) fn new(token: Token, refresh: RefreshFn) -> Self {
        SwapMutex {
            token: ArcSwap::from_pointee(token),
            refreshing: tokio::sync::Mutex::new(()),
            refresh,
        }
    }

    pub(crate) fn expire(&self) {
        self.token.store(Arc::new(Token::expired("old")));
    }

    pub(crate) async fn get(&self) -> Arc<Token> {
        let current = self.token.load_full();
        if current.is_valid() {
            return current;
        }
        let _refreshing = self.refreshing.lock().await;
        let current = self.token.load_full();
        if current.is_valid() {
            return current;
        }
        let fresh = Arc::new((self.refresh)().await);
        self.token.store(Arc::clone(&fresh));
        fresh
    }
}

/// A `parking_lot::RwLock`: a blocking lock cannot be held across the
/// refresh's `.await`, so on expiry every caller refreshes on its own.
pub(crate) struct PlRwLock {
    token: parking_lot::RwLock<Arc<Token>>,
    refresh: RefreshFn,
}

impl PlRwLock {
    pub(crate) fn new(token: Token, refresh: RefreshFn) -> Self {
        PlRwLock {
            token: parking_lot::RwLock::new(Arc::new(token)),
            refresh,
        }
    }

    pub(crate) fn expire(&self) {
        *self.token.write() = Arc::new(Token::expired("old"));
    }

    /// The hot path alone, as a blocking caller uses it.
    #[inline]
    pub(crate) fn try_get(&self) -> Option<Arc<Token>> {
        let token = self.token.read();
        token.is_valid().then(|| Arc::clone(&token))
    }

    pub(crate) async fn get(&self) -> Arc<Token> {
        if let Some(token) = self.try_get() {
            return token;
        }
        let fresh = Arc::new((self.refresh)().await);
        *self.token.write() = Arc::clone(&fresh);
        fresh
    }
}

/// A `tokio::sync::RwLock`: read, and on expiry take the write lock,
/// check again and refresh while holding it.
pub(crate) struct TokioRwLock {
    token: tokio::sync::RwLock<Arc<Token>>,
    refresh: RefreshFn,
}

impl TokioRwLock {
    pub(crate) fn new(token: Token, refresh: RefreshFn) -> Self {
        TokioRwLock {
            token: tokio::sync::RwLock::new(Arc::new(token)),
            refresh,
        }
    }

    pub(crate) fn expire(&self) {
        *self.token.try_write().expect("no one holds it") = Arc::new(Token::expired("old"));
    }

    pub(crate) async fn get(&self) -> Arc<Token> {
        {
            let token = self.token.read().await;
            if token.is_valid() {
                return Arc::clone(&token);
            }
        }
        let mut token = self.token.write().await;
        if !token.is_valid() {
            *token = Arc::new((self.refresh)().await);
        }
        Arc::clone(&token)
    }
}

/// The simplest recipe: one `tokio::sync::Mutex` around the token, held
/// across the refresh, taken on every call.
pub(crate) struct MutexHeld {
    token: tokio::sync::Mutex<Arc<Token>>,
    refresh: RefreshFn,
}

impl MutexHeld {
    pub(crate) fn new(token: Token, refresh: RefreshFn) -> Self {
        MutexHeld {
            token: tokio::sync::Mutex::new(Arc::new(token)),
            refresh,
        }
    }

    pub(crate) fn expire(&self) {
        *self.token.try_lock().expect("no one holds it") = Arc::new(Token::expired("old"));
    }

    pub(crate) async fn get(&self) -> Arc<Token> {
        let mut token = self.token.lock().await;
        if !token.is_valid() {
            *token = Arc::new((self.refresh)().await);
        }
        Arc::clone(&token)
    }
}

/// A cache: `moka::future::Cache::get_with` runs one initialiser per key
/// and makes the other callers wait for it; expiry is the cache's
/// time-to-live, set a little under the token's lifetime.
pub(crate) struct Moka {
    cache: moka::future::Cache<u8, Arc<Token>>,
    refresh: RefreshFn,
}

impl Moka {
    pub(crate) fn new(ttl: Duration, refresh: RefreshFn) -> Self {
        Moka {
            cache: moka::future::Cache::builder()
                .max_capacity(1)
                .time_to_live(ttl)
                .build(),
            refresh,
        }
    }

    pub(crate) async fn expire(&self) {
        self.cache.invalidate(&0).await;
    }

    pub(crate) async fn get(&self) -> Arc<Token> {
        let refresh = &self.refresh;
        self.cache
            .get_with(0, async move { Arc::new(refresh().await) })
            .await
    }
}
