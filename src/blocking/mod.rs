//! A handle for plain threads: requests block while a refresh they need
//! runs.
//!
//! The refresher runs on a thread of the handle's own, started with the
//! first call and ended with the handle: a call the core starts is made at
//! once, whether a request waits for it or not (a refresh ahead of expiry
//! never holds a request), and one at a time, so the token endpoint never
//! sees two calls of this handle at once. Waiting requests sleep on a
//! condition variable until their outcome arrives or the core's next
//! deadline passes; the condition variable is the timer, so refresh
//! timeouts and back-off need nothing else. A blocking call cannot be
//! dropped: one that outlives its timeout keeps the handle's thread until
//! it returns, and the next call waits for it.

mod builder;
mod worker;

pub use builder::Builder;

use std::sync::Arc;

use self::worker::Worker;
use crate::front::{
    self, Asked, Board, Driving, HandleError, Place, Published, Refresh, Reply, Setup, Status,
    Ticket,
};
use crate::sync::{Condvar, Mutex, SnapshotCell};
use crate::{
    BuildError, Clock, Config, Error, Fresh, Generation, RefreshError, RefreshId, Stats, Timestamp,
};

type RefreshResult<T, E> = Result<Fresh<T>, RefreshError<E>>;
type Refresher<T, E> = Box<dyn Fn(Refresh<T>) -> RefreshResult<T, E> + Send + Sync + 'static>;

/// Shares one access token among many threads and refreshes it once per
/// expiry.
///
/// Cloning is cheap; every clone is the same handle.
///
/// # Examples
///
/// ```
/// use tokenflight::{blocking, Config, Fresh, RefreshError, Reply};
///
/// let handle = blocking::Handle::new(Config::default(), |_| {
///     Ok::<_, RefreshError<std::io::Error>>(Fresh::new("token-1".to_string()))
/// })
/// .unwrap();
/// let answer = handle.call(|token: &String| Reply::Done(format!("Bearer {token}")));
/// assert_eq!(answer.unwrap(), "Bearer token-1");
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
        f.debug_struct("blocking::Handle")
            .field("core", &state.board.core)
            .finish_non_exhaustive()
    }
}

struct Shared<T, E> {
    /// What the fast path reads; written only under `state`'s lock, in the
    /// same critical section as the core transition it reflects.
    snapshot: SnapshotCell<Published<T>>,
    clock: Clock,
    refresher: Refresher<T, E>,
    state: Mutex<State<T, E>>,
    /// Signalled after every step that may concern a waiter.
    changed: Condvar,
    /// Where the handle's history goes, if it is observed.
    #[cfg(feature = "observe")]
    observer: Option<Arc<front::observe::Observer>>,
}

struct State<T, E> {
    board: Board<T, E, ()>,
    /// The latest attempt handed to the handle's thread: each call the
    /// core starts is made exactly once.
    sent: Option<RefreshId>,
    /// The handle's thread for the refresher, started with the first call.
    worker: Option<Worker>,
}

