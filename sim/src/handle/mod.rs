//! The real async handle under simulation: [`tokenflight::Handle`] runs on
//! the lab (one thread, tasks in wake order, the lab's clock, timer and
//! spawner) in the world the core's run lives in — the same server,
//! request streams, faults and token endpoint. Its refresher is the world's
//! endpoint ([`endpoint`]); what the handle does is judged by the shared
//! [`Monitor`] from the events the handle itself reports (its observer),
//! not from anything the driver records.
//!
//! The lab's time is the world's: before anything reaches the handle the
//! lab is moved to the world's now, and the earliest timer the handle has
//! set is an event in the world's queue, so a timeout or a back-off fires
//! at its own time and its consequences (a new call at the endpoint) happen
//! then.

mod endpoint;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};

use tokenflight::check::{Event, Limits, Monitor, Rule};
use tokenflight::{
    Config, Credential, Error, Fresh, Handle, HandleError, RefreshError, Ticket, Timestamp,
};
use tokenflight_lab::{Lab, TaskId};

use crate::flight::{SimError, Tok};
use crate::report::Finding;
use crate::server::Grant;
use crate::world::{Algorithm, ApiAnswer, Outcome, RefreshAnswer, World, MS};
use endpoint::{Endpoint, Note, Slot};

/// The handle the simulator runs.
pub type SimHandle = Handle<Tok, SimError>;

/// Bugs planted in the handle a run drives (with the `mutants` feature):
/// one of its core's, one of its own, or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Planted {
    /// A core mutant, planted in the handle's core.
    #[cfg(feature = "mutants")]
    pub core: Option<tokenflight::core::Mutant>,
    /// A mutant of the handle's own driving code.
    #[cfg(feature = "mutants")]
    pub handle: Option<tokenflight::check::HandleMutant>,
}

/// A seed for the handle's jitter when the scenario's is zero: the handle
/// would draw a zero seed from the OS, and a run would not replay.
const SEED_FOR_ZERO: u64 = 0x5EED;

fn ts(ns: u64) -> Timestamp {
    Timestamp::from_nanos(ns)
}

/// Where one request is, as the driver holds it.
enum Req {
    /// A task of the lab waits for the handle's answer (`ticket` or
    /// `reject`).
    Waiting(TaskId),
    /// Sent with this ticket; dropping it ends the request at the handle.
    Sent(Ticket<Tok>),
}

/// A waiting request's answer, as its task hands it over.
type Asked = Result<Ticket<Tok>, HandleError<SimError>>;

/// The handle's observer: every event judged as it comes, and kept for the
/// trace when one is written.
struct Books {
    monitor: Monitor,
    log: Option<Vec<Event>>,
}

#[derive(Clone)]
struct Judge(Arc<Mutex<Books>>);

impl Judge {
    fn lock(&self) -> MutexGuard<'_, Books> {
        // A panic inside the handle must not hide the history.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub(crate) struct HandleFlight {
    lab: Lab,
    handle: SimHandle,
    endpoint: Endpoint,
    judge: Judge,
    /// Answers of the waiting requests' tasks, as they finish.
    answers: Rc<RefCell<Vec<(u32, Asked)>>>,
    /// By request number (the world numbers them from zero, in order).
    reqs: Vec<Option<Req>>,
    /// The world's call for each of the handle's calls still out.
    calls: HashMap<Slot, u32>,
    slots: HashMap<u32, Slot>,
    /// The expiry each access token was announced with, by token.
    expiries: HashMap<Tok, Option<u64>>,
    /// The lab deadlines already in the world's queue.
    armed: BTreeSet<u64>,
    config: Config,
}

impl HandleFlight {
    /// A handle with `config` (and core bug `mutant`, if any) on a fresh
    /// lab; `trace` keeps its events for the run's trace.
    pub(crate) fn new(mut config: Config, planted: Planted, trace: bool) -> Self {
        if config.seed == 0 {
            config.seed = SEED_FOR_ZERO;
        }
        let lab = Lab::new();
        let endpoint = Endpoint::default();
        let judge = Judge(Arc::new(Mutex::new(Books {
            monitor: Monitor::of(&config),
            log: trace.then(Vec::new),
        })));
        let observer = judge.clone();
        let builder = Handle::builder(endpoint.refresher())
            .config(config.clone())
            .clock(lab.clock())
            .sleep(lab.sleep())
            .spawner(lab.spawner())
            .observe(move |at, event| {
                let mut books = observer.lock();
                books.monitor.observe(at, event);
                if let Some(log) = &mut books.log {
                    log.push(event);
                }
            });
        let handle = plant(builder, planted)
            .build()
            .expect("scenario knobs make a valid config");
        HandleFlight {
            lab,
            handle,
            endpoint,
            judge,
            answers: Rc::default(),
            reqs: Vec::new(),
            calls: HashMap::new(),
            slots: HashMap::new(),
            expiries: HashMap::new(),
            armed: BTreeSet::new(),
            config,
        }
    }

