//! The async handle's shared state and the code that drives it: what runs
//! under the lock (asking the core, settling the board, making the refresh
//! and timer jobs follow the core) and what runs outside it (polling the
//! refresher's future and the timer, waking, dropping, logging).

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

use super::job::Job;
use super::sleep::{Sleep, SleepFuture, ThreadSleep};
use super::spawn::{Spawn, Task};
use super::waiter::{Beacon, Withhold};
use crate::front::log::{self, Note};
use crate::front::{
    self, Asked, Board, Driving, Fault, HandleError, Place, Published, Refresh, Ticket,
};
use crate::sync::{Mutex, SnapshotCell};
use crate::{Clock, Fresh, RefreshError, RefreshId, Timestamp};

/// The planted bugs' names, with or without the feature, so that the
/// checks for them read the same in both builds (without it, `is` is
/// always false).
#[cfg(feature = "mutants")]
use super::Mutant;
#[cfg(not(feature = "mutants"))]
#[derive(Clone, Copy)]
enum Mutant {
    DropTimedOutCall,
    ForgetToWakeRound,
}

/// What a request asking the core is told: a ticket to send with, a place
/// to wait in, or an error.
pub(super) type Told<T, E> = Result<Result<Ticket<T>, Place<T, E>>, HandleError<E>>;

pub(super) type RefreshResult<T, E> = Result<Fresh<T>, RefreshError<E>>;
pub(super) type RefreshFuture<T, E> =
    Pin<Box<dyn Future<Output = RefreshResult<T, E>> + Send + 'static>>;
pub(super) type Refresher<T, E> =
    Box<dyn Fn(Refresh<T>) -> RefreshFuture<T, E> + Send + Sync + 'static>;

pub(super) struct Shared<T, E> {
    /// What the fast path reads; written only under `state`'s lock, in the
    /// same critical section as the core transition it reflects (and
    /// emptied by the beacon, see [`Beacon`]).
    pub(super) snapshot: SnapshotCell<Published<T>>,
    pub(super) clock: Clock,
    pub(super) refresher: Refresher<T, E>,
    pub(super) sleep: Option<Arc<dyn Sleep>>,
    pub(super) spawner: Option<Arc<dyn Spawn>>,
    /// The waker given to the refresh and timer futures. Lock order:
    /// `state`, then the beacon's.
    pub(super) beacon: Arc<Beacon>,
    pub(super) state: Mutex<State<T, E>>,
    /// This, for the driver tasks it spawns.
    pub(super) this: Weak<Shared<T, E>>,
    /// Where the handle's history goes, if it is observed.
    #[cfg(feature = "observe")]
    pub(super) observer: Option<Arc<front::observe::Observer>>,
    /// The planted bug this handle runs with, if any.
    #[cfg(feature = "mutants")]
    pub(super) mutant: Option<super::Mutant>,
}

pub(super) struct State<T, E> {
    pub(super) board: Board<T, E, Waker>,
    /// The future of the core's outstanding call: kept after its attempt
    /// timed out (its answer may carry the only valid refresh token), and
    /// dropped when the core abandons the call. One at most: the token
    /// endpoint never sees two calls of this handle at once (S1).
    pub(super) refresh: Job<RefreshId, RefreshFuture<T, E>>,
    /// A sleep until the core's next deadline.
    pub(super) timer: Job<Timestamp, SleepFuture>,
    /// The user's [`Sleep`] panicked: timers come from [`ThreadSleep`]
    /// from then on (logged once), rather than stop.
    pub(super) timer_broken: bool,
    /// The driver task running, by number, if any.
    pub(super) driver: Option<u64>,
    /// Driver tasks spawned so far.
    pub(super) drivers: u64,
    /// The calls a planted bug keeps alive after telling the core they
    /// are over ([`Mutant::StartBesideOutstandingCall`](super::Mutant)).
    #[cfg(feature = "mutants")]
    zombies: Vec<RefreshFuture<T, E>>,
}

