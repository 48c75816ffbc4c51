//! The fleet world: M processes, each with its own real [`tokenflight::core::Core`]
//! (driven as `flight.rs` drives it, watched by its own `Recorder`), one
//! shared simulated store, one token server, one event queue. A paused
//! process does nothing until it resumes (the events meant for it wait);
//! a killed one loses everything in memory and restarts from the store.

use std::collections::{BTreeMap, BTreeSet};

use tokenflight::check::Recorder;
use tokenflight::core::{Action, Lease, Next, RefreshId, RequestId};
use tokenflight::{Error, Fresh, RefreshError, Timestamp};

use super::check::{Books, Cause, ServerCall};
use super::guard::{
    adoptable, newest, rewrite_after, Call, Phase, REWRITE_FIRST_DELAY_NS, REWRITE_MAX_DELAY_NS,
};
use super::scenario::{Bug, FleetScenario, Mode};
use super::store::{Op, Rec, Reply, SimStore, Stored};
use crate::flight::{SimCore, SimError, Tok};
use crate::queue::Queue;
use crate::rng::Rng;
use crate::server::{Grant, Refreshed, Server, Verdict};

const MS: u64 = 1_000_000;

#[derive(Debug, Clone, Copy)]
enum Answer {
    Granted(Grant),
    Transient,
    Refused,
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    Arrive {
        p: usize,
    },
    Api {
        p: usize,
        inc: u32,
        id: u64,
        ok: bool,
    },
    GiveUp {
        p: usize,
        inc: u32,
        id: u64,
    },
    Timer {
        p: usize,
        inc: u32,
        at: u64,
    },
    AtStore {
        p: usize,
        inc: u32,
        call: u64,
        op: Op,
    },
    FromStore {
        p: usize,
        inc: u32,
        call: u64,
        reply: Reply,
    },
    AtServer {
        p: usize,
        inc: u32,
        call: u64,
        rt: u64,
        spent: Option<Stored>,
    },
    FromServer {
        p: usize,
        inc: u32,
        call: u64,
        answer: Answer,
    },
    Wake {
        p: usize,
        inc: u32,
        call: u64,
        wait: u64,
    },
    /// A holder's back-off after a failed renewal write has run out.
    Rewrite {
        p: usize,
        inc: u32,
        call: u64,
        wait: u64,
    },
    Pickup {
        p: usize,
        inc: u32,
        generation: u64,
        token: Stored,
    },
    Restart {
        p: usize,
    },
    Relogin,
}

impl Ev {
    /// The process this event happens in (`None`: the store, the server,
    /// the user: they go on while a process is paused).
    fn process(&self) -> Option<(usize, Option<u32>)> {
        match *self {
            Ev::Arrive { p } => Some((p, None)),
            Ev::Api { p, inc, .. }
            | Ev::GiveUp { p, inc, .. }
            | Ev::Timer { p, inc, .. }
            | Ev::FromStore { p, inc, .. }
            | Ev::FromServer { p, inc, .. }
            | Ev::Wake { p, inc, .. }
            | Ev::Rewrite { p, inc, .. }
            | Ev::Pickup { p, inc, .. } => Some((p, Some(inc))),
            Ev::AtStore { .. } | Ev::AtServer { .. } | Ev::Restart { .. } | Ev::Relogin => None,
        }
    }
}

/// Call ids for store operations nobody waits on (release, tombstone).
const UNWATCHED: u64 = 0;

struct Proc {
    inc: u32,
    alive: bool,
    paused_until: u64,
    rec: Recorder<Tok, SimError>,
    leases: BTreeMap<u64, Lease<Tok>>,
    waiting: BTreeSet<u64>,
    timer_at: Option<u64>,
    /// The guard's memory (`held`, `last`, `pending`).
    held: u64,
    last: Option<Rec>,
    pending: Option<(u64, Rec)>,
    call: Option<Call>,
    /// Without a store: the refresh token this process holds, and its
    /// outstanding call.
    rt: u64,
    direct: Option<(u64, RefreshId)>,
    /// The newest store generation this process published.
    published: u64,
    /// The token its core holds (what a refresh without a store spends).
    token: Option<Stored>,
    /// Its handle failed with "login required" and waits for a login.
    needs_login: bool,
}

impl Proc {
    /// A process as it starts (incarnation `inc`): alive, holding nothing
    /// but what its recorder's core will be told.
    fn started(inc: u32, rec: Recorder<Tok, SimError>, needs_login: bool) -> Self {
        Proc {
            inc,
            alive: true,
            paused_until: 0,
            rec,
            leases: BTreeMap::new(),
            waiting: BTreeSet::new(),
            timer_at: None,
            held: 0,
            last: None,
            pending: None,
            call: None,
            rt: 0,
            direct: None,
            published: 0,
            token: None,
            needs_login,
        }
    }
}

