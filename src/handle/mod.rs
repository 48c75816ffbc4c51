//! The async handle: works under any executor, and the refresh never
//! depends on one caller staying alive.
//!
//! # How it waits
//!
//! The refresh runs as a future kept in the handle's shared state, not in
//! any caller's future. With a [`Spawn`] (under the `tokio` feature, the
//! runtime it is used in), a driver task of the handle's own polls it.
//! Otherwise whichever waiting request is polled after the refresh (or a
//! timer) was woken takes that future out, polls it outside the lock with a
//! waker of the handle's own (the beacon), and puts it back. The beacon
//! wakes one *appointed* waiter, the last one polled; a waiter that leaves
//! (done, or dropped) hands the appointment on and wakes its successor. So
//! however many callers go away, the refresh is driven as long as anyone
//! waits for it; if no one waits, the request that started it made the
//! call at once, and a wake withholds the fast path's snapshot so that the
//! next request polls it before anything else.
//!
//! # Late answers
//!
//! An attempt that times out is not dropped while its call is outstanding
//! ([`Core::outstanding_call`](crate::core::Core::outstanding_call)): with
//! single-use rotating refresh tokens, its answer may hold the only refresh
//! token the server still honours, and the core starts no other call until
//! it answers. Its future stays the refresh job, is polled the same way, and
//! its answer goes to the core when it comes; it is dropped (after
//! unlocking) when the core abandons the call
//! ([`Action::AbandonRefresh`](crate::core::Action::AbandonRefresh)).

mod builder;
mod job;
#[cfg(feature = "mutants")]
mod mutant;
mod shared;
mod sleep;
mod spawn;
mod waiter;

use std::future::Future;
use std::sync::Arc;

pub use builder::Builder;
#[cfg(feature = "mutants")]
pub use mutant::Mutant;
#[cfg(feature = "tokio")]
pub use sleep::TokioSleep;
pub use sleep::{Sleep, SleepFuture, ThreadSleep};
#[cfg(feature = "tokio")]
pub use spawn::TokioSpawn;
pub use spawn::{Spawn, Task};

use crate::front::{HandleError, Refresh, Reply, Status, Ticket};
use crate::{BuildError, Config, Error, Fresh, Generation, Stats};
use shared::{RefreshResult, Shared};
use waiter::{Asking, Waiting};

/// Shares one access token among many async requests and refreshes it once
/// per expiry.
///
/// Cloning is cheap; every clone is the same handle. It needs no particular
/// executor: the refresh is driven by the requests that wait for it (see
/// the module docs), and timers come from a [`Sleep`] ([`ThreadSleep`] by
/// default).
///
/// # Examples
///
/// ```
/// use tokenflight::{Config, Fresh, Handle, RefreshError, Reply};
///
/// let handle = Handle::new(Config::default(), |_| async {
///     Ok::<_, RefreshError<std::io::Error>>(Fresh::new("token-1".to_string()))
/// })
/// .unwrap();
///
/// let body = futures::executor::block_on(handle.call(|token: &String| {
///     let header = format!("Bearer {token}");
///     async move { Reply::Done(header) }
/// }));
/// assert_eq!(body.unwrap(), "Bearer token-1");
/// ```
pub struct Handle<T, E> {
    shared: Arc<Shared<T, E>>,
}

impl<T, E> Clone for Handle<T, E> {
    fn clone(&self) -> Self {
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T, E> std::fmt::Debug for Handle<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.state.lock();
        f.debug_struct("Handle")
            .field("core", &state.board.core)
            .finish_non_exhaustive()
    }
}