impl<T, E> Handle<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// A builder for a handle whose `refresher` gets each new token: it is
    /// told what it replaces ([`Refresh`]) and answers with a [`Fresh`]
    /// token (or a [`RefreshError`] that says whether to retry). It runs on
    /// a thread of the handle's own.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokenflight::{blocking, Clock, Config, Fresh, RefreshError, Timestamp};
    ///
    /// let handle = blocking::Handle::builder(|_| {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok").expires_in(Duration::from_secs(3600)))
    /// })
    /// .config(Config::default())
    /// .clock(Clock::manual(|| Timestamp::ZERO))
    /// .build()
    /// .unwrap();
    /// assert_eq!(*handle.ticket().unwrap().token(), "tok");
    /// ```
    pub fn builder<F>(refresher: F) -> Builder<T, E>
    where
        F: Fn(Refresh<T>) -> RefreshResult<T, E> + Send + Sync + 'static,
    {
        Builder {
            refresher: Box::new(refresher),
            setup: Setup::default(),
        }
    }

    /// A handle with `config` and the defaults of [`Handle::builder`].
    ///
    /// # Errors
    ///
    /// [`BuildError::Config`] for a configuration that cannot work.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokenflight::{blocking, Config, Fresh, RefreshError};
    ///
    /// let handle = blocking::Handle::new(Config::default(), |_| {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok").expires_in(Duration::from_secs(3600)))
    /// });
    /// assert!(handle.is_ok());
    /// ```
    pub fn new<F>(config: Config, refresher: F) -> Result<Self, BuildError>
    where
        F: Fn(Refresh<T>) -> RefreshResult<T, E> + Send + Sync + 'static,
    {
        Handle::builder(refresher).config(config).build()
    }

    /// The handle's state at a glance, for health checks: phase, current
    /// generation, waiters, when the next refresh is due.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{blocking, Config, Fresh, Generation, Phase, RefreshError};
    ///
    /// let handle = blocking::Handle::new(Config::default(), |_| {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// handle.ticket().unwrap();
    /// assert_eq!(handle.status().generation, Generation(1));
    /// assert_eq!(handle.status().phase, Phase::Idle);
    /// ```
    pub fn status(&self) -> Status {
        self.shared.state.lock().board.status()
    }

    /// Sends a request with the current token and returns its result: waits
    /// for a token if there is none, and when the server rejects one
    /// (`send` answers [`Reply::Rejected`]), waits for the one refresh and
    /// sends again, up to `max_auth_retries` times. When every send was
    /// rejected, the last rejected answer is the result (see
    /// [`Handle::call`](crate::Handle::call) of the async handle).
    ///
    /// # Errors
    ///
    /// The [`HandleError`] that ended the request (see
    /// [`Handle::call`](crate::Handle::call) of the async handle).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use tokenflight::{blocking, Config, Fresh, RefreshError, Reply};
    ///
    /// let issued = AtomicU32::new(0);
    /// let handle = blocking::Handle::new(Config::default(), move |_| {
    ///     Ok::<_, RefreshError<()>>(Fresh::new(issued.fetch_add(1, Ordering::SeqCst) + 1))
    /// })
    /// .unwrap();
    /// // The server accepts only token 2.
    /// let answer = handle.call(|token: &u32| {
    ///     if *token == 2 { Reply::Done(Ok("ok")) } else { Reply::Rejected(Err(401)) }
    /// });
    /// assert_eq!(answer, Ok(Ok("ok")));
    /// // One that refuses them all: its last answer comes back.
    /// let answer = handle.call(|_: &u32| Reply::<Result<&str, u16>>::Rejected(Err(403)));
    /// assert_eq!(answer, Ok(Err(403)));
    /// ```
    pub fn call<R>(&self, mut send: impl FnMut(&T) -> Reply<R>) -> Result<R, HandleError<E>> {
        let mut ticket = self.ticket()?;
        loop {
            match send(ticket.token()) {
                Reply::Done(response) => return Ok(response),
                Reply::Rejected(response) => match self.reject(ticket) {
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
    /// use tokenflight::{blocking, Config, Fresh, RefreshError};
    ///
    /// let handle = blocking::Handle::new(Config::default(), |_| {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// assert_eq!(*handle.ticket().unwrap().token(), "tok");
    /// ```
    #[inline]
    pub fn ticket(&self) -> Result<Ticket<T>, HandleError<E>> {
        if let Some(ticket) = self.try_ticket() {
            return Ok(ticket);
        }
        self.acquire()
    }

    /// The slow path of [`ticket`](Handle::ticket), kept out of line so
    /// that the fast path it follows stays as small as a bare snapshot read.
    #[cold]
    #[inline(never)]
    fn acquire(&self) -> Result<Ticket<T>, HandleError<E>> {
        self.ask(|board, now| board.acquire(now))
    }

    /// The fast path alone: the published token if it is valid now, without
    /// taking a lock or writing any shared memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{blocking, Config, Fresh, RefreshError};
    ///
    /// let handle = blocking::Handle::new(Config::default(), |_| {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// assert!(handle.try_ticket().is_none());
    /// handle.ticket().unwrap();
    /// assert!(handle.try_ticket().is_some());
    /// ```
    #[inline]
    pub fn try_ticket(&self) -> Option<Ticket<T>> {
        #[cfg(feature = "observe")]
        if let Some(observer) = &self.shared.observer {
            return front::observe::fast_ticket(&self.shared.snapshot, observer);
        }
        front::fast_ticket(&self.shared.snapshot, &self.shared.clock)
    }

    /// Reports that the server rejected `ticket`'s token, and returns the
    /// token to send the request again with. A rejection of a token that was
    /// already replaced is answered with the current one and never causes a
    /// second refresh.
    ///
    /// # Errors
    ///
    /// As [`call`](Handle::call).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{blocking, Config, Fresh, Generation, RefreshError};
    ///
    /// let handle = blocking::Handle::new(Config::default(), |_| {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// let first = handle.ticket().unwrap();
    /// let retry = handle.reject(first).unwrap();
    /// assert_eq!((retry.generation(), retry.send()), (Generation(2), 2));
    /// ```
    pub fn reject(&self, ticket: Ticket<T>) -> Result<Ticket<T>, HandleError<E>> {
        let mut ticket = ticket;
        self.ask(|board, now| board.reject(now, &mut ticket))
    }

    /// How many requests wait for a refresh now (for metrics and tests).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{blocking, Config, Fresh, RefreshError};
    ///
    /// let handle = blocking::Handle::new(Config::default(), |_| {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
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
    /// use tokenflight::{blocking, Config, Fresh, RefreshError};
    ///
    /// let handle = blocking::Handle::new(Config::default(), |_| {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// let first = handle.ticket().unwrap();
    /// let stale = handle.ticket().unwrap();
    /// handle.reject(first).unwrap();
    /// // Already replaced: answered with the new token, no refresh.
    /// handle.reject(stale).unwrap();
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
    /// use tokenflight::{blocking, Config, Fresh, Generation, RefreshError};
    ///
    /// let handle = blocking::Handle::new(Config::default(), |_| {
    ///     Err::<Fresh<&str>, _>(RefreshError::Permanent("no refresh token"))
    /// })
    /// .unwrap();
    /// handle.set_token(Fresh::new("from-login"));
    /// assert_eq!(handle.try_ticket().unwrap().generation(), Generation(1));
    /// ```
    pub fn set_token(&self, fresh: Fresh<T>) {
        self.input(|board, now| board.set_token(now, fresh));
    }

    /// Declares `generation` bad: if it is current, a refresh starts at
    /// once (on the handle's thread), and the next request that finds no new
    /// token waits for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{blocking, Config, Fresh, Generation, RefreshError};
    ///
    /// let handle = blocking::Handle::new(Config::default(), |_| {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// let ticket = handle.ticket().unwrap();
    /// handle.invalidate(ticket.generation());
    /// assert_eq!(handle.ticket().unwrap().generation(), Generation(2));
    /// ```
    pub fn invalidate(&self, generation: Generation) {
        self.input(|board, now| board.invalidate(now, generation));
    }

    fn input(&self, f: impl FnOnce(&mut Board<T, E, ()>, Timestamp)) {
        let shared = &*self.shared;
        let now = shared.clock.now();
        let mut state = shared.state.lock();
        f(&mut state.board, now);
        let after = self.shared.settle(&mut state, now);
        drop(state);
        after.run(shared);
    }

    fn key(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    fn ask(
        &self,
        f: impl FnOnce(&mut Board<T, E, ()>, Timestamp) -> Asked<T, E>,
    ) -> Result<Ticket<T>, HandleError<E>> {
        let shared = &*self.shared;
        let now = shared.clock.now();
        let mut state = shared.state.lock();
        let mut asked = f(&mut state.board, now);
        if matches!(asked, Asked::Wait(_)) && Driving::is_active(self.key()) {
            if let Asked::Wait(place) =
                std::mem::replace(&mut asked, Asked::Fail(front::reentrant()))
            {
                state.board.cancel(now, &place);
            }
        }
        let after = self.shared.settle(&mut state, now);
        match asked {
            Asked::Send(ticket) => {
                drop(state);
                after.run(shared);
                Ok(ticket)
            }
            Asked::Fail(error) => {
                drop(state);
                after.run(shared);
                Err(error)
            }
            Asked::Wait(place) => {
                drop(state);
                after.run(shared);
                self.wait(now, place)
            }
        }
    }

    /// Blocks until the outcome of the request at `place` arrives, firing
    /// the core's timers when their time comes. The refresher runs on the
    /// handle's own thread, never on a waiting one.
    fn wait(&self, mut now: Timestamp, place: Place<T, E>) -> Result<Ticket<T>, HandleError<E>> {
        let shared = &*self.shared;
        let mut state = shared.state.lock();
        loop {
            // Read under the lock: a blocked thread is woken for every step
            // and holds the lock again when it looks.
            if let Some(outcome) = place.outcome() {
                return outcome;
            }
            state = match state.board.core.poll_timeout() {
                Some(at) => shared
                    .changed
                    .wait_until(state, shared.clock.instant_at(at, now)),
                None => shared.changed.wait(state),
            };
            if state.board.core.poll_timeout().is_none() {
                continue;
            }
            // A timer may be due: read the clock with no guard held.
            drop(state);
            now = shared.clock.now();
            state = shared.state.lock();
            if state.board.core.poll_timeout().is_some_and(|at| at <= now) {
                let after = self.shared.settle(&mut state, now);
                drop(state);
                after.run(shared);
                state = shared.state.lock();
            }
        }
    }
}

// The handle is shared across threads.
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    send_sync::<Handle<String, std::io::Error>>();
};