pub(crate) struct Fleet {
    sc: FleetScenario,
    mode: Mode,
    bug: Option<Bug>,
    q: Queue<Ev>,
    now: u64,
    procs: Vec<Proc>,
    store: SimStore,
    server: Server,
    net: Rng,
    store_rng: Rng,
    faults: Rng,
    arrivals: Rng,
    next_id: u64,
    next_call: u64,
    margin: u64,
    watchers: Vec<(usize, u32, u64, u64)>,
    relogin_due: bool,
    /// The last login, for a process that restarts without a store.
    login: (u64, Stored),
    /// (call, step) pairs already given their chance of a fault.
    fault_checked: BTreeSet<(u64, u8)>,
    /// When the server issued each access token.
    issued: BTreeMap<u64, u64>,
    pub(crate) books: Books,
}

fn ts(ns: u64) -> Timestamp {
    Timestamp::from_nanos(ns)
}

impl Fleet {
    pub(crate) fn new(sc: &FleetScenario, mode: Mode, bug: Option<Bug>) -> Self {
        let mut base = crate::Scenario::default_run(sc.seed);
        base.ttl_ms = sc.ttl_ms;
        base.ttl_jitter_ms = sc.ttl_ms / 10;
        base.early_expiry_ms = 0;
        let server = Server::new(&base);
        let margin = sc.core.safety_margin_ms * MS;
        let mut fleet = Fleet {
            mode,
            bug,
            q: Queue::new(),
            now: 0,
            procs: Vec::new(),
            store: SimStore::default(),
            server,
            net: Rng::stream(sc.seed, 41),
            store_rng: Rng::stream(sc.seed, 42),
            faults: Rng::stream(sc.seed, 43),
            arrivals: Rng::stream(sc.seed, 44),
            next_id: 0,
            next_call: 1,
            margin,
            watchers: Vec::new(),
            relogin_due: false,
            login: (
                0,
                Stored {
                    access: 0,
                    refresh: 0,
                    expires_at: 0,
                },
            ),
            fault_checked: BTreeSet::new(),
            issued: BTreeMap::new(),
            books: Books::new(sc.processes),
            sc: sc.clone(),
        };
        for p in 0..sc.processes as usize {
            let rec = fleet.recorder(p, 0);
            fleet.procs.push(Proc::started(0, rec, true));
        }
        fleet
    }

    fn recorder(&self, p: usize, inc: u32) -> Recorder<Tok, SimError> {
        let seed = self.sc.seed ^ ((p as u64) << 32) ^ u64::from(inc).wrapping_mul(0x9E37);
        let core =
            SimCore::new(self.sc.core.config(seed)).expect("fleet knobs make a valid config");
        Recorder::new(core)
    }

    pub(crate) fn run(mut self) -> Books {
        // The user logs in once; every process starts on that login.
        self.relogin();
        for p in 0..self.procs.len() {
            let first = self.gap();
            self.q.push(first, Ev::Arrive { p });
        }
        let end = (self.sc.duration_ms + 600_000) * MS;
        while let Some((at, ev)) = self.q.pop() {
            if at > end {
                break;
            }
            self.now = at;
            if let Some((p, inc)) = ev.process() {
                let proc = &self.procs[p];
                if inc.is_some_and(|i| i != proc.inc) {
                    continue;
                }
                if proc.paused_until > at {
                    let until = proc.paused_until;
                    self.q.push(until, ev);
                    continue;
                }
                if !proc.alive && !matches!(ev, Ev::Arrive { .. }) {
                    continue;
                }
            }
            self.step(ev);
        }
        self.finish()
    }

