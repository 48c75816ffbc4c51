//! The handle observer (feature `observe`): where a handle's own history
//! goes, as [`check::Event`](crate::check::Event)s for
//! [`check::Monitor`](crate::check::Monitor) to judge.
//!
//! The board writes each step's events down under the handle's lock and
//! queues them here in the same critical section; they reach the user's
//! observer only once the lock is released ([`Observer::emit`]), one at a
//! time and in the order they were queued, whichever thread emits. The
//! observer is user code: it may call back into the handle.
//!
//! Three kinds of event are not the core's and are written where they
//! happen: the refresher call (started when the refresher is called, ended
//! when its future completes, dropped when the future goes unfinished, by a
//! guard on that very future, [`CallGuard`]); the fast path's requests
//! ([`fast_ticket`]); and a ticket's end ([`Seen`], on drop).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::board::Published;
use super::clock::Clock;
use super::ticket::Ticket;
use crate::check::Event;
use crate::sync::{Mutex, MutexGuard, SnapshotCell};
use crate::{RefreshId, RequestId, Timestamp};

/// What a user gives [`Builder::observe`](crate::Builder::observe).
pub(crate) type Report = Arc<dyn Fn(Timestamp, Event) + Send + Sync + 'static>;

/// One handle's observer, its queue of events not yet reported, and the
/// numbering of its requests.
pub(crate) struct Observer {
    report: Report,
    clock: Clock,
    /// The last request number given out. Requests are numbered here, not
    /// by the core: the fast path's never reach the core, and a rejection
    /// the core names anew is still the same request to the observer.
    requests: AtomicU64,
    outbox: Mutex<Outbox>,
}

/// Events queued and not yet reported.
pub(crate) struct Outbox {
    queue: VecDeque<(Timestamp, Event)>,
    /// A thread is reporting: it reports what others queue meanwhile, so
    /// that the observer sees one sequence in queue order.
    emitting: bool,
}

impl Outbox {
    pub(crate) fn push(&mut self, at: Timestamp, event: Event) {
        self.queue.push_back((at, event));
    }
}

impl Observer {
    pub(crate) fn new(report: Report, clock: Clock) -> Self {
        Observer {
            report,
            clock,
            requests: AtomicU64::new(0),
            outbox: Mutex::new(Outbox {
                queue: VecDeque::new(),
                emitting: false,
            }),
        }
    }

    /// A new request's number.
    pub(crate) fn request(&self) -> RequestId {
        RequestId(self.requests.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// The queue, held while a step publishes its snapshot and queues its
    /// events: the fast path reads the snapshot under it too, so that its
    /// `Sent` falls on the right side of the step that changed the token.
    pub(crate) fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock()
    }

    /// Queues `event`, stamped now, and reports. Never call it with the
    /// handle's lock held: it reads the clock and runs the observer.
    pub(crate) fn report_now(&self, event: Event) {
        let now = self.clock.now();
        self.outbox.lock().push(now, event);
        self.emit();
    }

    /// Reports every queued event, in order, unless another thread (or an
    /// outer call on this one, from inside the observer) is already at it.
    /// Never call it with the handle's lock held.
    pub(crate) fn emit(&self) {
        {
            let mut outbox = self.outbox.lock();
            if outbox.emitting || outbox.queue.is_empty() {
                return;
            }
            outbox.emitting = true;
        }
        let reporting = Reporting(self);
        loop {
            let next = {
                let mut outbox = self.outbox.lock();
                match outbox.queue.pop_front() {
                    Some(next) => next,
                    None => {
                        // Lowered in the same critical section that found the
                        // queue empty: an event queued after it finds no one
                        // reporting and reports itself.
                        outbox.emitting = false;
                        break;
                    }
                }
            };
            (self.report)(next.0, next.1);
        }
        std::mem::forget(reporting);
    }

    /// The refresher call `attempt` is decided, under the handle's lock, at
    /// `at`: queued as started there, with the step's other events, so the
    /// history has it in the order of the core's decisions (a login that
    /// supersedes it a moment later, before the refresher has even run,
    /// comes after it, as it would after a call already on the wire).
    /// Returns the guard that reports how the call ends.
    pub(crate) fn call_decided(self: &Arc<Self>, at: Timestamp, attempt: RefreshId) -> CallGuard {
        self.outbox
            .lock()
            .push(at, Event::RefreshStarted { attempt });
        CallGuard {
            observer: Arc::clone(self),
            attempt,
            ended: false,
        }
    }
}

/// Lowers the reporting flag if the observer panics, so that later events
/// are still reported (by whoever queues next) rather than stuck behind a
/// flag no one will lower.
struct Reporting<'a>(&'a Observer);

