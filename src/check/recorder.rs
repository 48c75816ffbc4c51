//! Drives a [`Core`] and writes down, as [`Event`]s, what it is seen to do,
//! feeding each to a [`Monitor`].

use std::collections::VecDeque;

use super::{Event, Limits, Monitor};
use crate::{
    Action, Core, Fresh, Generation, Lease, Next, Phase, RefreshError, RefreshId, RequestId,
    Timestamp,
};

/// A [`Core`] with a [`Monitor`] watching every step.
///
/// It has the core's inputs (without the `handle_` prefix), translates each
/// step's inputs and outputs into [`Event`]s and passes them to the monitor,
/// and optionally keeps the whole history. The proptest suite, the explorer
/// and the simulator all drive the core through it, so every layer checks
/// the same S1–S7.
///
/// # Examples
///
/// ```
/// use tokenflight::check::Recorder;
/// use tokenflight::core::{Action, Core, Next, RequestId};
/// use tokenflight::{Config, Fresh, Timestamp};
///
/// let core: Core<&str, ()> = Core::new(Config::default()).unwrap();
/// let mut rec = Recorder::new(core).logging();
/// let t = Timestamp::ZERO;
/// assert!(matches!(rec.acquire(t, RequestId(1)), Next::Wait));
/// let Some(Action::StartRefresh { attempt }) = rec.poll_action() else { panic!() };
/// rec.refreshed(t, attempt, Ok(Fresh::new("tok")));
/// let Some(Action::Resume { id, .. }) = rec.poll_action() else { panic!() };
/// rec.complete(id);
/// rec.finish();
/// assert!(rec.monitor().first_violation().is_none());
/// assert_eq!(rec.log().unwrap().len(), 9);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recorder<T, E> {
    core: Core<T, E>,
    monitor: Monitor,
    outbox: VecDeque<Action<T, E>>,
    log: Option<Vec<(Timestamp, Event)>>,
}

/// What an input was, for writing its step down.
enum Input {
    Acquire(RequestId),
    Reject(RequestId, Generation),
    Refreshed(RefreshId, bool, Option<Timestamp>),
    Timeout,
    SetToken(Option<Timestamp>),
    Invalidate(Generation),
}

impl<T, E> Recorder<T, E> {
    /// Watches `core` with the limits its configuration promises.
    pub fn new(core: Core<T, E>) -> Self {
        let monitor = Monitor::new(Limits::of(core.config()));
        Recorder {
            core,
            monitor,
            outbox: VecDeque::new(),
            log: None,
        }
    }

    /// Also keeps every event, for traces and counterexamples.
    pub fn logging(mut self) -> Self {
        self.log = Some(Vec::new());
        self
    }

    /// The core under watch.
    pub fn core(&self) -> &Core<T, E> {
        &self.core
    }

    /// The checker's verdict so far.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// The history so far, if [`logging`](Recorder::logging).
    pub fn log(&self) -> Option<&[(Timestamp, Event)]> {
        self.log.as_deref()
    }

    /// Takes the history written so far, leaving logging on with an empty
    /// log; empty if not [`logging`](Recorder::logging). Lets a long run
    /// stream its history out instead of holding all of it.
    pub fn take_log(&mut self) -> Vec<(Timestamp, Event)> {
        self.log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Whether a driver's own books agree with what the core says of
    /// itself: `waiting` requests parked, `outstanding` the attempts whose
    /// calls it has made and not yet seen end. The first disagreement, if
    /// any, in words.
    ///
    /// # Errors
    ///
    /// The first disagreement found.
    pub fn books_agree(
        &self,
        waiting: usize,
        outstanding: &std::collections::BTreeSet<RefreshId>,
    ) -> Result<(), String>
    where
        T: std::fmt::Debug,
    {
        let core = &self.core;
        if waiting != core.waiters() {
            return Err(format!(
                "books: {waiting} waiting, core: {}",
                core.waiters()
            ));
        }
        if core.phase() != Phase::Refreshing && waiting > 0 {
            return Err(format!("{waiting} waiting while {:?}", core.phase()));
        }
        if core.in_flight().is_some_and(|a| !outstanding.contains(&a)) {
            return Err("the attempt in flight was already answered".into());
        }
        if core
            .outstanding_call()
            .is_some_and(|a| !outstanding.contains(&a))
        {
            return Err("the outstanding call was already answered or abandoned".into());
        }
        if let Some(snap) = core.snapshot() {
            // `Timestamp::MAX` stands for "never", even at the end of time
            // (where the fast path then asks the core, which is harmless).
            let stale = snap.valid_until <= core.now() && snap.valid_until != Timestamp::MAX;
            if snap.lease.generation() != core.generation() || stale {
                return Err(format!("stale snapshot {snap:?} at {}", core.now()));
            }
        }
        Ok(())
    }

    /// [`Core::handle_acquire`], for a new request.
    pub fn acquire(&mut self, now: Timestamp, id: RequestId) -> Next<T, E> {
        let before = self.before();
        let next = self.core.handle_acquire(now, id);
        self.after(before, Input::Acquire(id), Some((id, &next)));
        next
    }

    /// [`Core::handle_rejection`]: the server rejected request `id`'s token.
    pub fn reject(&mut self, now: Timestamp, id: RequestId, lease: &Lease<T>) -> Next<T, E> {
        let before = self.before();
        let next = self.core.handle_rejection(now, id, lease);
        self.after(
            before,
            Input::Reject(id, lease.generation()),
            Some((id, &next)),
        );
        next
    }

    /// Request `id` got its (non-auth) response; the core needs no report.
    ///
    /// The event is stamped with the latest time the core has seen, not the
    /// caller's clock: the core judges tokens by the time it is given, and
    /// the checker must judge it by the same clock.
    pub fn complete(&mut self, id: RequestId) {
        self.record(self.core.now(), Event::Completed { id });
    }

    /// [`Core::handle_cancel`]: the user gave up on request `id`, waiting or
    /// in flight.
    pub fn cancel(&mut self, now: Timestamp, id: RequestId) -> bool {
        let waiting = self.core.handle_cancel(now, id);
        if self.monitor.is_live(id) {
            self.record(self.core.now(), Event::Cancelled { id });
        }
        waiting
    }

    /// [`Core::handle_refreshed`].
    pub fn refreshed(
        &mut self,
        now: Timestamp,
        attempt: RefreshId,
        result: Result<Fresh<T>, RefreshError<E>>,
    ) {
        let before = self.before();
        let (ok, expires_at) = match &result {
            Ok(fresh) => (true, fresh.expires_at()),
            Err(_) => (false, None),
        };
        self.core.handle_refreshed(now, attempt, result);
        self.after(before, Input::Refreshed(attempt, ok, expires_at), None);
    }

    /// [`Core::handle_timeout`].
    pub fn timeout(&mut self, now: Timestamp) {
        let before = self.before();
        self.core.handle_timeout(now);
        self.after(before, Input::Timeout, None);
    }

    /// [`Core::handle_set_token`].
    pub fn set_token(&mut self, now: Timestamp, fresh: Fresh<T>) {
        let before = self.before();
        let expires_at = fresh.expires_at();
        self.core.handle_set_token(now, fresh);
        self.after(before, Input::SetToken(expires_at), None);
    }

    /// [`Core::handle_invalidate`].
    pub fn invalidate(&mut self, now: Timestamp, generation: Generation) {
        let before = self.before();
        self.core.handle_invalidate(now, generation);
        self.after(before, Input::Invalidate(generation), None);
    }

    /// The core's next action (already written down).
    pub fn poll_action(&mut self) -> Option<Action<T, E>> {
        self.outbox.pop_front()
    }

    /// [`Core::poll_timeout`].
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.core.poll_timeout()
    }