impl<T, E> Handle<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// A builder for a handle whose `refresher` gets each new token: it is
    /// told what it replaces ([`Refresh`]) and answers with a [`Fresh`]
    /// token (or a [`RefreshError`](crate::RefreshError) that says whether
    /// to retry).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokenflight::{Config, Fresh, Handle, Refresh, RefreshError};
    ///
    /// let handle = Handle::builder(|refresh: Refresh<String>| async move {
    ///     let n = refresh.generation().0 + 1;
    ///     Ok::<_, RefreshError<()>>(
    ///         Fresh::new(format!("token-{n}")).expires_in(Duration::from_secs(3600)),
    ///     )
    /// })
    /// .config(Config::default().with_refresh_timeout(Duration::from_secs(5)))
    /// .build()
    /// .unwrap();
    /// # drop(handle);
    /// ```
    pub fn builder<F, Fut>(refresher: F) -> Builder<T, E>
    where
        F: Fn(Refresh<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RefreshResult<T, E>> + Send + 'static,
    {
        Builder::new(Box::new(move |refresh| Box::pin(refresher(refresh))))
    }

    /// A handle with `config` and the defaults of [`Handle::builder`].
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{Config, Fresh, Handle, RefreshError};
    ///
    /// let handle = Handle::new(Config::default(), |_| async {
    ///     Ok::<_, RefreshError<()>>(Fresh::new(42u32))
    /// });
    /// assert!(handle.is_ok());
    /// ```
    pub fn new<F, Fut>(config: Config, refresher: F) -> Result<Self, BuildError>
    where
        F: Fn(Refresh<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RefreshResult<T, E>> + Send + 'static,
    {
        Handle::builder(refresher).config(config).build()
    }

    /// The handle's state at a glance, for health checks: phase, current
    /// generation, waiters, when the next refresh is due.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{Config, Fresh, Generation, Handle, Phase, RefreshError};
    ///
    /// let handle = Handle::new(Config::default(), |_| async {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// futures::executor::block_on(handle.ticket()).unwrap();
    /// let status = handle.status();
    /// assert_eq!((status.phase, status.generation), (Phase::Idle, Generation(1)));
    /// ```
    pub fn status(&self) -> Status {
        self.shared.state.lock().board.status()
    }

    /// Whether the handle's lock is held, for the checkers that catch a
    /// planted bug running user code under it: an observer that asked the
    /// handle (say, for its status) would deadlock instead.
    #[cfg(feature = "mutants")]
    #[doc(hidden)]
    pub fn lock_probe(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let shared = Arc::downgrade(&self.shared);
        move || shared.upgrade().is_some_and(|s| s.state.is_locked())
    }

    /// Sends a request with the current token and returns its result: waits
    /// for a token if there is none, and when the server rejects one
    /// (`send` answers [`Reply::Rejected`]), waits for the one refresh and
    /// sends again, up to `max_auth_retries` times.
    ///
    /// `send` builds the request from the token (it cannot borrow the token
    /// into its future: copy what it needs, e.g. the header value) and says
    /// what the server answered.
    ///
    /// When every send was rejected, the last rejected answer is the
    /// result, as tower's retry returns its last response: the server's own
    /// word (its status, its `WWW-Authenticate`) reaches the caller instead
    /// of being dropped. The handle counts the request as
    /// [`Error::AuthRejected`](crate::Error::AuthRejected) in its logs and
    /// checks; [`reject`](Handle::reject), for callers that drive their own
    /// loop, returns that error.
    ///
    /// # Errors
    ///
    /// The [`HandleError`] that ended the request: refreshing failed
    /// (transiently too often, timed out, or for good), too many requests
    /// wait ([`Error::Overloaded`](crate::Error::Overloaded)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use tokenflight::{Config, Fresh, Handle, RefreshError, Reply};
    ///
    /// static ISSUED: AtomicU32 = AtomicU32::new(0);
    /// let handle = Handle::new(Config::default(), |_| async {
    ///     Ok::<_, RefreshError<()>>(Fresh::new(ISSUED.fetch_add(1, Ordering::SeqCst) + 1))
    /// })
    /// .unwrap();
    ///
    /// // The server accepts only token 2: the first send is rejected, the
    /// // handle refreshes and sends again.
    /// let answer = futures::executor::block_on(handle.call(|token: &u32| {
    ///     let token = *token;
    ///     async move { if token == 2 { Reply::Done(Ok("ok")) } else { Reply::Rejected(Err(401)) } }
    /// }));
    /// assert_eq!(answer, Ok(Ok("ok")));
    ///
    /// // A server that refuses every token: the caller gets its last answer.
    /// let answer = futures::executor::block_on(handle.call(|_: &u32| async {
    ///     Reply::<Result<&str, u16>>::Rejected(Err(403))
    /// }));
    /// assert_eq!(answer, Ok(Err(403)));
    /// ```
    pub async fn call<R, F, Fut>(&self, mut send: F) -> Result<R, HandleError<E>>
    where
        F: FnMut(&T) -> Fut,
        Fut: Future<Output = Reply<R>>,
    {
        let mut ticket = self.ticket().await?;
        loop {
            match send(ticket.token()).await {
                Reply::Done(response) => return Ok(response),
                Reply::Rejected(response) => match self.reject(ticket).await {
                    Ok(next) => ticket = next,
                    Err(Error::AuthRejected { .. }) => return Ok(response),
                    Err(e) => return Err(e),
                },
            }
        }
    }

    /// A token to send a request with: at once, without a lock, while the
    /// current token is valid; otherwise after the refresh.
    ///
    /// # Errors
    ///
    /// As [`call`](Handle::call).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{Config, Fresh, Handle, RefreshError};
    ///
    /// let handle = Handle::new(Config::default(), |_| async {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// let ticket = futures::executor::block_on(handle.ticket()).unwrap();
    /// assert_eq!(*ticket.token(), "tok");
    /// ```
    pub fn ticket(&self) -> impl Future<Output = Result<Ticket<T>, HandleError<E>>> + '_ {
        Asking::new(&self.shared)
    }

    /// The fast path alone: the published token if it is valid now, without
    /// taking a lock or writing any shared memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{Config, Fresh, Handle, RefreshError};
    ///
    /// let handle = Handle::new(Config::default(), |_| async {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// assert!(handle.try_ticket().is_none()); // no token yet
    /// futures::executor::block_on(handle.ticket()).unwrap();
    /// assert!(handle.try_ticket().is_some());
    /// ```
    #[inline]
    pub fn try_ticket(&self) -> Option<Ticket<T>> {
        self.shared.try_ticket()
    }

    /// Reports that the server rejected `ticket`'s token, and returns the
    /// token to send the request again with. A rejection of a token that was
    /// already replaced is answered with the current one and never causes a
    /// second refresh.
    ///
    /// # Errors
    ///
    /// As [`call`](Handle::call); after `max_auth_retries` retries,
    /// [`Error::AuthRejected`](crate::Error::AuthRejected).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{Config, Fresh, Generation, Handle, RefreshError};
    ///
    /// let handle = Handle::new(Config::default(), |_| async {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// futures::executor::block_on(async {
    ///     let first = handle.ticket().await.unwrap();
    ///     let retry = handle.reject(first).await.unwrap();
    ///     assert_eq!((retry.generation(), retry.send()), (Generation(2), 2));
    /// });
    /// ```
    pub async fn reject(&self, ticket: Ticket<T>) -> Result<Ticket<T>, HandleError<E>> {
        let mut ticket = ticket;
        let asked = self.shared.ask(|board, now| board.reject(now, &mut ticket));
        drop(ticket);
        match asked? {
            Ok(ticket) => Ok(ticket),
            Err(place) => Waiting::new(&self.shared, place).await,
        }
    }

    /// How many requests wait for a refresh now (for metrics and tests).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{Handle, Config, Fresh, RefreshError};
    ///
    /// let handle = Handle::new(Config::default(), |_| {
    ///     async { Ok::<_, RefreshError<()>>(Fresh::new("tok")) }
    /// })
    /// .unwrap();
    /// assert_eq!(handle.waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.shared.state.lock().board.core.waiters()
    }

    /// What the handle has done so far, for metrics: refreshes started and
    /// tokens adopted, requests that joined a refresh, stale rejections
    /// answered without one, failures. A copy, taken under the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{Config, Fresh, Handle, RefreshError};
    ///
    /// let handle = Handle::new(Config::default(), |_| async {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// futures::executor::block_on(async {
    ///     let first = handle.ticket().await.unwrap();
    ///     let stale = handle.ticket().await.unwrap();
    ///     handle.reject(first).await.unwrap();
    ///     // Already replaced: answered with the new token, no refresh.
    ///     handle.reject(stale).await.unwrap();
    /// });
    /// let stats = handle.stats();
    /// assert_eq!((stats.refreshes_started, stats.tokens_adopted), (2, 2));
    /// assert_eq!((stats.rejections, stats.stale_rejections_skipped), (1, 1));
    /// ```
    pub fn stats(&self) -> Stats {
        *self.shared.state.lock().board.core.stats()
    }

    /// Installs a token obtained elsewhere (a new login): it becomes current
    /// at once, ends a failed state and resumes every waiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{Config, Fresh, Generation, Handle, RefreshError};
    ///
    /// let handle = Handle::new(Config::default(), |_| async {
    ///     Err::<Fresh<&str>, _>(RefreshError::Permanent("no refresh token"))
    /// })
    /// .unwrap();
    /// handle.set_token(Fresh::new("from-login"));
    /// assert_eq!(handle.try_ticket().unwrap().generation(), Generation(1));
    /// ```
    pub fn set_token(&self, fresh: Fresh<T>) {
        self.shared.input(|board, now| board.set_token(now, fresh));
    }

    /// Declares `generation` bad (e.g. the user's permissions changed): if
    /// it is current, a refresh starts at once, and the next request that
    /// finds no new token waits for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{Config, Fresh, Generation, Handle, RefreshError};
    ///
    /// let handle = Handle::new(Config::default(), |_| async {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// let ticket = futures::executor::block_on(handle.ticket()).unwrap();
    /// handle.invalidate(ticket.generation());
    /// let next = futures::executor::block_on(handle.ticket()).unwrap();
    /// assert_eq!(next.generation(), Generation(2));
    /// ```
    pub fn invalidate(&self, generation: Generation) {
        self.shared
            .input(|board, now| board.invalidate(now, generation));
    }
}

// The handle is shared across tasks and threads; a ticket travels with its
// request's future.
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    send_sync::<Handle<String, std::io::Error>>();
    send_sync::<Ticket<String>>();
    send_sync::<Builder<String, std::io::Error>>();
};
