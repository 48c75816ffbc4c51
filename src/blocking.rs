//! A handle for plain threads: requests block while a refresh runs.
//!
//! The refresh runs on one of the waiting threads (the first to see it due),
//! outside the lock; the others sleep on a condition variable until their
//! outcome arrives or the core's next deadline passes. The condition
//! variable is the timer, so refresh timeouts and back-off need nothing
//! else. The thread running the refresher returns only when the refresher
//! does: its attempt's timeout is enforced by the other waiting threads,
//! which start the next attempt on time (on another thread) while it runs.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use crate::front::{
    self, Asked, Board, Driving, Fault, HandleError, Place, Published, Reply, Ticket,
};
use crate::sync::{Condvar, Mutex, SnapshotCell};
use crate::{
    BuildError, Clock, Config, Fresh, Generation, RefreshError, RefreshId, Stats, Timestamp,
};

type RefreshResult<T, E> = Result<Fresh<T>, RefreshError<E>>;
type Refresher<T, E> = Box<dyn Fn(Clock) -> RefreshResult<T, E> + Send + Sync + 'static>;

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
/// let handle = blocking::Handle::new(Config::default(), |_clock| {
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
}

struct State<T, E> {
    board: Board<T, E, ()>,
    /// The latest attempt a thread has taken on: each attempt the core
    /// starts is run by exactly one thread.
    claimed: Option<RefreshId>,
}