impl<T, E> State<T, E> {
    pub(super) fn new(board: Board<T, E, Waker>) -> Self {
        State {
            board,
            refresh: Job::Empty,
            timer: Job::Empty,
            timer_broken: false,
            driver: None,
            drivers: 0,
            #[cfg(feature = "mutants")]
            zombies: Vec::new(),
        }
    }

    /// Whether work waits to be taken out and polled.
    pub(super) fn has_parked(&self) -> bool {
        self.refresh.is_waiting() || self.timer.is_waiting()
    }

    /// Whether any refresh or timer job exists, parked or being polled: a
    /// wake can concern only one of them.
    fn has_work(&self) -> bool {
        self.refresh.key().is_some() || self.timer.key().is_some()
    }

    /// Whether a refresher call is out (made or due), wherever it is.
    fn has_call(&self) -> bool {
        self.refresh.key().is_some()
    }

    /// Takes every parked piece of work out, to poll outside the lock.
    pub(super) fn take_work(&mut self) -> Work<T, E> {
        // A call not made yet whose attempt a login (or a timeout) has
        // already superseded is never made: it would ask the endpoint for a
        // token no one needs, and its answer would be thrown away.
        if let Job::Start(attempt) = self.refresh {
            if self.board.core.in_flight() != Some(attempt) {
                self.board.unmade(attempt);
                self.refresh = Job::Empty;
            }
        }
        let refresh = self.refresh.take_out();
        // A call to make is told what it replaces, as the core has it now.
        let context = refresh
            .as_ref()
            .filter(|(_, fut)| fut.is_none())
            .map(|_| self.board.refresh_context());
        Work {
            refresh,
            context,
            #[cfg(feature = "observe")]
            decided: None,
            timer: self.timer.take_out(),
            timer_broken: self.timer_broken,
        }
    }
}

/// What must be done after the lock is released: report, wake tasks, spawn
/// the driver, drop futures (a future's drop may run user code that calls
/// back into the handle).
pub(super) struct Aftermath<T, E> {
    pub(super) wake: Vec<Waker>,
    /// The wakers of rounds answered, as the board took them.
    wake_rounds: Vec<Vec<Option<Waker>>>,
    /// A waker let go under the lock, dropped after it (a waker's drop is
    /// the executor's code).
    released: Vec<Waker>,
    drop_refresh: Vec<RefreshFuture<T, E>>,
    drop_sleep: Vec<SleepFuture>,
    notes: Vec<Note>,
    spawn: Option<Task>,
    /// The broken variant's snapshot, stored too late (see
    /// `Board::late_publish`).
    #[cfg(tokenflight_loom)]
    late_publish: Option<Option<Arc<Published<T>>>>,
}

impl<T, E> Aftermath<T, E> {
    pub(super) fn new() -> Self {
        Aftermath {
            wake: Vec::new(),
            wake_rounds: Vec::new(),
            released: Vec::new(),
            drop_refresh: Vec::new(),
            drop_sleep: Vec::new(),
            notes: Vec::new(),
            spawn: None,
            #[cfg(tokenflight_loom)]
            late_publish: None,
        }
    }

    /// Carries it out, with no lock held.
    pub(super) fn run(self, shared: &Shared<T, E>) {
        #[cfg(tokenflight_loom)]
        if let Some(snapshot) = self.late_publish {
            shared.snapshot.store(snapshot);
        }
        #[cfg(feature = "observe")]
        if let Some(observer) = &shared.observer {
            observer.emit();
        }
        log::emit(self.notes);
        self.wake.into_iter().for_each(Waker::wake);
        for round in self.wake_rounds {
            round.into_iter().flatten().for_each(Waker::wake);
        }
        if let (Some(task), Some(spawner)) = (self.spawn, &shared.spawner) {
            spawner.spawn(task);
        }
        drop(self.released);
        drop(self.drop_refresh);
        drop(self.drop_sleep);
    }
}