    fn gap(&mut self) -> u64 {
        (self.arrivals.exp(1e9 / self.sc.rate.max(1e-3)) as u64).max(1)
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Arrive { p } => self.arrive(p),
            Ev::Api { p, id, ok, .. } => self.api(p, id, ok),
            Ev::GiveUp { p, id, .. } => {
                if self.procs[p].waiting.remove(&id) {
                    let now = self.now;
                    self.procs[p].rec.cancel(ts(now), RequestId(id));
                    self.books.cancelled += 1;
                    self.pump(p);
                }
            }
            Ev::Timer { p, at, .. } => {
                if self.procs[p].timer_at == Some(at) {
                    self.procs[p].timer_at = None;
                    let now = self.now;
                    self.procs[p].rec.timeout(ts(now));
                    self.pump(p);
                }
            }
            Ev::AtStore { p, inc, call, op } => self.at_store(p, inc, call, op),
            Ev::FromStore { p, call, reply, .. } => self.store_answered(p, call, reply),
            Ev::AtServer {
                p,
                inc,
                call,
                rt,
                spent,
            } => self.at_server(p, inc, call, rt, spent),
            Ev::FromServer {
                p, call, answer, ..
            } => self.server_answered(p, call, answer),
            Ev::Wake { p, call, wait, .. } => {
                let due = self.procs[p]
                    .call
                    .as_ref()
                    .is_some_and(|c| c.id == call && c.wait == wait && c.phase == Phase::Waiting);
                if due {
                    self.set_phase(p, Phase::FreeRead);
                    self.store_op(p, call, Op::Load);
                }
            }
            Ev::Rewrite { p, call, wait, .. } => {
                let due = self.procs[p].call.as_ref().and_then(|c| match c.phase {
                    Phase::Rewriting { rec, .. } if c.id == call && c.wait == wait => {
                        Some((c.expected, rec))
                    }
                    _ => None,
                });
                if let Some((expected, rec)) = due {
                    self.set_phase(p, Phase::Persisting { rec });
                    let op = self.persist_op(expected, rec);
                    self.store_op(p, call, op);
                }
            }
            Ev::Pickup {
                p,
                generation,
                token,
                ..
            } => {
                let proc = &mut self.procs[p];
                proc.held = proc.held.max(generation);
                proc.rt = token.refresh;
                proc.needs_login = false;
                self.publish(p, generation, token, true);
            }
            Ev::Restart { p } => self.restart(p),
            Ev::Relogin => self.relogin(),
        }
    }

    // ---- requests ---------------------------------------------------

    fn arrive(&mut self, p: usize) {
        let next = self.now + self.gap();
        if next < self.sc.duration_ms * MS {
            self.q.push(next, Ev::Arrive { p });
        }
        if !self.procs[p].alive {
            return;
        }
        self.next_id += 1;
        let id = self.next_id;
        self.books.requests += 1;
        let now = self.now;
        let next = self.procs[p].rec.acquire(ts(now), RequestId(id));
        self.next(p, id, next);
        self.pump(p);
    }

    fn next(&mut self, p: usize, id: u64, next: Next<Tok, SimError>) {
        match next {
            Next::Send(lease) => self.send(p, id, lease),
            Next::Wait => {
                self.procs[p].waiting.insert(id);
                let inc = self.procs[p].inc;
                let at = self.now + self.sc.client_timeout_ms * MS;
                self.q.push(at, Ev::GiveUp { p, inc, id });
            }
            Next::Fail(e) => self.fail(p, &e),
        }
    }

    fn send(&mut self, p: usize, id: u64, lease: Lease<Tok>) {
        let access = *lease.token();
        if self.mode == Mode::Store && !self.store.stored(access) {
            self.books.f3(self.now, p, access);
        }
        self.procs[p].leases.insert(id, lease);
        let rtt = self.sc.api_latency.draw(&mut self.net);
        let ok = self.server.verdict(access, self.now + rtt / 2) == Verdict::Valid;
        let inc = self.procs[p].inc;
        self.q.push(self.now + rtt, Ev::Api { p, inc, id, ok });
    }

    fn fail(&mut self, p: usize, e: &Error<SimError>) {
        self.books.failed += 1;
        if !matches!(e, Error::LoginRequired(_)) || self.procs[p].needs_login {
            return;
        }
        self.procs[p].needs_login = true;
        if self.mode == Mode::NoStore {
            self.want_relogin(p);
            return;
        }
        // As the README tells a handle to: `guard.load`, and `set_token`
        // if another process logged in meanwhile.
        let read = if self.store_down() || self.store_rng.chance(self.sc.store_fail) {
            None
        } else {
            self.store.rec
        };
        let held = self.procs[p].held;
        match read.filter(|r| r.generation > held) {
            Some(Rec {
                generation,
                token: Some(token),
            }) if token.expires_at > self.now + self.margin => {
                let inc = self.procs[p].inc;
                let lag = self.sc.store_latency.draw(&mut self.store_rng);
                self.q.push(
                    self.now + lag,
                    Ev::Pickup {
                        p,
                        inc,
                        generation,
                        token,
                    },
                );
            }
            _ => self.want_relogin(p),
        }
    }

    fn api(&mut self, p: usize, id: u64, ok: bool) {
        let Some(lease) = self.procs[p].leases.remove(&id) else {
            return;
        };
        if ok {
            self.procs[p].rec.complete(RequestId(id));
            self.books.completed += 1;
        } else {
            let now = self.now;
            let next = self.procs[p].rec.reject(ts(now), RequestId(id), &lease);
            self.next(p, id, next);
        }
        self.pump(p);
    }

    /// After every input to a core: carry out its actions, keep its timer.
    fn pump(&mut self, p: usize) {
        while let Some(action) = self.procs[p].rec.poll_action() {
            match action {
                Action::StartRefresh { attempt } => self.start_refresh(p, attempt),
                Action::AbandonRefresh { attempt } => self.drop_refresh(p, attempt),
                Action::Resume { id, lease } => {
                    self.procs[p].waiting.remove(&id.0);
                    self.send(p, id.0, lease);
                }
                Action::Fail { id, error } => {
                    self.procs[p].waiting.remove(&id.0);
                    self.fail(p, &error);
                }
            }
        }
        let due = self.procs[p].rec.poll_timeout().map(Timestamp::as_nanos);
        if due.is_some() && due != self.procs[p].timer_at {
            let inc = self.procs[p].inc;
            let at = due.unwrap_or_default().max(self.now);
            self.q.push(
                at,
                Ev::Timer {
                    p,
                    inc,
                    at: due.unwrap_or_default(),
                },
            );
        }
        self.procs[p].timer_at = due;
    }

    fn fresh(token: Stored) -> Fresh<Tok> {
        Fresh::new(token.access).expiring_at(ts(token.expires_at))
    }

    /// Hands a token to the core: after a refresh (`answers` the call) or
    /// as a login picked up from the store.
    fn publish(&mut self, p: usize, generation: u64, token: Stored, login: bool) {
        let proc = &mut self.procs[p];
        if self.mode == Mode::Store && generation < proc.published {
            self.books.f2(
                self.now,
                format!(
                    "process {p} published generation {generation} after {}",
                    proc.published
                ),
            );
        }
        proc.published = proc.published.max(generation);
        proc.token = Some(token);
        let now = self.now;
        if login {
            proc.rec.set_token(ts(now), Self::fresh(token));
        } else if let Some(call) = proc.call.take() {
            proc.rec
                .refreshed(ts(now), call.attempt, Ok(Self::fresh(token)));
        } else if let Some((_, attempt)) = proc.direct.take() {
            proc.rec.refreshed(ts(now), attempt, Ok(Self::fresh(token)));
        }
        self.pump(p);
    }

    fn refresh_failed(&mut self, p: usize, error: RefreshError<SimError>) {
        let proc = &mut self.procs[p];
        let attempt = match (proc.call.take(), proc.direct.take()) {
            (Some(c), _) => c.attempt,
            (None, Some((_, a))) => a,
            (None, None) => return,
        };
        let now = self.now;
        proc.rec.refreshed(ts(now), attempt, Err(error));
        self.pump(p);
    }

    // ---- refresh: with the store's guard, or on its own ----------------

    fn start_refresh(&mut self, p: usize, attempt: RefreshId) {
        let id = self.next_call;
        self.next_call += 1;
        match self.mode {
            Mode::NoStore => {
                self.procs[p].direct = Some((id, attempt));
                let rt = self.procs[p].rt;
                let spent = self.procs[p].token;
                self.server_call(p, id, rt, spent);
            }
            Mode::Store => {
                let base = self.procs[p].held;
                self.procs[p].call = Some(Call {
                    id,
                    attempt,
                    base,
                    start: self.now,
                    owner: 0,
                    lease_until: 0,
                    expected: 0,
                    source: None,
                    wait: 0,
                    rewrite_delay: 0,
                    phase: Phase::FreeRead,
                });
                self.store_op(p, id, Op::Load);
            }
        }
    }

    /// The core gave the call up for good: its future is dropped, which
    /// gives the lease back at once (the guard's `Holding` drop).
    fn drop_refresh(&mut self, p: usize, attempt: RefreshId) {
        let proc = &mut self.procs[p];
        if proc.direct.is_some_and(|(_, a)| a == attempt) {
            proc.direct = None;
        }
        if proc.call.as_ref().is_some_and(|c| c.attempt == attempt) {
            let call = proc.call.take().expect("checked");
            if call.holds_lease() {
                self.books.held_past(call.id, false, Cause::Dropped);
                self.store_op(p, UNWATCHED, Op::Release { owner: call.owner });
            }
        }
    }

    /// A refresh call spending `rt`, the refresh token of `spent`.
    fn server_call(&mut self, p: usize, call: u64, rt: u64, spent: Option<Stored>) {
        let inc = self.procs[p].inc;
        let rtt = self.sc.refresh_latency.draw(&mut self.net);
        self.q.push(
            self.now + rtt / 2,
            Ev::AtServer {
                p,
                inc,
                call,
                rt,
                spent,
            },
        );
    }

    fn at_server(&mut self, p: usize, inc: u32, call: u64, rt: u64, spent: Option<Stored>) {
        let rtt = self.sc.refresh_latency.draw(&mut self.net);
        let answer = if self.net.chance(self.sc.refresh_transient) {
            Answer::Transient
        } else {
            let reuses = self.server.reuses.len();
            let outcome = self.server.refresh(rt, self.now, false);
            let granted = matches!(outcome, Refreshed::Granted(_));
            if let Refreshed::Granted(g) = outcome {
                self.issued.insert(g.access, self.now);
            }
            // A token in the first half of its life: no core asks for its
            // refresh, so the call repeats one another process made.
            let early = spent.is_some_and(|t| {
                let born = self.issued.get(&t.access).copied().unwrap_or(0);
                t.expires_at.saturating_sub(self.now) * 2 > t.expires_at.saturating_sub(born)
            });
            let past_lease = self.procs[p]
                .call
                .as_ref()
                .is_some_and(|c| c.id == call && self.now > c.lease_until);
            self.books.server_calls.push(ServerCall {
                past_lease,
                at: self.now,
                call,
                rt,
                early: granted && early,
                granted,
                reuse: self.server.reuses.len() > reuses,
            });
            match outcome {
                Refreshed::Granted(g) => Answer::Granted(g),
                Refreshed::InvalidGrant => Answer::Refused,
            }
        };
        self.q.push(
            self.now + rtt / 2,
            Ev::FromServer {
                p,
                inc,
                call,
                answer,
            },
        );
    }

    fn server_answered(&mut self, p: usize, call: u64, answer: Answer) {
        if let Answer::Granted(_) = answer {
            // The holder may die or freeze with the answer in hand.
            let inc = self.procs[p].inc;
            if self.fault(
                p,
                call,
                1,
                Ev::FromServer {
                    p,
                    inc,
                    call,
                    answer,
                },
            ) {
                return;
            }
        }
        if self.mode == Mode::NoStore {
            if self.procs[p].direct.is_none_or(|(c, _)| c != call) {
                return;
            }
            match answer {
                Answer::Granted(g) => {
                    self.books.persisted(self.now);
                    self.server.answer_seen(self.procs[p].rt);
                    self.procs[p].rt = g.refresh;
                    let token = stored(g);
                    self.publish(p, 0, token, false);
                }
                Answer::Transient => {
                    self.refresh_failed(p, RefreshError::Transient(SimError::Unavailable))
                }
                Answer::Refused => {
                    self.want_relogin(p);
                    self.refresh_failed(p, RefreshError::Permanent(SimError::InvalidGrant));
                }
            }
            return;
        }
        let Some(c) = self.procs[p].call.clone() else {
            return;
        };
        if c.id != call || c.phase != Phase::Calling {
            return;
        }
        match answer {
            Answer::Granted(g) => {
                let source_gen = c.source.map_or(0, |r| r.generation);
                let generation = c.expected.max(source_gen).max(c.base) + 1;
                let token = stored(g);
                let rec = Rec {
                    generation,
                    token: Some(token),
                };
                let op = self.persist_op(c.expected, rec);
                self.set_phase(p, Phase::Persisting { rec });
                self.store_op(p, call, op);
                if self.bug == Some(Bug::PublishBeforePersist) {
                    // Planted bug: the handle gets the token while the
                    // write is still on its way.
                    let mut early = c.clone();
                    early.phase = Phase::Persisting { rec };
                    self.procs[p].held = self.procs[p].held.max(generation);
                    self.publish(p, generation, token, false);
                    self.books
                        .held_past(call, self.now <= c.lease_until, Cause::Slow);
                    self.release(p, &early);
                }
            }
            Answer::Transient => {
                self.release(p, &c);
                self.refresh_failed(p, RefreshError::Transient(SimError::Unavailable));
            }
            Answer::Refused => {
                self.set_phase(p, Phase::PermanentRead);
                self.store_op(p, call, Op::Load);
            }
        }
    }

    /// The renewal's write: a compare-and-swap on `expected`.
    fn persist_op(&self, expected: u64, rec: Rec) -> Op {
        match self.bug {
            Some(Bug::BlindWrite) => Op::Blind { rec },
            _ => Op::Swap { expected, rec },
        }
    }

    // ---- the store ----------------------------------------------------

    fn store_op(&mut self, p: usize, call: u64, op: Op) {
        let inc = self.procs[p].inc;
        let rtt = self.sc.store_latency.draw(&mut self.store_rng);
        self.q
            .push(self.now + rtt / 2, Ev::AtStore { p, inc, call, op });
    }

    fn store_down(&self) -> bool {
        self.sc
            .store_outage_ms
            .is_some_and(|(a, b)| (a * MS..b * MS).contains(&self.now))
    }

    fn at_store(&mut self, p: usize, inc: u32, call: u64, op: Op) {
        let reply = if self.store_down() || self.store_rng.chance(self.sc.store_fail) {
            Reply::Failed
        } else {
            let before = self.store.changes;
            let reply = self.store.apply(self.now, op);
            if self.store.changes != before {
                if let Some(w) = self.store.writes.last().copied() {
                    self.books.write(w);
                }
                for (wp, winc, wcall, wait) in std::mem::take(&mut self.watchers) {
                    let lag = self.sc.store_latency.draw(&mut self.store_rng) / 2;
                    self.q.push(
                        self.now + lag,
                        Ev::Wake {
                            p: wp,
                            inc: winc,
                            call: wcall,
                            wait,
                        },
                    );
                }
            }
            reply
        };
        if call != UNWATCHED {
            let rtt = self.sc.store_latency.draw(&mut self.store_rng);
            self.q.push(
                self.now + rtt / 2,
                Ev::FromStore {
                    p,
                    inc,
                    call,
                    reply,
                },
            );
        }
    }

    fn set_phase(&mut self, p: usize, phase: Phase) {
        if let Some(c) = self.procs[p].call.as_mut() {
            c.phase = phase;
        }
    }

    fn remember(&mut self, p: usize, rec: Option<Rec>) {
        let proc = &mut self.procs[p];
        proc.last = newest(proc.last, rec);
    }

    /// The guard's `adopt`: the stored token if newer than `base` and
    /// good for the margin; the handle gets it.
    fn adopt(&mut self, p: usize, rec: Option<Rec>, base: u64) -> bool {
        self.remember(p, rec);
        let Some(rec) = adoptable(rec, base, self.now, self.margin) else {
            return false;
        };
        let proc = &mut self.procs[p];
        proc.held = proc.held.max(rec.generation);
        let token = rec.token.expect("adoptable has a token");
        self.publish(p, rec.generation, token, false);
        true
    }

    fn release(&mut self, p: usize, c: &Call) {
        self.store_op(p, UNWATCHED, Op::Release { owner: c.owner });
    }

    fn transient(&mut self, p: usize, c: &Call) {
        if c.holds_lease() {
            self.release(p, c);
        }
        self.refresh_failed(p, RefreshError::Transient(SimError::Unavailable));
    }

    fn store_answered(&mut self, p: usize, call: u64, reply: Reply) {
        if self.procs[p].call.as_ref().is_none_or(|c| c.id != call) {
            return;
        }
        let c = self.procs[p].call.clone().expect("checked");
        match (c.phase, reply) {
            (Phase::PermanentRead, Reply::Failed) => self.end_session(p, &c),
            (Phase::Ending, _) => {
                self.release(p, &c);
                self.refresh_failed(p, RefreshError::Permanent(SimError::InvalidGrant));
                self.want_relogin(p);
            }
            (phase, Reply::Failed) => {
                if let Phase::Persisting { rec } = phase {
                    // Pending from the first failure: a call dropped while
                    // it waits to write again keeps it for the next call.
                    self.procs[p].pending = Some((c.expected, rec));
                    let delay = c.rewrite_delay.max(REWRITE_FIRST_DELAY_NS);
                    if let Some(delay) = rewrite_after(delay, self.now, c.lease_until) {
                        // The lease kept: nobody spends the old credential.
                        let wait = c.wait + 1;
                        if let Some(c) = self.procs[p].call.as_mut() {
                            c.wait = wait;
                            c.rewrite_delay = (delay * 2).min(REWRITE_MAX_DELAY_NS);
                            c.phase = Phase::Rewriting { rec, delay };
                        }
                        let inc = self.procs[p].inc;
                        let ev = Ev::Rewrite { p, inc, call, wait };
                        self.q.push(self.now + delay, ev);
                        return;
                    }
                    // The lease about to run out: written first next time.
                    self.books.held_past(call, false, Cause::StoreFailed);
                }
                // A failed pending swap leaves the renewal pending.
                self.transient(p, &c);
            }
            (Phase::FreeRead, Reply::Loaded(rec)) => {
                if self.adopt(p, rec, c.base) {
                    return;
                }
                let owner = self.next_call;
                self.next_call += 1;
                if let Some(c) = self.procs[p].call.as_mut() {
                    c.owner = owner;
                    c.phase = Phase::Leasing;
                }
                let ttl = self.sc.lease_ms * MS;
                self.store_op(p, call, Op::Lease { owner, ttl });
            }
            (Phase::Leasing, Reply::Leased(Some(until))) => {
                if let Some(c) = self.procs[p].call.as_mut() {
                    c.lease_until = until;
                    c.phase = Phase::HeldRead;
                }
                // A holder may die or freeze before its call.
                let inc = self.procs[p].inc;
                let again = Ev::FromStore {
                    p,
                    inc,
                    call,
                    reply,
                };
                if self.fault(p, call, 0, again) {
                    return;
                }
                self.store_op(p, call, Op::Load);
            }
            (Phase::Leasing, Reply::Leased(None)) => {
                if self.now.saturating_sub(c.start) >= self.sc.wait_limit_ms * MS {
                    self.transient(p, &c);
                    return;
                }
                let wait = c.wait + 1;
                if let Some(c) = self.procs[p].call.as_mut() {
                    c.wait = wait;
                    c.phase = Phase::Waiting;
                }
                let inc = self.procs[p].inc;
                self.watchers.push((p, inc, call, wait));
                let at = self.now + self.sc.poll_ms * MS;
                self.q.push(at, Ev::Wake { p, inc, call, wait });
            }
            (Phase::HeldRead, Reply::Loaded(rec)) => {
                let expected = rec.map_or(0, |r| r.generation);
                match self.procs[p].pending {
                    Some((pe, pending)) if pe == expected => {
                        self.set_phase(p, Phase::PendingSwap { read: rec });
                        self.store_op(
                            p,
                            call,
                            Op::Swap {
                                expected,
                                rec: pending,
                            },
                        );
                    }
                    _ => self.under_lease(p, rec),
                }
            }
            (Phase::PendingSwap { read }, reply) => {
                let pending = self.procs[p].pending.take();
                let rec = match (reply, pending) {
                    (Reply::Done, Some((_, pending))) => Some(pending),
                    _ => read,
                };
                self.under_lease(p, rec);
            }
            (Phase::Persisting { rec }, Reply::Done) => {
                self.books
                    .held_past(call, self.now <= c.lease_until, Cause::Slow);
                let proc = &mut self.procs[p];
                proc.held = proc.held.max(rec.generation);
                proc.last = newest(proc.last, Some(rec));
                proc.pending = None;
                self.release(p, &c);
                if self.bug != Some(Bug::PublishBeforePersist) {
                    self.publish(p, rec.generation, rec.token.expect("renewal"), false);
                }
            }
            (Phase::Persisting { .. }, Reply::Conflict(_)) => {
                self.procs[p].pending = None;
                self.books.held_past(call, false, Cause::Fenced);
                self.set_phase(p, Phase::Fenced);
                self.store_op(p, call, Op::Load);
            }
            (Phase::Fenced, Reply::Loaded(rec)) => {
                self.release(p, &c);
                if !self.adopt(p, rec, c.base) {
                    self.transient(
                        p,
                        &Call {
                            phase: Phase::FreeRead,
                            ..c
                        },
                    );
                }
            }
            (Phase::PermanentRead, Reply::Loaded(rec)) => {
                let newer = rec.filter(|r| r.generation > c.expected);
                if self.adopt(p, newer, c.base) {
                    self.release(p, &c);
                    return;
                }
                self.end_session(p, &c);
            }
            _ => {}
        }
    }

    /// Dead for the whole fleet: a tombstone, then the lease back.
    fn end_session(&mut self, p: usize, c: &Call) {
        let ended = Rec {
            generation: c.expected.max(c.base) + 1,
            token: None,
        };
        self.set_phase(p, Phase::Ending);
        self.store_op(
            p,
            c.id,
            Op::Swap {
                expected: c.expected,
                rec: ended,
            },
        );
    }

    /// Under the lease, after the re-read: adopt, or call the server.
    fn under_lease(&mut self, p: usize, rec: Option<Rec>) {
        let c = self.procs[p].call.clone().expect("a call under the lease");
        let reread = self.bug != Some(Bug::SkipReread);
        if reread && self.adopt(p, rec, c.base) {
            self.release(p, &c);
            return;
        }
        if !reread {
            self.remember(p, rec);
        }
        let source = newest(rec, self.procs[p].last);
        if source.is_some_and(|r| r.token.is_none()) {
            self.release(p, &c);
            self.refresh_failed(p, RefreshError::Permanent(SimError::InvalidGrant));
            self.want_relogin(p);
            return;
        }
        let window = (self.sc.min_window_ms * MS).min(self.sc.lease_ms * MS / 2);
        if c.lease_until.saturating_sub(self.now) < window {
            // Too little lease left to start the call: take it again.
            self.release(p, &c);
            self.set_phase(p, Phase::FreeRead);
            self.store_op(p, c.id, Op::Load);
            return;
        }
        let expected = rec.map_or(0, |r| r.generation);
        if let Some(call) = self.procs[p].call.as_mut() {
            call.expected = expected;
            call.source = source;
            call.phase = Phase::Calling;
        }
        // No stored credential: the server refuses whatever is sent.
        let spent = source.and_then(|r| r.token);
        let rt = spent.map_or(u64::MAX, |t| t.refresh);
        self.server_call(p, c.id, rt, spent);
    }

    // ---- faults, restarts, logins -------------------------------------

    /// Gives a holder at `step` its chance to be killed or paused; true
    /// if it was killed or paused (the event is then done or deferred).
    fn fault(&mut self, p: usize, call: u64, step: u8, again: Ev) -> bool {
        if !self.fault_checked.insert((call, step)) || self.books.faults() >= self.sc.max_faults {
            return false;
        }
        if self.faults.chance(self.sc.crash) {
            self.books.crash(self.now, call, step);
            self.crash(p);
            return true;
        }
        if self.faults.chance(self.sc.pause) {
            let (lo, hi) = self.sc.pause_leases;
            let leases = self.faults.between(lo, hi);
            let until = self.now + leases * self.sc.lease_ms * MS;
            self.books.pause(self.now, call);
            self.procs[p].paused_until = until;
            // What the frozen process was handling, it handles on waking.
            if step == 0 {
                self.set_phase(p, Phase::Leasing);
            }
            self.q.push(until, again);
            return true;
        }
        false
    }

    fn crash(&mut self, p: usize) {
        let proc = &mut self.procs[p];
        proc.alive = false;
        proc.inc += 1;
        self.books.lost += (proc.waiting.len() + proc.leases.len()) as u64;
        let old = std::mem::replace(
            &mut proc.rec,
            Recorder::new(SimCore::new(self.sc.core.config(0)).expect("valid config")),
        );
        self.books.judge(p, old, false);
        self.q
            .push(self.now + self.sc.restart_ms * MS, Ev::Restart { p });
    }

    fn restart(&mut self, p: usize) {
        let inc = self.procs[p].inc;
        let rec = self.recorder(p, inc);
        let proc = &mut self.procs[p];
        *proc = Proc::started(inc, rec, false);
        match self.mode {
            // Without a store a process starts on the credential it was
            // configured with: the last login.
            Mode::NoStore => {
                let (_, token) = self.login;
                let at = self.now;
                self.q.push(
                    at,
                    Ev::Pickup {
                        p,
                        inc,
                        generation: 0,
                        token,
                    },
                );
            }
            Mode::Store => {
                let loaded = if self.store_down() || self.store_rng.chance(self.sc.store_fail) {
                    None
                } else {
                    self.store.rec
                };
                self.remember(p, loaded);
                if let Some(rec) = loaded {
                    self.procs[p].held = rec.generation;
                    // Loaded before the handle serves a request, as
                    // `Guard::load` is.
                    if let Some(token) = rec.token.filter(|t| t.expires_at > self.now) {
                        self.books.restarts_loaded += 1;
                        self.publish(p, rec.generation, token, true);
                    }
                }
            }
        }
    }

    fn want_relogin(&mut self, _p: usize) {
        if !self.relogin_due {
            self.relogin_due = true;
            self.q.push(self.now + self.sc.relogin_ms * MS, Ev::Relogin);
        }
    }

    /// The user logs in: stored first (a new generation over whatever the
    /// store holds), then every running process picks it up.
    fn relogin(&mut self) {
        self.relogin_due = false;
        let token = stored(self.server.login(self.now));
        self.issued.insert(token.access, self.now);
        let generation = self.store.generation() + 1;
        self.login = (generation, token);
        if self.mode == Mode::Store {
            let rec = Rec {
                generation,
                token: Some(token),
            };
            let over = self.store.generation();
            let _ = self.store.apply(
                self.now,
                Op::Swap {
                    expected: over,
                    rec,
                },
            );
            if let Some(w) = self.store.writes.last().copied() {
                self.books.write(w);
            }
        }
        for p in 0..self.procs.len() {
            // Without a store every process is restarted on the new
            // credential; with one, those that wait for a login load it
            // (the others find it in the store when they next refresh).
            let picks_up = self.mode == Mode::NoStore || self.procs[p].needs_login;
            if self.procs[p].alive && picks_up {
                let inc = self.procs[p].inc;
                let lag = self.sc.store_latency.draw(&mut self.store_rng);
                self.q.push(
                    self.now + lag,
                    Ev::Pickup {
                        p,
                        inc,
                        generation,
                        token,
                    },
                );
            }
        }
    }

    fn finish(mut self) -> Books {
        for (p, proc) in std::mem::take(&mut self.procs).into_iter().enumerate() {
            if proc.alive {
                self.books.judge(p, proc.rec, true);
            }
        }
        self.books.close(&self.server, self.mode);
        self.books
    }
}

fn stored(g: Grant) -> Stored {
    Stored {
        access: g.access,
        refresh: g.refresh,
        expires_at: g.expires_at,
    }
}
