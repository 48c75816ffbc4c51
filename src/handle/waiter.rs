//! A waiting request's future, and the [`Beacon`] that keeps the refresh
//! driven by whoever is still waiting.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};

use super::shared::{Aftermath, Shared};
use crate::front::{Board, HandleError, Place, Seat, Ticket};
use crate::sync::{Mutex, SnapshotCell};

/// The waker of the refresh and timer futures.
///
/// Waking it raises a flag and wakes the *appointed* waiter, the last one
/// polled, and the handle's driver task if it has one. Whoever then finds
/// the flag up while work is parked takes the work out and polls it. Flag
/// and appointment live under one small lock: a waiter appoints itself and
/// reads the flag in one critical section, so a wake either comes before it
/// (the waiter sees the flag) or after (the wake reaches the waiter).
///
/// With no driver task, a wake also withholds the fast path's snapshot
/// until the work is picked up: an answer that comes while no one waits is
/// then polled by the next request, before anything else (the driving
/// contract), instead of being timed out unread.
pub(super) struct Beacon {
    signal: Mutex<Signal>,
    /// The handle, to withhold its snapshot; weak, because the refresh
    /// future that holds this waker lives in the handle.
    shared: Weak<dyn Withhold>,
}

/// What a beacon does to its handle when woken with no driver task.
pub(super) trait Withhold: Send + Sync {
    /// Empties the fast path's snapshot cell.
    fn withhold(&self);
}

#[derive(Debug, Default)]
struct Signal {
    /// The refresh or timer future was woken, or new work is due, and no
    /// one has taken the work out since.
    raised: bool,
    appointed: Option<(Seat, Waker)>,
    /// The handle's driver task, while one runs.
    driver: Option<Waker>,
    /// The snapshot cell was emptied by a wake and not refilled since.
    withheld: bool,
}

impl std::fmt::Debug for Beacon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Beacon")
            .field("signal", &self.signal)
            .finish_non_exhaustive()
    }
}

impl Beacon {
    pub(super) fn new(shared: Weak<dyn Withhold>) -> Self {
        Beacon {
            signal: Mutex::new(Signal::default()),
            shared,
        }
    }

    /// Raises the flag; returns the wakers to wake: the appointed waiter's
    /// and the driver's. With `withhold` (and no driver task), empties the
    /// fast path's snapshot until the work is picked up.
    pub(super) fn raise(&self, withhold: bool) -> [Option<Waker>; 2] {
        // Upgraded before locking and let go after: the last reference
        // going would drop the handle, and its futures' drops may wake this.
        let shared = self.shared.upgrade();
        let mut signal = self.signal.lock();
        signal.raised = true;
        if withhold && signal.driver.is_none() && !signal.withheld {
            if let Some(shared) = &shared {
                shared.withhold();
            }
            signal.withheld = true;
        }
        let wake = [
            signal.appointed.as_ref().map(|(_, w)| w.clone()),
            signal.driver.clone(),
        ];
        drop(signal);
        drop(shared);
        wake
    }

    /// Lowers the flag; returns whether it was up (the caller then takes
    /// all parked work out, as a waiter would).
    pub(super) fn take_raised(&self) -> bool {
        std::mem::take(&mut self.signal.lock().raised)
    }

    /// Lowers the flag of a wake that no work is left to answer (called
    /// under the state lock, which every new piece of work is made under,
    /// so no wake that matters is lost); the next snapshot published is
    /// then stored again.
    pub(super) fn lower_stale(&self) {
        self.signal.lock().raised = false;
    }

    /// If the flag is up, the appointed waiter's and the driver's wakers, to
    /// make sure someone comes for the work.
    pub(super) fn pending(&self) -> [Option<Waker>; 2] {
        let signal = self.signal.lock();
        if !signal.raised {
            return [None, None];
        }
        [
            signal.appointed.as_ref().map(|(_, w)| w.clone()),
            signal.driver.clone(),
        ]
    }