/// A refresh future polled: its answer for the core, or itself to park.
type Polled<T, E> = Result<RefreshResult<T, Fault<E>>, RefreshFuture<T, E>>;

/// Work taken out of the shared state, polled outside the lock.
pub(super) struct Work<T, E> {
    refresh: Option<(RefreshId, Option<RefreshFuture<T, E>>)>,
    /// What the call is told, if it is to be made.
    context: Option<Refresh<T>>,
    /// The call to make, as observed decided.
    #[cfg(feature = "observe")]
    decided: Option<front::observe::CallGuard>,
    timer: Option<(Timestamp, Option<SleepFuture>)>,
    timer_broken: bool,
}

/// What polling the work gave: an answer for the core, or a future to park.
pub(super) struct Done<T, E> {
    refresh: Option<(RefreshId, Polled<T, E>)>,
    timer: Option<(Timestamp, Option<SleepFuture>)>,
    timer_panicked: bool,
}

impl<T, E> Withhold for Shared<T, E>
where
    T: Send + Sync,
    E: Send + Sync,
{
    fn withhold(&self) {
        self.snapshot.store(None);
    }
}

impl<T, E> Shared<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    pub(super) fn key(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// After any input, under the lock: settles the board, then makes the
    /// refresh job follow the attempt the core has in flight and the timer
    /// follow the core's next deadline. A new call goes to a driver task
    /// when the handle can spawn one.
    pub(super) fn settle(
        &self,
        state: &mut State<T, E>,
        now: Timestamp,
        after: &mut Aftermath<T, E>,
    ) {
        let (beacon, cell) = (&self.beacon, &self.snapshot);
        if !state.has_work() {
            // A wake with no work of the handle's left to pick up (a dropped
            // timer whose deadline came anyway, a refresh future that wakes
            // after it answered) is for nothing: left up, its flag would
            // withhold the fast path's snapshot for good.
            beacon.lower_stale();
        }
        let settled = state.board.settle(now, &mut |snapshot, changed| {
            beacon.publish(cell, snapshot, changed);
        });
        if !settled.woken.is_empty() {
            // A round answered: no waiter waits any more (the core answers
            // all of them at once), so none stays appointed. A waiter that
            // reads its outcome is then never the appointed one, and leaves
            // with no lock; work that wakes meanwhile is withheld for the
            // next request to pick up, as when no one waits.
            after.released.extend(self.beacon.vacate());
        }
        if !self.is(Mutant::ForgetToWakeRound) {
            after.wake_rounds.extend(settled.woken);
        }
        after.notes.extend(settled.notes);
        #[cfg(all(feature = "observe", feature = "mutants"))]
        if let (Some(observer), true) = (&self.observer, self.is(Mutant::ReportUnderLock)) {
            observer.emit();
        }
        #[cfg(feature = "mutants")]
        if self.is(Mutant::StartBesideOutstandingCall) {
            let core = &state.board.core;
            if let Some(attempt) = core
                .outstanding_call()
                .filter(|a| core.in_flight() != Some(*a))
            {
                if let Job::Parked(..) = state.refresh {
                    if let Some((_, Some(future))) = state.refresh.take_out() {
                        state.zombies.push(future);
                    }
                    state.refresh = Job::Empty;
                    state.board.unmade(attempt);
                    return self.settle(state, now, after);
                }
            }
        }
        #[cfg(tokenflight_loom)]
        if let Some(late) = &mut state.board.late_publish {
            after.late_publish = late.take();
        }
        // The job follows the core's outstanding call: a call the core
        // abandons ([`Action::AbandonRefresh`](crate::core::Action)) is no
        // longer it, and its future goes (one out being polled is dropped by
        // its poller, finding no place to come back to). The core starts no
        // call while one is outstanding, so a new job never replaces a live
        // one.
        let core = &state.board.core;
        let call = core.outstanding_call();
        let call = if self.is(Mutant::DropTimedOutCall) {
            call.filter(|a| core.in_flight() == Some(*a))
        } else {
            call
        };
        let (new_refresh, replaced) = state.refresh.retarget(call);
        if let Some((_, future)) = replaced {
            after.drop_refresh.extend(future);
        }
        let deadline = self.sleep.as_ref().and(state.board.core.poll_timeout());
        let (new_timer, old) = state.timer.retarget(deadline);
        after.drop_sleep.extend(old.and_then(|(_, future)| future));
        if state.driver.is_some() && !state.has_call() {
            // A request took the call out and brought its answer back: the
            // driver task has nothing left to do and must hear so, or it
            // would wait for a wake that never comes, holding the handle.
            state.driver = None;
            after.wake.extend(self.beacon.end_drive());
        }
        if new_refresh && state.driver.is_none() {
            if let Some(shared) = self.spawner_ready() {
                state.drivers += 1;
                state.driver = Some(state.drivers);
                after.spawn = Some(Box::pin(Driver {
                    shared,
                    id: state.drivers,
                    dispatch: tracing::dispatcher::get_default(Clone::clone),
                }));
            }
        }
        if new_refresh || new_timer {
            // New work: make sure someone comes to pick it up.
            let withhold = state.driver.is_none();
            after
                .wake
                .extend(self.beacon.raise(withhold).into_iter().flatten());
        }
    }

    /// Whether this handle runs with the planted bug `mutant`.
    #[allow(unused_variables)]
    fn is(&self, mutant: Mutant) -> bool {
        #[cfg(feature = "mutants")]
        return self.mutant == Some(mutant);
        #[cfg(not(feature = "mutants"))]
        false
    }

    /// This handle, to hand to a driver task, if it has a spawner that can
    /// run one now.
    fn spawner_ready(&self) -> Option<Arc<Shared<T, E>>> {
        self.spawner.as_ref().filter(|s| s.can_spawn())?;
        self.this.upgrade()
    }

    /// The fast path of `try_ticket` and `ticket`: the published token if
    /// it is valid now (an observed handle reports the request).
    #[inline(always)]
    pub(super) fn try_ticket(&self) -> Option<Ticket<T>> {
        #[cfg(feature = "observe")]
        if let Some(observer) = &self.observer {
            return front::observe::fast_ticket(&self.snapshot, observer);
        }
        front::fast_ticket(&self.snapshot, &self.clock)
    }

    /// The slow path of `ticket`: a new request asks the core. Kept out of
    /// line so that the fast path it follows stays as small as a bare
    /// snapshot read.
    #[cold]
    #[inline(never)]
    pub(super) fn acquire(&self) -> Told<T, E> {
        self.ask(|board, now| board.acquire(now))
    }

    /// Asks the core (under the lock) and, on `Wait`, returns the request's
    /// place; a refresher asking its own handle fails at once (see
    /// [`Driving`]).
    ///
    /// The driving contract, for the requests that do not wait: work that
    /// woke while no one waited (a late answer, a timer) is polled before
    /// the core is asked, so that an answer is never timed out unread; a
    /// call the core starts is made at once, when no driver task makes it.
    pub(super) fn ask(
        &self,
        f: impl FnOnce(&mut Board<T, E, Waker>, Timestamp) -> Asked<T, E>,
    ) -> Told<T, E> {
        self.drive(false);
        let mut after = Aftermath::new();
        let now = self.clock.now();
        let asked = {
            let mut state = self.state.lock();
            let mut asked = f(&mut state.board, now);
            if matches!(asked, Asked::Wait(_)) && Driving::is_active(self.key()) {
                let reentrant = Asked::Fail(front::reentrant());
                if let Asked::Wait(place) = std::mem::replace(&mut asked, reentrant) {
                    state.board.cancel(now, &place);
                }
            }
            self.settle(&mut state, now, &mut after);
            asked
        };
        after.run(self);
        self.drive(true);
        match asked {
            Asked::Send(ticket) => Ok(Ok(ticket)),
            Asked::Wait(place) => Ok(Err(place)),
            Asked::Fail(error) => Err(error),
        }
    }

    /// An input that answers no one (a login, an invalidation), then the
    /// driving contract as in [`ask`](Shared::ask).
    pub(super) fn input(&self, f: impl FnOnce(&mut Board<T, E, Waker>, Timestamp)) {
        let mut after = Aftermath::new();
        let now = self.clock.now();
        {
            let mut state = self.state.lock();
            f(&mut state.board, now);
            self.settle(&mut state, now, &mut after);
        }
        after.run(self);
        self.drive(true);
    }

    /// Polls the parked work once, as a waiter would, if it woke (or, with
    /// `start`, if a call is due to be made and no driver task makes it).
    /// A refresher asking its own handle (its future is out) never drives.
    ///
    /// With `start`, a call that this polling itself started (an answer
    /// that let a queued attempt go) is made too, before returning: the
    /// driving contract says a call the core starts is made at once, and a
    /// call left unmade until the next caller may be made after a login
    /// has already superseded it. This ends: each round past the first
    /// makes a new call, which the core starts only once the previous one
    /// has ended, and a round's attempts are bounded
    /// (`max_refresh_attempts`), after which it fails and starts nothing
    /// until a new input.
    fn drive(&self, start: bool) {
        if Driving::is_active(self.key()) {
            return;
        }
        let mut first = true;
        loop {
            let work = {
                let mut state = self.state.lock();
                let due = start && state.driver.is_none() && state.refresh.is_start();
                if !state.has_parked() {
                    return;
                }
                if first {
                    if !(self.beacon.take_raised() || due) {
                        return;
                    }
                } else if due {
                    self.beacon.take_raised();
                } else {
                    return;
                }
                self.take_work(&mut state)
            };
            first = false;
            let done = self.run(work);
            let now = self.clock.now();
            let mut after = Aftermath::new();
            {
                let mut state = self.state.lock();
                self.bring_back(&mut state, now, done, &mut after);
                // Work that woke itself while out may have found no one to
                // take it: make sure whoever is appointed comes back for it.
                if state.has_parked() {
                    after
                        .wake
                        .extend(self.beacon.pending().into_iter().flatten());
                }
            }
            after.run(self);
        }
    }

    /// Takes the parked work out, under the lock. A call to make is decided
    /// here, and observed started in this critical section.
    pub(super) fn take_work(&self, state: &mut State<T, E>) -> Work<T, E> {
        #[allow(unused_mut)]
        let mut work = state.take_work();
        #[cfg(feature = "observe")]
        if let (Some(observer), Some((attempt, None)), true) =
            (&self.observer, &work.refresh, work.context.is_some())
        {
            work.decided = Some(observer.call_decided(state.board.core.now(), *attempt));
        }
        work
    }

    /// Polls the work taken out, outside the lock, with the beacon's waker.
    /// Panics of the refresher are caught and become a [`Fault::Panicked`];
    /// a panicking timer is replaced by the thread timer.
    pub(super) fn run(&self, work: Work<T, E>) -> Done<T, E> {
        let waker = Waker::from(Arc::clone(&self.beacon));
        let mut cx = Context::from_waker(&waker);
        let _driving = Driving::enter(self.key());
        let mut context = work.context;
        #[cfg(feature = "observe")]
        let mut decided = work.decided;
        #[cfg(not(feature = "observe"))]
        let mut decided = None::<()>;
        let refresh = work.refresh.map(|(attempt, fut)| {
            let fut = fut.ok_or_else(|| context.take());
            (attempt, self.poll_refresh(decided.take(), fut, &mut cx))
        });
        let mut timer_panicked = false;
        let timer = work.timer.map(|(deadline, fut)| {
            let polled = panic::catch_unwind(AssertUnwindSafe(|| {
                let mut fut = fut.unwrap_or_else(|| {
                    let duration = deadline.saturating_since(self.clock.now());
                    match &self.sleep {
                        Some(_) if work.timer_broken => ThreadSleep.sleep(duration),
                        Some(sleep) => sleep.sleep(duration),
                        None => Box::pin(std::future::ready(())),
                    }
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

    /// Polls a refresh future, making it first (the call is made) if `fut`
    /// is the context to make it with.
    fn poll_refresh(
        &self,
        #[cfg(feature = "observe")] decided: Option<front::observe::CallGuard>,
        #[cfg(not(feature = "observe"))] decided: Option<()>,
        fut: Result<RefreshFuture<T, E>, Option<Refresh<T>>>,
        cx: &mut Context<'_>,
    ) -> Polled<T, E> {
        let polled = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut fut = fut.unwrap_or_else(|context| {
                let context = context.expect("a call to make comes with its context");
                #[cfg(feature = "observe")]
                if let Some(guard) = decided {
                    // Reported dropped if the refresher panics before it
                    // returns a future.
                    let future = (self.refresher)(context);
                    return Box::pin(front::observe::Counted::new(future, guard));
                }
                #[cfg(not(feature = "observe"))]
                let _ = decided;
                (self.refresher)(context)
            });
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
    pub(super) fn bring_back(
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
                        .extend(state.refresh.bring_back(attempt, None));
                    state.board.refreshed(now, attempt, result);
                }
                Err(pending) => after
                    .drop_refresh
                    .extend(state.refresh.bring_back(attempt, Some(pending))),
            }
        }
        if let Some((deadline, pending)) = done.timer {
            after
                .drop_sleep
                .extend(state.timer.bring_back(deadline, pending));
        }
        if done.timer_panicked && !state.timer_broken {
            state.timer_broken = true;
            after.notes.push(Note::TimerBroken);
        }
        self.settle(state, now, after);
    }

    /// One poll of the driver task `id`: it takes the work out whenever the
    /// beacon wakes it, until no call is left.
    fn drive_task(&self, id: u64, cx: &mut Context<'_>) -> Poll<()> {
        let mut worked = false;
        loop {
            let work = {
                let mut state = self.state.lock();
                if state.driver != Some(id) {
                    return Poll::Ready(());
                }
                if !state.has_call() {
                    state.driver = None;
                    drop(self.beacon.end_drive());
                    return Poll::Ready(());
                }
                let parked = state.has_parked();
                let raised = self.beacon.drive(cx.waker(), parked && !worked);
                if !parked || !raised {
                    return Poll::Pending;
                }
                if worked {
                    // The work woke itself while this poll ran it: come back
                    // through the executor rather than spin here.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                self.take_work(&mut state)
            };
            let done = self.run(work);
            let now = self.clock.now();
            let mut after = Aftermath::new();
            {
                let mut state = self.state.lock();
                self.bring_back(&mut state, now, done, &mut after);
            }
            after.run(self);
            worked = true;
        }
    }

    /// The driver task `id` went away, done or not: if it was the handle's,
    /// the handle has none, and whoever comes next picks up its work.
    fn end_driver(&self, id: u64) {
        let mut wake = Vec::new();
        {
            let mut state = self.state.lock();
            if state.driver != Some(id) {
                return;
            }
            state.driver = None;
            drop(self.beacon.end_drive());
            if state.has_parked() {
                wake.extend(self.beacon.raise(true).into_iter().flatten());
            }
        }
        wake.into_iter().for_each(Waker::wake);
    }
}

/// The task that makes and polls the handle's refresher call when a
/// spawner is given: the call then runs whether anyone waits or not. It
/// carries the `tracing` dispatcher of the request that started the call,
/// so its events go where that request's go.
struct Driver<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    shared: Arc<Shared<T, E>>,
    id: u64,
    dispatch: tracing::Dispatch,
}

impl<T, E> Future for Driver<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        tracing::dispatcher::with_default(&this.dispatch, || this.shared.drive_task(this.id, cx))
    }
}

impl<T, E> Drop for Driver<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// Guards L1: a driver task dropped before its call ended (its
    /// executor shut down) hands the call back to the requests.
    fn drop(&mut self) {
        self.shared.end_driver(self.id);
    }
}
