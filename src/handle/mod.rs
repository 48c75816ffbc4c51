//! The async handle: works under any executor, and the refresh never
//! depends on one caller staying alive.
//!
//! # How it waits
//!
//! The refresh runs as a future kept in the handle's shared state, not in
//! any caller's future. Whichever waiting request is polled after the
//! refresh (or a timer) was woken takes that future out, polls it outside
//! the lock with a waker of the handle's own (the [`Beacon`]), and puts it
//! back. The beacon wakes one *appointed* waiter, the last one polled; a
//! waiter that leaves (done, or dropped) hands the appointment on and wakes
//! its successor. So however many callers go away, the refresh is driven as
//! long as anyone waits for it; if no one waits, no one needs it, and the
//! next caller picks it up where it was.
//!
//! # Late answers
//!
//! An attempt that times out is not dropped while its call is outstanding
//! ([`Core::outstanding_call`](crate::Core::outstanding_call)): with
//! single-use rotating refresh tokens, its answer may hold the only refresh
//! token the server still honours, and the core starts no other call until
//! it answers. Its future stays the refresh job, is polled the same way, and
//! its answer goes to the core when it comes; it is dropped (after
//! unlocking) when the core abandons the call. A round can give up while it
//! is pending, leaving no waiter to poll it; so a request on the slow path
//! that finds such a future woken drives the woken work itself before it
//! asks the core.

mod sleep;
mod waiter;

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

#[cfg(feature = "tokio")]
pub use sleep::TokioSleep;
pub use sleep::{Sleep, SleepFuture, ThreadSleep};

use crate::front::{
    self, Asked, Board, Driving, Fault, HandleError, Place, Published, Reply, Ticket,
};
use crate::sync::{Mutex, SnapshotCell};
use crate::{
    BuildError, Clock, Config, Fresh, Generation, RefreshError, RefreshId, Stats, Timestamp,
};
use waiter::{Beacon, Waiting};

type RefreshResult<T, E> = Result<Fresh<T>, RefreshError<E>>;
type RefreshFuture<T, E> = Pin<Box<dyn Future<Output = RefreshResult<T, E>> + Send + 'static>>;
type Refresher<T, E> = Box<dyn Fn(Clock) -> RefreshFuture<T, E> + Send + Sync + 'static>;

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
/// let handle = Handle::new(Config::default(), |_clock| async {
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

/// Configures an async [`Handle`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::{Builder, Clock, Config, Fresh, RefreshError, Timestamp};
///
/// let mut config = Config::default();
/// config.backoff_initial = Duration::ZERO;
/// let handle = Builder::new()
///     .config(config)
///     .clock(Clock::manual(|| Timestamp::ZERO))
///     .without_timer()
///     .build(|clock: Clock| async move {
///         let expires_in = Duration::from_secs(3600);
///         Ok::<_, RefreshError<()>>(Fresh::new("tok").expiring_at(clock.after(expires_in)))
///     })
///     .unwrap();
/// # drop(handle);
/// ```
#[derive(Default)]
pub struct Builder {
    config: Config,
    clock: Option<Clock>,
    sleep: Option<Option<Arc<dyn Sleep>>>,
    #[cfg(tokenflight_loom)]
    late_publish: bool,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .field("timer", &!matches!(self.sleep, Some(None)))
            .finish()
    }
}

impl Builder {
    /// A builder with the defaults: [`Config::default`], [`Clock::system`],
    /// [`ThreadSleep`].
    pub fn new() -> Self {
        Builder::default()
    }

    /// The core's configuration ([`Config::default`] if not set).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Where time comes from ([`Clock::system`] if not set).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Where timers come from ([`ThreadSleep`] if not set).
    pub fn sleep(mut self, sleep: impl Sleep) -> Self {
        self.sleep = Some(Some(Arc::new(sleep)));
        self
    }

    /// No timers at all: the refresh timeout is then not enforced (the
    /// refresher must bound its own time), and the configuration must not
    /// back off (`backoff_initial` zero), or [`build`](Builder::build) fails
    /// with [`BuildError::TimerRequired`] rather than let waiters hang.
    pub fn without_timer(mut self) -> Self {
        self.sleep = Some(None);
        self
    }

    /// The deliberately broken variant the loom suite must catch: the
    /// snapshot is stored after the lock is released.
    #[cfg(tokenflight_loom)]
    #[doc(hidden)]
    pub fn late_publish(mut self) -> Self {
        self.late_publish = true;
        self
    }