    /// Ends the history: judges L1 (every request ended). Call it only when
    /// nothing more can happen.
    pub fn finish(&mut self) {
        self.monitor.finish();
    }

    fn record(&mut self, at: Timestamp, event: Event) {
        self.monitor.observe(at, event);
        if let Some(log) = &mut self.log {
            log.push((at, event));
        }
    }

    fn before(&self) -> (Phase, Option<RefreshId>, Generation) {
        (
            self.core.phase(),
            self.core.in_flight(),
            self.core.generation(),
        )
    }

    /// Writes one step down, in causal order: attempts given up, the input
    /// itself, a new token, the asking request's next step, the actions,
    /// and last the state the core ended in.
    fn after(
        &mut self,
        (phase, in_flight, generation): (Phase, Option<RefreshId>, Generation),
        input: Input,
        asker: Option<(RequestId, &Next<T, E>)>,
    ) {
        let now = self.core.now();
        let new_generation = self.core.generation() != generation;
        // An attempt stops being in flight without an answer only by timing
        // out or by being superseded by a new token. Anything else (say, a
        // second attempt replacing it) is not excused: the monitor still
        // counts it in flight and flags the newcomer under S1.
        if let Some(attempt) = in_flight {
            let answered = matches!(input, Input::Refreshed(a, ..) if a == attempt);
            let excused = matches!(input, Input::Timeout) || new_generation;
            if self.core.in_flight() != Some(attempt) && !answered && excused {
                self.record(now, Event::RefreshAbandoned { attempt });
            }
        }
        match input {
            Input::Acquire(id) => self.record(now, Event::Arrived { id }),
            Input::Reject(id, generation) => self.record(now, Event::Rejected { id, generation }),
            Input::Refreshed(attempt, ok, _) => {
                self.record(now, Event::RefreshEnded { attempt, ok })
            }
            Input::Invalidate(generation) => self.record(now, Event::Invalidated { generation }),
            Input::Timeout | Input::SetToken(_) => {}
        }
        if new_generation {
            let (expires_at, from) = match input {
                Input::Refreshed(attempt, _, expires_at) => (expires_at, Some(attempt)),
                Input::SetToken(expires_at) => (expires_at, None),
                _ => (None, None),
            };
            self.record(
                now,
                Event::NewGeneration {
                    generation: self.core.generation(),
                    expires_at,
                    from,
                },
            );
        }
        if let Some((id, next)) = asker {
            let event = match next {
                Next::Send(lease) => Event::Sent {
                    id,
                    generation: lease.generation(),
                },
                Next::Wait => Event::Waiting { id },
                Next::Fail(_) => Event::Failed { id },
            };
            self.record(now, event);
        }
        while let Some(action) = self.core.poll_action() {
            let event = match &action {
                Action::StartRefresh { attempt } => Event::RefreshStarted { attempt: *attempt },
                Action::AbandonRefresh { attempt } => Event::RefreshDropped { attempt: *attempt },
                Action::Resume { id, lease } => Event::Sent {
                    id: *id,
                    generation: lease.generation(),
                },
                Action::Fail { id, .. } => Event::Failed { id: *id },
            };
            self.record(now, event);
            self.outbox.push_back(action);
        }
        let phase_now = self.core.phase();
        if phase_now != phase {
            self.record(now, Event::PhaseChanged { phase: phase_now });
        }
    }
}