    fn fresh(&mut self, w: &World, g: &Grant) -> Fresh<Tok> {
        let announced = w.sc.announce_expiry.then_some(g.expires_at);
        self.expiries.insert(g.access, announced);
        let f = Fresh::new(g.access).with_credential(Credential::new(g.refresh.to_string()));
        match announced {
            Some(at) => f.expiring_at(ts(at)),
            None => f,
        }
    }

    /// Brings the lab to the world's time: timers due by now fire first,
    /// and what they did reaches the world before the input does (a request
    /// whose wait they ended has its answer before its caller gives up).
    /// Every lab deadline is armed in the world's queue (see `settle`), so
    /// the earliest armed one says whether any is due, without asking the
    /// lab's timer table on every request.
    fn sync(&mut self, w: &mut World) {
        let now = ts(w.now);
        if self.lab.now() >= now {
            return;
        }
        if self.armed.first().is_some_and(|&due| due <= w.now) {
            self.lab.advance_to(now);
            self.settle(w);
        } else {
            self.lab.time().set(now);
        }
    }

    /// After every input: runs what it woke, carries the handle's calls and
    /// answers into the world, and puts the handle's next deadline in the
    /// world's queue.
    fn settle(&mut self, w: &mut World) {
        self.lab.run();
        // The handle's own events first, so the trace stays in causal order
        // with the facts the world writes below.
        self.flush_trace(w);
        if self.endpoint.has_notes() {
            for note in self.endpoint.take_notes() {
                self.note(w, note);
            }
        }
        let answers = std::mem::take(&mut *self.answers.borrow_mut());
        for (id, asked) in answers {
            self.asked(w, id, asked);
        }
        if let Some(due) = self.lab.next_deadline() {
            let due = due.as_nanos();
            if self.armed.insert(due) {
                w.set_timer(due);
            }
        }
    }

    fn flush_trace(&mut self, w: &mut World) {
        if w.tracing() {
            let events = self.judge.lock().log.as_mut().map(std::mem::take);
            for event in events.into_iter().flatten() {
                w.trace_event(&event);
            }
        }
    }

    fn note(&mut self, w: &mut World, note: Note) {
        match note {
            Note::Made {
                slot,
                rt,
                replacing,
            } => {
                let replacing = replacing.map(|t| (t, self.expiries.get(&t).copied().flatten()));
                // No credential: the server knows no such refresh token.
                let call = w.send_refresh(rt.unwrap_or(u64::MAX), replacing);
                self.calls.insert(slot, call);
                self.slots.insert(call, slot);
            }
            Note::Dropped { slot } => {
                if let Some(call) = self.calls.remove(&slot) {
                    self.slots.remove(&call);
                    w.drop_call(call);
                }
            }
        }
    }

    fn asked(&mut self, w: &mut World, id: u32, asked: Asked) {
        match asked {
            Ok(ticket) => self.send(w, id, ticket),
            Err(e) => {
                self.reqs[id as usize] = None;
                self.fail(w, id, &e);
            }
        }
    }

    fn send(&mut self, w: &mut World, id: u32, ticket: Ticket<Tok>) {
        let (token, generation) = (*ticket.token(), ticket.generation().0);
        self.reqs[id as usize] = Some(Req::Sent(ticket));
        w.send_api(id, token, generation);
    }

    fn fail(&mut self, w: &mut World, id: u32, e: &HandleError<SimError>) {
        if matches!(e, Error::LoginRequired(_)) {
            w.request_relogin();
        }
        w.end(id, Outcome::Failed);
    }

    /// Runs `ask` (the handle's `ticket` or `reject`) as request `id`'s task.
    fn wait_for(
        &mut self,
        w: &mut World,
        id: u32,
        ask: impl std::future::Future<Output = Asked> + 'static,
    ) {
        let answers = Rc::clone(&self.answers);
        let task = self.lab.spawn(async move {
            let asked = ask.await;
            answers.borrow_mut().push((id, asked));
        });
        self.reqs[id as usize] = Some(Req::Waiting(task.id()));
        self.settle(w);
        if matches!(self.reqs[id as usize], Some(Req::Waiting(_))) {
            w.waiting(id);
            w.arm_timeout(id);
        }
    }
}

/// Plants the bugs in the handle, where the build has them.
#[cfg(feature = "mutants")]
fn plant(
    mut builder: tokenflight::Builder<Tok, SimError>,
    planted: Planted,
) -> tokenflight::Builder<Tok, SimError> {
    if let Some(m) = planted.core {
        builder = builder.core_mutant(m);
    }
    if let Some(m) = planted.handle {
        builder = builder.mutant(m);
    }
    builder
}