    /// The handle, with `refresher` to get a new token. The refresher gets
    /// the handle's [`Clock`] to turn an `expires_in` into a [`Timestamp`].
    ///
    /// # Errors
    ///
    /// [`BuildError::Config`] for a configuration that cannot work;
    /// [`BuildError::TimerRequired`] for one that backs off without a timer.
    pub fn build<T, E, F, Fut>(self, refresher: F) -> Result<Handle<T, E>, BuildError>
    where
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: Fn(Clock) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RefreshResult<T, E>> + Send + 'static,
    {
        let sleep = match self.sleep {
            None => Some(Arc::new(ThreadSleep) as Arc<dyn Sleep>),
            Some(sleep) => sleep,
        };
        if sleep.is_none() && front::needs_timer(&self.config) {
            return Err(BuildError::TimerRequired);
        }
        let clock = self.clock.unwrap_or_else(Clock::system);
        #[allow(unused_mut)]
        let mut board = Board::new(self.config, clock.clone())?;
        #[cfg(tokenflight_loom)]
        if self.late_publish {
            board.late_publish = Some(None);
        }
        let refresher: Refresher<T, E> = Box::new(move |clock| Box::pin(refresher(clock)));
        Ok(Handle {
            shared: Arc::new(Shared {
                snapshot: SnapshotCell::empty(),
                clock,
                refresher,
                sleep,
                beacon: Arc::new(Beacon::new()),
                state: Mutex::new(State {
                    board,
                    refresh: Job::Empty,
                    timer: Job::Empty,
                    timer_broken: false,
                }),
            }),
        })
    }
}

struct Shared<T, E> {
    /// What the fast path reads; written only under `state`'s lock, in the
    /// same critical section as the core transition it reflects.
    snapshot: SnapshotCell<Published<T>>,
    clock: Clock,
    refresher: Refresher<T, E>,
    sleep: Option<Arc<dyn Sleep>>,
    /// The waker given to the refresh and timer futures. Lock order:
    /// `state`, then the beacon's.
    beacon: Arc<Beacon>,
    state: Mutex<State<T, E>>,
}

struct State<T, E> {
    board: Board<T, E, Waker>,
    /// The future of the core's outstanding call, kept after its attempt
    /// timed out; dropped once the core abandons the call.
    refresh: Job<RefreshId, RefreshFuture<T, E>>,
    /// A sleep until the core's next deadline.
    timer: Job<Timestamp, SleepFuture>,
    /// The [`Sleep`] panicked: no more timers, rather than a panic per poll.
    timer_broken: bool,
}

impl<T, E> State<T, E> {
    /// Whether work waits to be taken out and polled.
    fn has_parked(&self) -> bool {
        self.refresh.is_waiting() || self.timer.is_waiting() || self.has_parked_late()
    }

    /// Whether a timed-out call's future is parked, with no round polling
    /// it for its attempt.
    fn has_parked_late(&self) -> bool {
        matches!(self.refresh, Job::Parked(attempt, _) if self.board.core.in_flight() != Some(attempt))
    }

    /// Takes every parked piece of work out, to poll outside the lock.
    fn take_work(&mut self) -> Work<T, E> {
        Work {
            refresh: self.refresh.take_out(),
            timer: self.timer.take_out(),
        }
    }

    /// Brings back a refresh future taken out (`None`: it answered); returns
    /// it if it is no longer wanted, to be dropped after unlocking.
    fn bring_back_refresh(
        &mut self,
        attempt: RefreshId,
        pending: Option<RefreshFuture<T, E>>,
    ) -> Option<RefreshFuture<T, E>> {
        self.refresh.bring_back(attempt, pending)
    }
}

/// A future kept in the shared state and polled by whichever waiter comes.
enum Job<K, F> {
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
    fn key(&self) -> Option<K> {
        match self {
            Job::Empty => None,
            Job::Start(k) | Job::Parked(k, _) | Job::Out(k) => Some(*k),
        }
    }

    fn is_waiting(&self) -> bool {
        matches!(self, Job::Start(_) | Job::Parked(..))
    }