impl<T, E> Handle<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// A handle with `config` and the system clock; `refresher` gets a new
    /// token (it gets the handle's [`Clock`] to turn an `expires_in` into a
    /// [`Timestamp`]).
    ///
    /// # Errors
    ///
    /// [`BuildError::Config`] for a configuration that cannot work.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokenflight::{blocking, Clock, Config, Fresh, RefreshError};
    ///
    /// let handle = blocking::Handle::new(Config::default(), |clock: Clock| {
    ///     let expires_at = clock.after(Duration::from_secs(3600));
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok").expiring_at(expires_at))
    /// });
    /// assert!(handle.is_ok());
    /// ```
    pub fn new<F>(config: Config, refresher: F) -> Result<Self, BuildError>
    where
        F: Fn(Clock) -> RefreshResult<T, E> + Send + Sync + 'static,
    {
        Handle::with_clock(config, Clock::system(), refresher)
    }

    /// As [`new`](Handle::new), with time from `clock`.
    ///
    /// # Errors
    ///
    /// As [`new`](Handle::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{blocking, Clock, Config, Fresh, RefreshError, Timestamp};
    ///
    /// let clock = Clock::manual(|| Timestamp::ZERO);
    /// let handle = blocking::Handle::with_clock(Config::default(), clock, |_| {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// });
    /// assert!(handle.is_ok());
    /// ```
    pub fn with_clock<F>(config: Config, clock: Clock, refresher: F) -> Result<Self, BuildError>
    where
        F: Fn(Clock) -> RefreshResult<T, E> + Send + Sync + 'static,
    {
        Ok(Handle {
            shared: Arc::new(Shared {
                snapshot: SnapshotCell::empty(),
                clock: clock.clone(),
                refresher: Box::new(refresher),
                state: Mutex::new(State {
                    board: Board::new(config, clock)?,
                    claimed: None,
                }),
                changed: Condvar::new(),
            }),
        })
    }

    /// Sends a request with the current token and returns its result: waits
    /// for a token if there is none, and when the server rejects one
    /// (`send` answers [`Reply::Rejected`]), waits for the one refresh and
    /// sends again, up to `max_auth_retries` times.
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
    /// let handle = blocking::Handle::new(Config::default(), move |_clock| {
    ///     Ok::<_, RefreshError<()>>(Fresh::new(issued.fetch_add(1, Ordering::SeqCst) + 1))
    /// })
    /// .unwrap();
    /// // The server accepts only token 2.
    /// let answer = handle.call(|token: &u32| {
    ///     if *token == 2 { Reply::Done("ok") } else { Reply::Rejected }
    /// });
    /// assert_eq!(answer, Ok("ok"));
    /// ```
    pub fn call<R>(&self, mut send: impl FnMut(&T) -> Reply<R>) -> Result<R, HandleError<E>> {
        let mut ticket = self.ticket()?;
        loop {
            match send(ticket.token()) {
                Reply::Done(response) => return Ok(response),
                Reply::Rejected => ticket = self.reject(ticket)?,
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
    /// let handle = blocking::Handle::new(Config::default(), |_clock| {
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
    /// let handle = blocking::Handle::new(Config::default(), |_clock| {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// assert!(handle.try_ticket().is_none());
    /// handle.ticket().unwrap();
    /// assert!(handle.try_ticket().is_some());
    /// ```
    #[inline]
    pub fn try_ticket(&self) -> Option<Ticket<T>> {
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
    /// let handle = blocking::Handle::new(Config::default(), |_clock| {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// let first = handle.ticket().unwrap();
    /// let retry = handle.reject(first).unwrap();
    /// assert_eq!((retry.generation(), retry.send()), (Generation(2), 2));
    /// ```
    pub fn reject(&self, ticket: Ticket<T>) -> Result<Ticket<T>, HandleError<E>> {
        self.ask(|board, now| board.reject(now, ticket.lease()))
    }

    /// How many requests wait for a refresh now (for metrics and tests).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{blocking, Config, Fresh, RefreshError};
    ///
    /// let handle = blocking::Handle::new(Config::default(), |_clock| {
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
    /// let handle = blocking::Handle::new(Config::default(), |_clock| {
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
    /// let handle = blocking::Handle::new(Config::default(), |_clock| {
    ///     Err::<Fresh<&str>, _>(RefreshError::Permanent("no refresh token"))
    /// })
    /// .unwrap();
    /// handle.set_token(Fresh::new("from-login"));
    /// assert_eq!(handle.try_ticket().unwrap().generation(), Generation(1));
    /// ```
    pub fn set_token(&self, fresh: Fresh<T>) {
        self.input(|board, now| board.core.handle_set_token(now, fresh));
    }

    /// Declares `generation` bad: if it is current, the next request waits
    /// for a refresh.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{blocking, Config, Fresh, RefreshError};
    ///
    /// let handle = blocking::Handle::new(Config::default(), |_clock| {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// let ticket = handle.ticket().unwrap();
    /// handle.invalidate(ticket.generation());
    /// assert!(handle.try_ticket().is_none());
    /// ```
    pub fn invalidate(&self, generation: Generation) {
        self.input(|board, now| board.core.handle_invalidate(now, generation));
    }

    fn input(&self, f: impl FnOnce(&mut Board<T, E, ()>, Timestamp)) {
        let shared = &*self.shared;
        let mut state = shared.state.lock();
        let now = shared.clock.now();
        f(&mut state.board, now);
        state.board.settle(now, &shared.snapshot);
        drop(state);
        shared.changed.notify_all();
    }

    fn key(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    fn ask(
        &self,
        f: impl FnOnce(&mut Board<T, E, ()>, Timestamp) -> Asked<T, E>,
    ) -> Result<Ticket<T>, HandleError<E>> {
        let shared = &*self.shared;
        let mut state = shared.state.lock();
        let now = shared.clock.now();
        let mut asked = f(&mut state.board, now);
        if let Asked::Wait(place) = asked {
            if Driving::is_active(self.key()) {
                state.board.cancel(now, place);
                asked = Asked::Fail(front::reentrant());
            }
        }
        state.board.settle(now, &shared.snapshot);
        match asked {
            Asked::Send(ticket) => {
                drop(state);
                shared.changed.notify_all();
                Ok(ticket)
            }
            Asked::Fail(error) => {
                drop(state);
                shared.changed.notify_all();
                Err(error)
            }
            Asked::Wait(place) => self.wait(state, place),
        }
    }

    /// Blocks until request `id`'s outcome arrives, running the refresh
    /// when it is due and no other thread runs it, and firing the core's
    /// timers when their time comes.
    fn wait<'a>(
        &'a self,
        mut state: crate::sync::MutexGuard<'a, State<T, E>>,
        place: Place,
    ) -> Result<Ticket<T>, HandleError<E>> {
        let shared = &*self.shared;
        loop {
            if let Some(outcome) = state.board.take_outcome(place) {
                drop(state);
                // Others may have been settled in the same step.
                shared.changed.notify_all();
                return outcome;
            }
            let due = state.board.core.in_flight();
            if let Some(attempt) = due.filter(|a| state.claimed != Some(*a)) {
                state.claimed = Some(attempt);
                drop(state);
                let result = self.run_refresher();
                state = shared.state.lock();
                let now = shared.clock.now();
                state.board.refreshed(now, attempt, result);
                state.board.settle(now, &shared.snapshot);
                shared.changed.notify_all();
                continue;
            }
            state = match state.board.core.poll_timeout() {
                Some(at) => shared
                    .changed
                    .wait_until(state, shared.clock.instant_at(at)),
                None => shared.changed.wait(state),
            };
            let now = shared.clock.now();
            if state.board.core.poll_timeout().is_some_and(|at| at <= now) {
                state.board.settle(now, &shared.snapshot);
                shared.changed.notify_all();
            }
        }
    }

    /// Runs the refresher outside the lock. A panic is caught and becomes a
    /// transient [`Fault::Panicked`]: it is retried like any transient
    /// failure, and when the retries run out every waiter gets the error.
    fn run_refresher(&self) -> Result<Fresh<T>, RefreshError<Fault<E>>> {
        let _driving = Driving::enter(self.key());
        let shared = &*self.shared;
        match panic::catch_unwind(AssertUnwindSafe(|| {
            (shared.refresher)(shared.clock.clone())
        })) {
            Ok(result) => result.map_err(front::lift),
            Err(payload) => Err(RefreshError::Transient(Fault::Panicked(
                front::panic_message(&*payload),
            ))),
        }
    }
}

// The handle is shared across threads.
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    send_sync::<Handle<String, std::io::Error>>();
};