#[cfg(not(feature = "mutants"))]
fn plant(
    builder: tokenflight::Builder<Tok, SimError>,
    _: Planted,
) -> tokenflight::Builder<Tok, SimError> {
    builder
}

impl Algorithm for HandleFlight {
    const NAME: &'static str = "handle";

    fn start(&mut self, w: &mut World, login: Grant) {
        let window = Limits::of(&self.config).proactive_window;
        self.reqs.reserve(w.sc.requests.min(1 << 24) as usize);
        w.judge_refreshes(window.as_nanos() as u64);
        self.relogin(w, login);
    }

    fn arrive(&mut self, w: &mut World, id: u32) {
        self.reqs.push(None);
        debug_assert_eq!(self.reqs.len(), id as usize + 1);
        self.sync(w);
        // The fast path, as `ticket().await` takes it first; only a request
        // that finds no usable token becomes a task.
        if let Some(ticket) = self.handle.try_ticket() {
            self.send(w, id, ticket);
            // The fast path wakes nothing and sets no timer: only its
            // events are new.
            self.flush_trace(w);
            return;
        }
        let handle = self.handle.clone();
        self.wait_for(w, id, async move { handle.ticket().await });
    }

    fn api_answer(&mut self, w: &mut World, id: u32, answer: ApiAnswer) {
        self.sync(w);
        let Some(Req::Sent(ticket)) = self.reqs[id as usize].take() else {
            return;
        };
        match answer {
            // A ticket that goes without a rejection: the request ended at
            // the handle (a transport error too: the handle has no part in
            // it).
            ApiAnswer::Ok => {
                drop(ticket);
                w.end(id, Outcome::Completed);
            }
            ApiAnswer::NoAnswer => {
                drop(ticket);
                w.end(id, Outcome::Failed);
            }
            ApiAnswer::Rejected => {
                let handle = self.handle.clone();
                self.wait_for(w, id, async move { handle.reject(ticket).await });
                return;
            }
        }
        // A ticket that goes reports its end and wakes nothing.
        self.flush_trace(w);
    }

    fn refresh_answer(&mut self, w: &mut World, call: u32, answer: RefreshAnswer) {
        self.sync(w);
        let Some(slot) = self.slots.remove(&call) else {
            return;
        };
        self.calls.remove(&slot);
        let result = match answer {
            RefreshAnswer::Granted(g) => Ok(self.fresh(w, &g)),
            RefreshAnswer::Transient => Err(RefreshError::Transient(SimError::Unavailable)),
            RefreshAnswer::NoAnswer => Err(RefreshError::Transient(SimError::Timeout)),
            RefreshAnswer::InvalidGrant => {
                w.request_relogin();
                Err(RefreshError::Permanent(SimError::InvalidGrant))
            }
        };
        self.endpoint.answer(slot, result);
        self.settle(w);
    }

    fn client_timeout(&mut self, w: &mut World, id: u32) {
        self.sync(w);
        // A timer due at this very instant may have ended the request first.
        if !w.live(id) {
            return;
        }
        match self.reqs[id as usize].take() {
            // The caller's future goes: the handle counts it cancelled.
            Some(Req::Waiting(task)) => {
                self.lab.cancel(task);
            }
            Some(Req::Sent(ticket)) => drop(ticket),
            None => {}
        }
        w.end(id, Outcome::Cancelled);
        self.settle(w);
    }

    fn timer(&mut self, w: &mut World, at: u64) {
        self.armed.remove(&at);
        // Whatever is due by now fires, armed or not.
        let now = ts(w.now).max(self.lab.now());
        self.lab.advance_to(now);
        self.settle(w);
    }

    fn relogin(&mut self, w: &mut World, login: Grant) {
        self.sync(w);
        let fresh = self.fresh(w, &login);
        self.handle.set_token(fresh);
        self.settle(w);
    }

    fn finish(&mut self, w: &mut World) -> (Vec<Finding>, [u64; Rule::ALL.len()]) {
        self.settle(w);
        let mut books = self.judge.lock();
        books.monitor.finish();
        let (mut findings, mut counts) = Finding::from_checker(&books.monitor);
        // The endpoint's own count, independent of what the handle reports.
        if self.endpoint.max_live() > 1 {
            counts[0] += 1;
            findings.push(Finding {
                source: "endpoint".into(),
                rule: "S1".into(),
                at_ms: w.now as f64 / MS as f64,
                detail: format!(
                    "{} refresher calls outstanding at once",
                    self.endpoint.max_live()
                ),
            });
        }
        (findings, counts)
    }
}