    /// Takes the job out to poll it; `(key, None)` means it must be made.
    fn take_out(&mut self) -> Option<(K, Option<F>)> {
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
    fn retarget(&mut self, want: Option<K>) -> (bool, Option<(K, Option<F>)>) {
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
    fn bring_back(&mut self, key: K, pending: Option<F>) -> Option<F> {
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

/// What must be done after the lock is released: wake tasks, drop futures
/// (a future's drop may run user code that calls back into the handle).
struct Aftermath<T, E> {
    wake: Vec<Waker>,
    /// The wakers of rounds answered, as the board took them.
    wake_rounds: Vec<Vec<Option<Waker>>>,
    drop_refresh: Vec<RefreshFuture<T, E>>,
    drop_sleep: Vec<SleepFuture>,
    /// The broken variant's snapshot, stored too late (see
    /// `Board::late_publish`).
    #[cfg(tokenflight_loom)]
    late_publish: Option<Option<Arc<Published<T>>>>,
}

impl<T, E> Aftermath<T, E> {
    fn new() -> Self {
        Aftermath {
            wake: Vec::new(),
            wake_rounds: Vec::new(),
            drop_refresh: Vec::new(),
            drop_sleep: Vec::new(),
            #[cfg(tokenflight_loom)]
            late_publish: None,
        }
    }

    fn run(self, _cell: &SnapshotCell<Published<T>>) {
        #[cfg(tokenflight_loom)]
        if let Some(snapshot) = self.late_publish {
            _cell.store(snapshot);
        }
        self.wake.into_iter().for_each(Waker::wake);
        for round in self.wake_rounds {
            round.into_iter().flatten().for_each(Waker::wake);
        }
        drop(self.drop_refresh);
        drop(self.drop_sleep);
    }
}

/// A refresh future polled: its answer for the core, or itself to park.
type Polled<T, E> = Result<RefreshResult<T, Fault<E>>, RefreshFuture<T, E>>;

/// Work taken out of the shared state, polled outside the lock.
struct Work<T, E> {
    refresh: Option<(RefreshId, Option<RefreshFuture<T, E>>)>,
    timer: Option<(Timestamp, Option<SleepFuture>)>,
}

/// What polling the work gave: an answer for the core, or a future to park.
struct Done<T, E> {
    refresh: Option<(RefreshId, Polled<T, E>)>,
    timer: Option<(Timestamp, Option<SleepFuture>)>,
    timer_panicked: bool,
}

impl<T, E> Shared<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    fn key(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// After any input, under the lock: settles the board, then makes the
    /// refresh job follow the attempt the core has in flight and the timer
    /// follow the core's next deadline.
    fn settle(&self, state: &mut State<T, E>, now: Timestamp, after: &mut Aftermath<T, E>) {
        let settled = state.board.settle(now, &self.snapshot);
        after.wake_rounds.extend(settled.woken);
        #[cfg(tokenflight_loom)]
        if let Some(late) = &mut state.board.late_publish {
            after.late_publish = late.take();
        }
        let core = &state.board.core;
        // An abandoned call's future goes. One out being polled is dropped
        // by its poller, finding no place to come back to.
        let (new_refresh, replaced) = state.refresh.retarget(core.outstanding_call());
        if let Some((_, future)) = replaced {
            after.drop_refresh.extend(future);
        }
        let deadline = match (&self.sleep, state.timer_broken) {
            (Some(_), false) => state.board.core.poll_timeout(),
            _ => None,
        };
        let (new_timer, old) = state.timer.retarget(deadline);
        after.drop_sleep.extend(old.and_then(|(_, future)| future));
        if new_refresh || new_timer {
            // New work: make sure someone comes to pick it up.
            after.wake.extend(self.beacon.raise());
        }
    }

    /// The slow path of `ticket`: a new request asks the core. Kept out of
    /// line so that the fast path it follows stays as small as a bare
    /// snapshot read.
    #[cold]
    #[inline(never)]
    fn acquire(&self) -> Result<Result<Ticket<T>, Place>, HandleError<E>> {
        self.ask(|board, now| board.acquire(now))
    }

    /// Asks the core (under the lock) and, on `Wait`, returns the request's
    /// id; a refresher asking its own handle fails at once (see [`Driving`]).
    fn ask(
        &self,
        f: impl FnOnce(&mut Board<T, E, Waker>, Timestamp) -> Asked<T, E>,
    ) -> Result<Result<Ticket<T>, Place>, HandleError<E>> {
        let mut after = Aftermath::new();
        let asked = {
            let mut state = self.state.lock();
            // A late answer may have come while no one waits to poll it
            // (after a round gave up, requests fail fast without waiting):
            // drive the woken work first, so that its token is not stranded.
            // Taking the work lowers the beacon's flag, so all of it is
            // taken, as a waiter would; a refresher asking its own handle
            // (its future is out) never drives.
            if state.has_parked_late()
                && !Driving::is_active(self.key())
                && self.beacon.take_raised()
            {
                let work = state.take_work();
                drop(state);
                let done = self.run(work);
                state = self.state.lock();
                let now = self.clock.now();
                self.bring_back(&mut state, now, done, &mut after);
                // Work that woke itself while out may have found no one to
                // take it: make sure the appointed waiter comes back for it.
                if state.has_parked() {
                    after.wake.extend(self.beacon.pending());
                }
            }
            let now = self.clock.now();
            let mut asked = f(&mut state.board, now);
            if let Asked::Wait(place) = asked {
                if Driving::is_active(self.key()) {
                    state.board.cancel(now, place);
                    asked = Asked::Fail(front::reentrant());
                }
            }
            self.settle(&mut state, now, &mut after);
            asked
        };
        after.run(&self.snapshot);
        match asked {
            Asked::Send(ticket) => Ok(Ok(ticket)),
            Asked::Wait(place) => Ok(Err(place)),
            Asked::Fail(error) => Err(error),
        }
    }

    /// Polls the work taken out, outside the lock, with the beacon's waker.
    /// Panics of the refresher are caught and become a [`Fault::Panicked`].
    fn run(&self, work: Work<T, E>) -> Done<T, E> {
        let waker = Waker::from(Arc::clone(&self.beacon));
        let mut cx = Context::from_waker(&waker);
        let _driving = Driving::enter(self.key());
        let refresh = work
            .refresh
            .map(|(attempt, fut)| (attempt, self.poll_refresh(fut, &mut cx)));
        let mut timer_panicked = false;
        let timer = work.timer.map(|(deadline, fut)| {
            let polled = panic::catch_unwind(AssertUnwindSafe(|| {
                let mut fut = fut.unwrap_or_else(|| match &self.sleep {
                    Some(sleep) => sleep.sleep(deadline.saturating_since(self.clock.now())),
                    None => Box::pin(std::future::ready(())),
                });
                match fut.as_mut().poll(&mut cx) {
                    Poll::Ready(()) => None,
                    Poll::Pending => Some(fut),
                }
            }));
            match polled {
                Ok(pending) => (deadline, pending),
                Err(_) => {
                    timer_panicked = true;
                    (deadline, None)
                }
            }
        });
        Done {
            refresh,
            timer,
            timer_panicked,
        }
    }

    /// Polls a refresh future, making it first if `fut` is `None`.
    fn poll_refresh(&self, fut: Option<RefreshFuture<T, E>>, cx: &mut Context<'_>) -> Polled<T, E> {
        let polled = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut fut = fut.unwrap_or_else(|| (self.refresher)(self.clock.clone()));
            match fut.as_mut().poll(cx) {
                Poll::Ready(result) => Ok(result),
                Poll::Pending => Err(fut),
            }
        }));
        match polled {
            Ok(Ok(result)) => Ok(result.map_err(front::lift)),
            Ok(Err(pending)) => Err(pending),
            Err(payload) => {
                let fault = Fault::Panicked(front::panic_message(&*payload));
                Ok(Err(RefreshError::Transient(fault)))
            }
        }
    }

    /// Back under the lock with what polling gave: answers go to the core
    /// (the current attempt's first), pending futures are parked again if
    /// still wanted; then the board settles.
    fn bring_back(
        &self,
        state: &mut State<T, E>,
        now: Timestamp,
        done: Done<T, E>,
        after: &mut Aftermath<T, E>,
    ) {
        if let Some((attempt, polled)) = done.refresh {
            match polled {
                Ok(result) => {
                    after
                        .drop_refresh
                        .extend(state.bring_back_refresh(attempt, None));
                    state.board.refreshed(now, attempt, result);
                }
                Err(pending) => after
                    .drop_refresh
                    .extend(state.bring_back_refresh(attempt, Some(pending))),
            }
        }
        if let Some((deadline, pending)) = done.timer {
            after
                .drop_sleep
                .extend(state.timer.bring_back(deadline, pending));
        }
        state.timer_broken |= done.timer_panicked;
        self.settle(state, now, after);
    }
}

impl<T, E> Handle<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// A handle with `config`, [`Clock::system`] and [`ThreadSleep`].
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
    /// let handle = Handle::new(Config::default(), |_clock| async {
    ///     Ok::<_, RefreshError<()>>(Fresh::new(42u32))
    /// });
    /// assert!(handle.is_ok());
    /// ```
    pub fn new<F, Fut>(config: Config, refresher: F) -> Result<Self, BuildError>
    where
        F: Fn(Clock) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RefreshResult<T, E>> + Send + 'static,
    {
        Builder::default().config(config).build(refresher)
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
    /// # Errors
    ///
    /// The [`HandleError`] that ended the request: refreshing failed
    /// (transiently too often, timed out, or for good), the server rejected
    /// every token ([`Error::AuthRejected`](crate::Error::AuthRejected)),
    /// too many requests wait ([`Error::Overloaded`](crate::Error::Overloaded)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use tokenflight::{Config, Fresh, Handle, RefreshError, Reply};
    ///
    /// static ISSUED: AtomicU32 = AtomicU32::new(0);
    /// let handle = Handle::new(Config::default(), |_clock| async {
    ///     Ok::<_, RefreshError<()>>(Fresh::new(ISSUED.fetch_add(1, Ordering::SeqCst) + 1))
    /// })
    /// .unwrap();
    ///
    /// // The server accepts only token 2: the first send is rejected, the
    /// // handle refreshes and sends again.
    /// let answer = futures::executor::block_on(handle.call(|token: &u32| {
    ///     let token = *token;
    ///     async move { if token == 2 { Reply::Done("ok") } else { Reply::Rejected } }
    /// }));
    /// assert_eq!(answer, Ok("ok"));
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
                Reply::Rejected => ticket = self.reject(ticket).await?,
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
    /// let handle = Handle::new(Config::default(), |_clock| async {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// let ticket = futures::executor::block_on(handle.ticket()).unwrap();
    /// assert_eq!(*ticket.token(), "tok");
    /// ```
    pub async fn ticket(&self) -> Result<Ticket<T>, HandleError<E>> {
        if let Some(ticket) = self.try_ticket() {
            return Ok(ticket);
        }
        match self.shared.acquire()? {
            Ok(ticket) => Ok(ticket),
            Err(place) => Waiting::new(&self.shared, place).await,
        }
    }

    /// The fast path alone: the published token if it is valid now, without
    /// taking a lock or writing any shared memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{Config, Fresh, Handle, RefreshError};
    ///
    /// let handle = Handle::new(Config::default(), |_clock| async {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// assert!(handle.try_ticket().is_none()); // no token yet
    /// futures::executor::block_on(handle.ticket()).unwrap();
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
    /// As [`call`](Handle::call); after `max_auth_retries` retries,
    /// [`Error::AuthRejected`](crate::Error::AuthRejected).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{Config, Fresh, Generation, Handle, RefreshError};
    ///
    /// let handle = Handle::new(Config::default(), |_clock| async {
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
        let asked = self
            .shared
            .ask(|board, now| board.reject(now, ticket.lease()));
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
    /// let handle = Handle::new(Config::default(), |_clock| {
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
    /// let handle = Handle::new(Config::default(), |_clock| async {
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
    /// let handle = Handle::new(Config::default(), |_clock| async {
    ///     Err::<Fresh<&str>, _>(RefreshError::Permanent("no refresh token"))
    /// })
    /// .unwrap();
    /// handle.set_token(Fresh::new("from-login"));
    /// assert_eq!(handle.try_ticket().unwrap().generation(), Generation(1));
    /// ```
    pub fn set_token(&self, fresh: Fresh<T>) {
        self.input(|board, now| board.core.handle_set_token(now, fresh));
    }

    /// Declares `generation` bad (e.g. the user's permissions changed): if
    /// it is current, the next request waits for a refresh.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{Config, Fresh, Handle, RefreshError};
    ///
    /// let handle = Handle::new(Config::default(), |_clock| async {
    ///     Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    /// })
    /// .unwrap();
    /// let ticket = futures::executor::block_on(handle.ticket()).unwrap();
    /// handle.invalidate(ticket.generation());
    /// assert!(handle.try_ticket().is_none());
    /// ```
    pub fn invalidate(&self, generation: Generation) {
        self.input(|board, now| board.core.handle_invalidate(now, generation));
    }

    fn input(&self, f: impl FnOnce(&mut Board<T, E, Waker>, Timestamp)) {
        let shared = &self.shared;
        let mut after = Aftermath::new();
        {
            let mut state = shared.state.lock();
            let now = shared.clock.now();
            f(&mut state.board, now);
            shared.settle(&mut state, now, &mut after);
        }
        after.run(&shared.snapshot);
    }
}

// The handle is shared across tasks and threads; a ticket travels with its
// request's future.
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    send_sync::<Handle<String, std::io::Error>>();
    send_sync::<Ticket<String>>();
    send_sync::<Builder>();
};
