//! A waiting request's future, and the [`Beacon`] that keeps the refresh
//! driven by whoever is still waiting.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::{Aftermath, Shared};
use crate::front::{Board, HandleError, Place, Seat, Ticket};
use crate::sync::Mutex;

/// The waker of the refresh and timer futures.
///
/// Waking it raises a flag and wakes the *appointed* waiter, the last one
/// polled. Whoever then finds the flag up while work is parked takes the
/// work out and polls it. Flag and appointment live under one small lock:
/// a waiter appoints itself and reads the flag in one critical section, so
/// a wake either comes before it (the waiter sees the flag) or after (the
/// wake reaches the waiter).
#[derive(Debug)]
pub(super) struct Beacon(Mutex<Signal>);

#[derive(Debug, Default)]
struct Signal {
    /// The refresh or timer future was woken, or new work is due, and no
    /// waiter has taken the work out since.
    raised: bool,
    appointed: Option<(Seat, Waker)>,
}

impl Beacon {
    pub(super) fn new() -> Self {
        Beacon(Mutex::new(Signal::default()))
    }

    /// Raises the flag; returns the appointed waiter's waker to wake.
    pub(super) fn raise(&self) -> Option<Waker> {
        let mut signal = self.0.lock();
        signal.raised = true;
        signal.appointed.as_ref().map(|(_, w)| w.clone())
    }

    /// Lowers the flag; returns whether it was up (the caller then takes
    /// all parked work out, as a waiter would).
    pub(super) fn take_raised(&self) -> bool {
        std::mem::take(&mut self.0.lock().raised)
    }

    /// If the flag is up, the appointed waiter's waker, to make sure it
    /// comes for the work.
    pub(super) fn pending(&self) -> Option<Waker> {
        let signal = self.0.lock();
        let (_, waker) = signal.appointed.as_ref().filter(|_| signal.raised)?;
        Some(waker.clone())
    }

    /// Appoints the waiter at `id` and returns whether the flag is up;
    /// lowers it if `take` (the caller is taking the work out).
    fn appoint(&self, id: Seat, waker: &Waker, take: bool) -> bool {
        let mut signal = self.0.lock();
        if !matches!(&signal.appointed, Some((a, w)) if *a == id && w.will_wake(waker)) {
            signal.appointed = Some((id, waker.clone()));
        }
        let raised = signal.raised;
        if take {
            signal.raised = false;
        }
        raised
    }

    /// `id` leaves: if it was appointed, appoints another waiter and returns
    /// its waker, to wake it (it may have work to pick up).
    fn resign<T, E>(&self, id: Seat, board: &mut Board<T, E, Waker>) -> Option<Waker> {
        let mut signal = self.0.lock();
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
        if let Some(waker) = self.raise() {
            waker.wake();
        }
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
    place: Place,
    /// The outcome was read; nothing to clean up.
    done: bool,
}

impl<'a, T, E> Waiting<'a, T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    pub(super) fn new(shared: &'a Shared<T, E>, place: Place) -> Self {
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
            let mut after = Aftermath::new();
            let work = {
                let mut state = shared.state.lock();
                let seat = state.board.seat(this.place);
                if let Some(outcome) = state.board.take_outcome(this.place) {
                    this.done = true;
                    after
                        .wake
                        .extend(shared.beacon.resign(seat, &mut state.board));
                    drop(state);
                    after.run(&shared.snapshot);
                    return Poll::Ready(outcome);
                }
                let slot = state.board.waker_mut(this.place);
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
                state.take_work()
            };
            let done = shared.run(work);
            {
                let mut state = shared.state.lock();
                let now = shared.clock.now();
                shared.bring_back(&mut state, now, done, &mut after);
            }
            after.run(&shared.snapshot);
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
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let shared = self.shared;
        let mut after = Aftermath::new();
        {
            let mut state = shared.state.lock();
            let now = shared.clock.now();
            let seat = state.board.seat(self.place);
            state.board.cancel(now, self.place);
            shared.settle(&mut state, now, &mut after);
            after
                .wake
                .extend(shared.beacon.resign(seat, &mut state.board));
        }
        after.run(&shared.snapshot);
    }
}