    /// Stores the snapshot the board publishes (called under the state
    /// lock), unless a wake withholds it: `changed` says whether it differs
    /// from the last one published.
    pub(super) fn publish<S>(
        &self,
        cell: &SnapshotCell<S>,
        snapshot: Option<Arc<S>>,
        changed: bool,
    ) {
        let mut signal = self.signal.lock();
        if signal.raised && signal.driver.is_none() {
            if !signal.withheld {
                cell.store(None);
                signal.withheld = true;
            }
        } else if changed || signal.withheld {
            cell.store(snapshot);
            signal.withheld = false;
        }
    }

    /// The driver task at `waker` takes over; returns whether the flag is
    /// up, and lowers it if `take` (the driver takes the work out).
    pub(super) fn drive(&self, waker: &Waker, take: bool) -> bool {
        let mut signal = self.signal.lock();
        if !signal.driver.as_ref().is_some_and(|w| w.will_wake(waker)) {
            signal.driver = Some(waker.clone());
        }
        let raised = signal.raised;
        if take {
            signal.raised = false;
        }
        raised
    }

    /// The driver task ends; returns its waker, if it was polled.
    pub(super) fn end_drive(&self) -> Option<Waker> {
        self.signal.lock().driver.take()
    }

    /// No waiter waits any more (their round was answered): none is
    /// appointed. Returns the waker let go, to drop after unlocking.
    pub(super) fn vacate(&self) -> Option<Waker> {
        self.signal.lock().appointed.take().map(|(_, waker)| waker)
    }

    /// Appoints the waiter at `id` and returns whether the flag is up;
    /// lowers it if `take` (the caller is taking the work out).
    fn appoint(&self, id: Seat, waker: &Waker, take: bool) -> bool {
        let mut signal = self.signal.lock();
        if !matches!(&signal.appointed, Some((a, w)) if *a == id && w.will_wake(waker)) {
            signal.appointed = Some((id, waker.clone()));
        }
        let raised = signal.raised;
        if take {
            signal.raised = false;
        }
        raised
    }

    /// `id` cancels while waiting: if it was appointed, appoints another
    /// waiter and returns its waker, to wake it (it may have work to pick
    /// up).
    fn resign<T, E>(&self, id: Seat, board: &mut Board<T, E, Waker>) -> Option<Waker> {
        let mut signal = self.signal.lock();
        if !matches!(&signal.appointed, Some((a, _)) if *a == id) {
            return None;
        }
        signal.appointed = board
            .first_waker()
            .map(|(seat, waker)| (seat, waker.clone()));
        signal.appointed.as_ref().map(|(_, w)| w.clone())
    }
}

impl Wake for Beacon {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.raise(true).into_iter().flatten().for_each(Waker::wake);
    }
}

/// The future of [`Handle::ticket`](super::Handle::ticket): the fast path
/// when first polled; otherwise it asks the core, and waits if told to.
///
/// Written out rather than left to an `async fn`: its state is one optional
/// [`Waiting`] (40 bytes, where the `async fn`'s was 112), so a request
/// that takes the fast path moves and matches on little more than a
/// pointer. Everything but the fast path is out of line.
pub(super) struct Asking<'a, T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    shared: &'a Shared<T, E>,
    waiting: Option<Waiting<'a, T, E>>,
}

impl<'a, T, E> Asking<'a, T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    pub(super) fn new(shared: &'a Shared<T, E>) -> Self {
        Asking {
            shared,
            waiting: None,
        }
    }

    /// Everything but the fast path: waits if it is waiting; otherwise asks
    /// the core, and on `Wait` starts waiting at once.
    #[inline(never)]
    fn slow(&mut self, cx: &mut Context<'_>) -> Poll<Result<Ticket<T>, HandleError<E>>> {
        if let Some(waiting) = &mut self.waiting {
            return Pin::new(waiting).poll(cx);
        }
        match self.shared.acquire() {
            Ok(Ok(ticket)) => Poll::Ready(Ok(ticket)),
            Ok(Err(place)) => {
                let waiting = self.waiting.insert(Waiting::new(self.shared, place));
                Pin::new(waiting).poll(cx)
            }
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

impl<T, E> Future for Asking<'_, T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    type Output = Result<Ticket<T>, HandleError<E>>;

    /// Always inlined, like the fast path it is: out of line (the compiler
    /// left it there in the user's crate) it cost a call and the ticket
    /// returned through memory, 23 instructions of a 140-instruction call.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.waiting.is_none() {
            if let Some(ticket) = this.shared.try_ticket() {
                return Poll::Ready(Ok(ticket));
            }
        }
        this.slow(cx)
    }
}

