//! What the board writes down for an observed handle (feature `observe`):
//! each step of the core it drives, as [`Event`]s, the way
//! [`check::Recorder`](crate::check::Recorder) writes down a bare core's,
//! but with the handle's own request numbers and without the refresher
//! call's start and end, which the handle reports at the call itself.

use std::collections::HashMap;
use std::sync::Arc;

use super::observe::{Observer, Outbox, Seen};
use crate::check::Event;
use crate::{Action, Core, Generation, Next, Phase, RefreshId, RequestId, Timestamp};

/// The core's state before an input, to tell what the input changed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Before {
    in_flight: Option<RefreshId>,
    generation: Generation,
}

impl Before {
    pub(crate) fn of<T, E>(core: &Core<T, E>) -> Self {
        Before {
            in_flight: core.in_flight(),
            generation: core.generation(),
        }
    }
}

/// Who asks the core for a token.
pub(crate) enum Asking {
    /// A new request.
    New,
    /// A request whose token `generation` the server rejected; `seen` is
    /// its number if its ticket came from this observed handle.
    Rejected {
        seen: Option<RequestId>,
        generation: Generation,
    },
}

/// What caused a step, to tell an attempt given up from one that answered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cause {
    Answer(RefreshId),
    Timeout,
    Other,
}

/// The board's side of an observed handle: the events of the step under
/// way, queued when the step publishes.
pub(crate) struct Watch {
    observer: Arc<Observer>,
    events: Vec<(Timestamp, Event)>,
    /// The handle's number for each request waiting in the core, by the
    /// core's name for it, until the core answers it or it cancels (S7: as
    /// many as wait).
    waiting: HashMap<RequestId, RequestId>,
    /// The phase last reported.
    phase: Phase,
}

impl Watch {
    pub(crate) fn new(observer: Arc<Observer>) -> Self {
        Watch {
            observer,
            events: Vec::new(),
            waiting: HashMap::new(),
            phase: Phase::Idle,
        }
    }

    pub(crate) fn observer(&self) -> &Arc<Observer> {
        &self.observer
    }

    fn push<T, E>(&mut self, core: &Core<T, E>, event: Event) {
        self.events.push((core.now(), event));
    }

    /// A request asked the core (under the core's name `core_id`) and got
    /// `next`. Returns what its ticket carries, if it is sent at once.
    pub(crate) fn asked<T, E>(
        &mut self,
        core: &Core<T, E>,
        before: Before,
        core_id: RequestId,
        asking: Asking,
        next: &Next<T, E>,
    ) -> Option<Seen> {
        self.stepped(core, before, Cause::Other);
        let id = match asking {
            Asking::New => self.arrived(core),
            Asking::Rejected { seen, generation } => {
                let id = seen.unwrap_or_else(|| self.arrived(core));
                self.push(core, Event::Rejected { id, generation });
                id
            }
        };
        match next {
            Next::Send(lease) => {
                let generation = lease.generation();
                self.push(core, Event::Sent { id, generation });
                return Some(Seen::new(&self.observer, id));
            }
            Next::Wait => {
                self.push(core, Event::Waiting { id });
                self.waiting.insert(core_id, id);
            }
            Next::Fail(_) => self.push(core, Event::Failed { id }),
        }
        None
    }

    fn arrived<T, E>(&mut self, core: &Core<T, E>) -> RequestId {
        let id = self.observer.request();
        self.push(core, Event::Arrived { id });
        id
    }

    /// The refresher's answer to `attempt` went to the core.
    pub(crate) fn refreshed<T, E>(
        &mut self,
        core: &Core<T, E>,
        before: Before,
        attempt: RefreshId,
        expires_at: Option<Timestamp>,
    ) {
        self.stepped(core, before, Cause::Answer(attempt));
        self.new_generation(core, before, expires_at, Some(attempt));
    }

    /// A token from elsewhere became current.
    pub(crate) fn set_token<T, E>(
        &mut self,
        core: &Core<T, E>,
        before: Before,
        expires_at: Option<Timestamp>,
    ) {
        self.stepped(core, before, Cause::Other);
        self.new_generation(core, before, expires_at, None);
    }

    /// The user declared `generation` bad.
    pub(crate) fn invalidated<T, E>(
        &mut self,
        core: &Core<T, E>,
        before: Before,
        generation: Generation,
    ) {
        self.stepped(core, before, Cause::Other);
        self.push(core, Event::Invalidated { generation });
    }

    /// A deadline of the core passed.
    pub(crate) fn timed_out<T, E>(&mut self, core: &Core<T, E>, before: Before) {
        self.stepped(core, before, Cause::Timeout);
    }

    /// One of the core's actions: a waiter resumed or failed.
    pub(crate) fn action<T, E>(&mut self, core: &Core<T, E>, action: &Action<T, E>) {
        let event = match action {
            Action::Resume { id, lease } => self.waiting.remove(id).map(|id| Event::Sent {
                id,
                generation: lease.generation(),
            }),
            Action::Fail { id, .. } => self.waiting.remove(id).map(|id| Event::Failed { id }),
            // The call's start and end are reported where the call is made
            // and where its future ends.
            Action::StartRefresh { .. } | Action::AbandonRefresh { .. } => None,
        };
        if let Some(event) = event {
            self.push(core, event);
        }
    }

    /// After a step's actions: the phase the core is in, if it changed.
    pub(crate) fn phase<T, E>(&mut self, core: &Core<T, E>) {
        let phase = core.phase();
        if phase != self.phase {
            self.phase = phase;
            self.push(core, Event::PhaseChanged { phase });
        }
    }

    /// The handle's number for the request the core waits as `core_id`.
    pub(crate) fn waiting_id(&self, core_id: RequestId) -> Option<RequestId> {
        self.waiting.get(&core_id).copied()
    }

    /// The waiter `core_id` gave up before the core answered it.
    pub(crate) fn cancelled<T, E>(&mut self, core: &Core<T, E>, core_id: RequestId) {
        if let Some(id) = self.waiting.remove(&core_id) {
            self.push(core, Event::Cancelled { id });
        }
    }

    /// The request `id` was answered a token and gave up without reading
    /// it: it will not use it.
    pub(crate) fn unread<T, E>(&mut self, core: &Core<T, E>, id: RequestId) {
        self.push(core, Event::Cancelled { id });
    }

    /// Queues the step's events, in the critical section that publishes it.
    pub(crate) fn flush(&mut self, outbox: &mut Outbox) {
        for (at, event) in self.events.drain(..) {
            outbox.push(at, event);
        }
    }

    /// An attempt stops being in flight without an answer only by timing
    /// out or by being superseded by a new token; anything else (say, a
    /// second attempt replacing it) is not excused, and the checker still
    /// counts it in flight.
    fn stepped<T, E>(&mut self, core: &Core<T, E>, before: Before, cause: Cause) {
        let Some(attempt) = before.in_flight else {
            return;
        };
        let answered = cause == Cause::Answer(attempt);
        let excused = cause == Cause::Timeout || core.generation() != before.generation;
        if core.in_flight() != Some(attempt) && !answered && excused {
            self.push(core, Event::RefreshAbandoned { attempt });
        }
    }

    fn new_generation<T, E>(
        &mut self,
        core: &Core<T, E>,
        before: Before,
        expires_at: Option<Timestamp>,
        from: Option<RefreshId>,
    ) {
        let generation = core.generation();
        if generation != before.generation {
            self.push(
                core,
                Event::NewGeneration {
                    generation,
                    expires_at,
                    from,
                },
            );
        }
    }
}