impl Drop for Reporting<'_> {
    fn drop(&mut self) {
        self.0.outbox.lock().emitting = false;
    }
}

/// Reports the end of one refresher call. Guards S1's bookkeeping: a call
/// is outstanding at the endpoint until its future completes or is
/// dropped, so the guard lives exactly as long as that future (or, for the
/// blocking handle, that function call), and a call that panics or is
/// dropped unfinished is reported as dropped.
pub(crate) struct CallGuard {
    observer: Arc<Observer>,
    attempt: RefreshId,
    ended: bool,
}

impl CallGuard {
    /// The call completed with an answer (`ok`: a token).
    pub(crate) fn end(mut self, ok: bool) {
        self.ended = true;
        let attempt = self.attempt;
        self.observer
            .report_now(Event::RefreshEnded { attempt, ok });
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if !self.ended {
            let attempt = self.attempt;
            self.observer.report_now(Event::RefreshDropped { attempt });
        }
    }
}

/// A refresher call's future with its [`CallGuard`]: the guard goes with
/// the future, after it.
pub(crate) struct Counted<F> {
    future: F,
    guard: Option<CallGuard>,
}

impl<F> Counted<F> {
    pub(crate) fn new(future: F, guard: CallGuard) -> Self {
        Counted {
            future,
            guard: Some(guard),
        }
    }
}

impl<F, A, B> Future for Counted<F>
where
    F: Future<Output = Result<A, B>> + Unpin,
{
    type Output = Result<A, B>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = std::task::ready!(Pin::new(&mut this.future).poll(cx));
        if let Some(guard) = this.guard.take() {
            guard.end(result.is_ok());
        }
        Poll::Ready(result)
    }
}

/// What a ticket of an observed handle carries: its request, to report it
/// completed when the ticket goes (unless it goes back to the handle as a
/// rejection, which takes it).
pub(crate) struct Seen {
    /// `None` once taken back as a rejection.
    observer: Option<Arc<Observer>>,
    id: RequestId,
}

impl Seen {
    pub(crate) fn new(observer: &Arc<Observer>, id: RequestId) -> Self {
        Seen {
            observer: Some(Arc::clone(observer)),
            id,
        }
    }

    /// The request, which goes on (rejected): not reported completed.
    pub(crate) fn into_id(mut self) -> RequestId {
        self.observer = None;
        self.id
    }
}

impl Drop for Seen {
    fn drop(&mut self) {
        if let Some(observer) = self.observer.take() {
            observer.report_now(Event::Completed { id: self.id });
        }
    }
}

/// The fast path of an observed handle: as [`super::fast_ticket`], and the
/// request is reported arrived and sent. The clock is read first (it may be
/// user code); the snapshot is read and the events queued under the queue's
/// lock, which every step holds while it publishes, so the history has the
/// send on the same side of a new token as the snapshot it read.
pub(crate) fn fast_ticket<T>(
    cell: &SnapshotCell<Published<T>>,
    observer: &Arc<Observer>,
) -> Option<Ticket<T>> {
    let now = observer.clock.now();
    let ticket = {
        let mut outbox = observer.outbox();
        let guard = cell.load();
        let snapshot = guard.snapshot.as_ref()?;
        if now >= snapshot.valid_until {
            return None;
        }
        let id = observer.request();
        let generation = snapshot.lease.generation();
        outbox.push(now, Event::Arrived { id });
        outbox.push(now, Event::Sent { id, generation });
        Ticket::fast(guard).seen(Seen::new(observer, id))
    };
    observer.emit();
    Some(ticket)
}