/// A request waiting for its outcome (a token to send with, or an error).
/// While it waits, it drives the refresh when the beacon asks.
pub(super) struct Waiting<'a, T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    shared: &'a Shared<T, E>,
    place: Place<T, E>,
    /// The outcome was read; nothing to clean up.
    done: bool,
}

impl<'a, T, E> Waiting<'a, T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    pub(super) fn new(shared: &'a Shared<T, E>, place: Place<T, E>) -> Self {
        Waiting {
            shared,
            place,
            done: false,
        }
    }
}

impl<T, E> Future for Waiting<'_, T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    type Output = Result<Ticket<T>, HandleError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let shared = this.shared;
        let mut worked = false;
        loop {
            // Woken by its round's answer, a waiter reads it without the
            // lock: a herd woken at once does not queue on it. It was
            // never appointed since (see `Beacon::vacate`): nothing to
            // hand on.
            if let Some(outcome) = this.place.outcome() {
                this.done = true;
                return Poll::Ready(outcome);
            }
            let mut after = Aftermath::new();
            let work = {
                let mut state = shared.state.lock();
                // Answered since it looked: the answer is read under this
                // lock, before anyone waits on a waker it would never get.
                if let Some(outcome) = this.place.outcome() {
                    this.done = true;
                    return Poll::Ready(outcome);
                }
                let seat = state.board.seat(&this.place);
                let slot = state.board.waker_mut(&this.place);
                if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *slot = Some(cx.waker().clone());
                }
                let parked = state.has_parked();
                // Take the work only once per poll; the flag is lowered only
                // by the waiter that takes it out.
                let take = parked && !worked;
                let raised = shared.beacon.appoint(seat, cx.waker(), take);
                if !parked || !raised {
                    return Poll::Pending;
                }
                if worked {
                    // The work woke itself while this poll ran it: come back
                    // through the executor rather than spin here.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                shared.take_work(&mut state)
            };
            let done = shared.run(work);
            let now = shared.clock.now();
            {
                let mut state = shared.state.lock();
                shared.bring_back(&mut state, now, done, &mut after);
            }
            after.run(shared);
            worked = true;
        }
    }
}

impl<T, E> Drop for Waiting<'_, T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// A waiter that goes away (its future dropped) leaves at once. This
    /// guards S3 and S7: the core forgets it, so it never counts against
    /// `max_waiters` and is never resumed into a dead task; and L1 for the
    /// others: if it was the appointed driver of the refresh, the
    /// appointment passes to another waiter, who is woken to take over.
    ///
    /// One whose round was answered is already forgotten by the core and
    /// the board, and is appointed no more: it goes with no lock (an
    /// observed one reports the token it leaves unused).
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let shared = self.shared;
        if self.place.answered() {
            #[cfg(feature = "observe")]
            self.place.report_unread();
            return;
        }
        let mut after = Aftermath::new();
        let now = shared.clock.now();
        {
            let mut state = shared.state.lock();
            let seat = (!self.place.answered()).then(|| state.board.seat(&self.place));
            state.board.cancel(now, &self.place);
            shared.settle(&mut state, now, &mut after);
            if let Some(seat) = seat {
                after
                    .wake
                    .extend(shared.beacon.resign(seat, &mut state.board));
            }
        }
        after.run(shared);
    }
}
