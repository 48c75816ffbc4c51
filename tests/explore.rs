//! Exhaustive exploration: every reachable state of a small world — a few
//! requests, a server whose tokens expire, refresh attempts that succeed,
//! fail transiently or permanently, time out and answer late or are given up
//! for good, waiters that give up, logins, and pauses long enough for a
//! token to come due for a refresh ahead of expiry or to pass its safety
//! margin — is checked against S1–S7 and S5b, and every terminal state
//! against L1, by the shared checker in `tokenflight::check`.
//!
//! The default scope runs with `cargo test`; the wide scope is `#[ignore]`d
//! and run in release by `.ci/run` (`cargo test --release --test explore --
//! --ignored`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use stateright::{Checker, HasDiscoveries, Model, Property};
use tokenflight::check::{Recorder, Rule, Violation};
use tokenflight::core::{Action, Core, Lease, Mutant, Next, RefreshId, RequestId};
use tokenflight::{Config, Fresh, Generation, Phase, RefreshError, Timestamp};

/// How much of the world to explore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Scope {
    requests: usize,
    /// Times the server starts rejecting the current token.
    expiries: u8,
    /// Refresh attempts that fail transiently or time out.
    faults: u8,
    /// Refresh attempts that fail permanently.
    permanents: u8,
    /// Jumps of time: long enough for a token to come due (still usable)
    /// and for a cool-down to end, or long enough for it to pass its safety
    /// margin (no longer usable, not yet expired).
    pauses: u8,
    /// Logins from elsewhere.
    logins: u8,
    /// Requests whose caller gives up. Budgeted, because a world where every
    /// waiter can always be cancelled never ends with one waiting, and L1
    /// would be judged on no terminal state worth the name.
    cancels: u8,
}

const SMALL: Scope = Scope {
    requests: 3,
    expiries: 2,
    faults: 2,
    permanents: 1,
    pauses: 1,
    logins: 0,
    cancels: 1,
};

/// What the environment can do next.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Move {
    Arrive(usize),
    Accept(usize),
    Reject(usize),
    Cancel(usize),
    Expire,
    RefreshOk(RefreshId),
    RefreshTransient(RefreshId),
    RefreshPermanent(RefreshId),
    Tick,
    Pause,
    Lapse,
    Login,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Req {
    NotYet,
    InFlight(Lease<()>),
    Waiting,
    Done,
}

/// Things the exploration must reach at least once, or it proves nothing.
#[derive(Debug, Clone, Copy)]
enum Witness {
    StaleRejectionResumed = 1 << 0,
    TransientRecovered = 1 << 1,
    PermanentFailure = 1 << 2,
    LateResultAdopted = 1 << 3,
    WaiterCancelled = 1 << 4,
    GaveUpFailingWaiters = 1 << 5,
    AuthRejected = 1 << 6,
    ProactiveRefresh = 1 << 7,
    RefreshAheadWhileSending = 1 << 8,
    RefreshAheadGaveUpQuietly = 1 << 9,
    AbandonedThenNextAttempt = 1 << 10,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct World {
    rec: Recorder<(), ()>,
    now: Timestamp,
    reqs: Vec<Req>,
    /// Calls started and neither answered nor abandoned (timed-out ones
    /// included: their answer may still come). One at most, unless a
    /// mutant breaks S1.
    outstanding: BTreeSet<RefreshId>,
    /// The server rejects tokens older than this.
    floor: Generation,
    left: Scope,
    /// A transient failure or timeout happened since the last new token.
    faulted: bool,
    /// A request was sent during a refresh since the last new token.
    sent_while_refreshing: bool,
    seen: u16,
}

impl World {
    fn saw(&self, w: Witness) -> bool {
        self.seen & w as u16 != 0
    }
}

struct Explore {
    scope: Scope,
    config: Config,
    mutant: Option<Mutant>,
    /// Track the witnesses. They multiply the states (each combination of
    /// witnessed situations is a state of its own), so the wide scope, which
    /// checks only safety and liveness, leaves them out.
    witnesses: bool,
}

const TTL: Duration = Duration::from_secs(10);
/// A token is usable until `TTL - MARGIN` after it was issued.
const MARGIN: Duration = Duration::from_secs(1);
/// Past a token's refresh ahead (`TTL - expiry_skew`), while it is usable.
const PAUSE: Duration = Duration::from_secs(6);
/// Past a token's usable time, within its safety margin.
const LAPSE: Duration = Duration::from_millis(9_500);

fn config() -> Config {
    let mut c = Config::default();
    c.max_waiters = 2;
    c.max_auth_retries = 1;
    c.max_refresh_attempts = 2;
    c.refresh_timeout = Duration::from_secs(1);
    c.refresh_abandon_after = Duration::from_secs(2);
    c.backoff_initial = Duration::from_millis(100);
    c.backoff_max = Duration::from_millis(100);
    c.cooldown = Duration::from_secs(5);
    c.expiry_skew = Duration::from_secs(4);
    c.skew_jitter = Duration::ZERO;
    c.safety_margin = MARGIN;
    c
}

impl Explore {
    fn new(scope: Scope, mutant: Option<Mutant>) -> Self {
        Explore {
            scope,
            config: config(),
            mutant,
            witnesses: true,
        }
    }

    fn core(&self) -> Core<(), ()> {
        match self.mutant {
            None => Core::new(self.config.clone()).unwrap(),
            Some(m) => Core::with_mutant(self.config.clone(), m).unwrap(),
        }
    }

    fn terminal(&self, s: &World) -> bool {
        let mut moves = Vec::new();
        self.actions(s, &mut moves);
        moves.is_empty()
    }
}

/// Applies what the core asked for to the world.
fn drain(w: &mut World) {
    let mut abandoned = false;
    while let Some(action) = w.rec.poll_action() {
        match action {
            Action::StartRefresh { attempt } => {
                w.outstanding.insert(attempt);
                if abandoned {
                    w.seen |= Witness::AbandonedThenNextAttempt as u16;
                }
            }
            // The driver drops the call: no answer will come.
            Action::AbandonRefresh { attempt } => {
                w.outstanding.remove(&attempt);
                abandoned = true;
            }
            Action::Resume { id, lease } => w.reqs[id.0 as usize] = Req::InFlight(lease),
            Action::Fail { id, .. } => w.reqs[id.0 as usize] = Req::Done,
        }
    }
}

fn answer(w: &mut World, i: usize, next: Next<(), ()>) {
    w.reqs[i] = match next {
        Next::Send(lease) => Req::InFlight(lease),
        Next::Wait => Req::Waiting,
        Next::Fail(_) => Req::Done,
    };
}

fn id(i: usize) -> RequestId {
    RequestId(i as u64)
}

impl Model for Explore {
    type State = World;
    type Action = Move;

    fn init_states(&self) -> Vec<World> {
        vec![World {
            rec: Recorder::new(self.core()),
            now: Timestamp::ZERO,
            reqs: vec![Req::NotYet; self.scope.requests],
            outstanding: BTreeSet::new(),
            floor: Generation::NONE,
            left: self.scope,
            faulted: false,
            sent_while_refreshing: false,
            seen: 0,
        }]
    }

    fn actions(&self, s: &World, moves: &mut Vec<Move>) {
        for (i, r) in s.reqs.iter().enumerate() {
            match r {
                Req::NotYet => moves.push(Move::Arrive(i)),
                Req::InFlight(lease) if lease.generation() >= s.floor => {
                    moves.push(Move::Accept(i))
                }
                Req::InFlight(_) => moves.push(Move::Reject(i)),
                Req::Waiting | Req::Done => {}
            }
            if s.left.cancels > 0 && matches!(r, Req::InFlight(_) | Req::Waiting) {
                moves.push(Move::Cancel(i));
            }
        }
        let current = s.rec.core().generation();
        if s.left.expiries > 0 && current != Generation::NONE && s.floor <= current {
            moves.push(Move::Expire);
        }
        for &a in &s.outstanding {
            moves.push(Move::RefreshOk(a));
            if s.left.faults > 0 {
                moves.push(Move::RefreshTransient(a));
            }
            if s.left.permanents > 0 {
                moves.push(Move::RefreshPermanent(a));
            }
        }
        if s.rec.poll_timeout().is_some() {
            let timing_out = s.rec.core().in_flight().is_some();
            if !timing_out || s.left.faults > 0 {
                moves.push(Move::Tick);
            }
        }
        if s.left.pauses > 0 {
            moves.push(Move::Pause);
            moves.push(Move::Lapse);
        }
        if s.left.logins > 0 {
            moves.push(Move::Login);
        }
    }

    fn next_state(&self, s: &World, m: Move) -> Option<World> {
        let mut w = s.clone();
        let now = w.now;
        let generation_before = w.rec.core().generation();
        match m {
            Move::Arrive(i) => {
                let next = w.rec.acquire(now, id(i));
                if matches!(next, Next::Send(_)) && w.rec.core().phase() == Phase::Refreshing {
                    w.sent_while_refreshing = true;
                    if s.rec.core().phase() != Phase::Refreshing {
                        w.seen |= Witness::ProactiveRefresh as u16;
                    }
                }
                answer(&mut w, i, next);
            }
            Move::Accept(i) => {
                w.rec.complete(id(i));
                w.reqs[i] = Req::Done;
            }
            Move::Reject(i) => {
                let Req::InFlight(lease) = w.reqs[i].clone() else {
                    unreachable!()
                };
                let next = w.rec.reject(now, id(i), &lease);
                let started = w.rec.core().in_flight() != s.rec.core().in_flight();
                match &next {
                    Next::Send(_) if !started => w.seen |= Witness::StaleRejectionResumed as u16,
                    Next::Fail(tokenflight::Error::AuthRejected { .. }) => {
                        w.seen |= Witness::AuthRejected as u16
                    }
                    _ => {}
                }
                answer(&mut w, i, next);
            }
            Move::Cancel(i) => {
                w.left.cancels -= 1;
                if w.rec.cancel(now, id(i)) {
                    w.seen |= Witness::WaiterCancelled as u16;
                }
                w.reqs[i] = Req::Done;
            }
            Move::Expire => {
                w.left.expiries -= 1;
                w.floor = generation_before.next();
            }
            Move::RefreshOk(a) => {
                w.outstanding.remove(&a);
                let late = w.rec.core().in_flight() != Some(a);
                w.rec
                    .refreshed(now, a, Ok(Fresh::new(()).expiring_at(now + TTL)));
                if w.rec.core().generation() != generation_before {
                    if late {
                        w.seen |= Witness::LateResultAdopted as u16;
                    }
                    if w.faulted {
                        w.seen |= Witness::TransientRecovered as u16;
                    }
                    if w.sent_while_refreshing {
                        w.seen |= Witness::RefreshAheadWhileSending as u16;
                    }
                    w.faulted = false;
                    w.sent_while_refreshing = false;
                }
            }
            Move::RefreshTransient(a) => {
                w.left.faults -= 1;
                w.faulted = true;
                w.outstanding.remove(&a);
                w.rec.refreshed(now, a, Err(RefreshError::Transient(())));
            }
            Move::RefreshPermanent(a) => {
                w.left.permanents -= 1;
                w.outstanding.remove(&a);
                w.rec.refreshed(now, a, Err(RefreshError::Permanent(())));
                if w.rec.core().phase() == Phase::Failed && s.rec.core().phase() != Phase::Failed {
                    w.seen |= Witness::PermanentFailure as u16;
                }
            }
            Move::Tick => {
                let at = w.rec.poll_timeout().expect("enabled only with a timer");
                if w.rec.core().in_flight().is_some() {
                    w.left.faults -= 1;
                    w.faulted = true;
                }
                w.now = w.now.max(at);
                w.rec.timeout(w.now);
            }
            Move::Pause => {
                w.left.pauses -= 1;
                w.now = w.now + PAUSE;
            }
            Move::Lapse => {
                w.left.pauses -= 1;
                w.now = w.now + LAPSE;
            }
            Move::Login => {
                w.left.logins -= 1;
                w.rec.set_token(now, Fresh::new(()).expiring_at(now + TTL));
            }
        }
        let waiting_before = s.reqs.iter().filter(|r| matches!(r, Req::Waiting)).count();
        drain(&mut w);
        if !self.witnesses {
            w.seen = 0;
            w.faulted = false;
            w.sent_while_refreshing = false;
            return Some(w);
        }
        if w.rec.core().phase() == Phase::Failed && s.rec.core().phase() == Phase::Refreshing {
            if waiting_before > 0 {
                w.seen |= Witness::GaveUpFailingWaiters as u16;
            } else if w.rec.core().snapshot().is_some() {
                w.seen |= Witness::RefreshAheadGaveUpQuietly as u16;
            }
        }
        Some(w)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        fn holds(s: &World, rule: Rule) -> bool {
            s.rec.monitor().count(rule) == 0
        }
        vec![
            Property::always("S1", |_, s: &World| holds(s, Rule::S1)),
            Property::always("S2", |_, s: &World| holds(s, Rule::S2)),
            Property::always("S3", |_, s: &World| holds(s, Rule::S3)),
            Property::always("S4", |_, s: &World| holds(s, Rule::S4)),
            Property::always("S5", |_, s: &World| holds(s, Rule::S5)),
            Property::always("S5b", |_, s: &World| holds(s, Rule::S5b)),
            Property::always("S6", |_, s: &World| holds(s, Rule::S6)),
            Property::always("S7", |_, s: &World| holds(s, Rule::S7)),
            Property::always("L1", |m: &Explore, s: &World| {
                if !m.terminal(s) {
                    return true;
                }
                let mut rec = s.rec.clone();
                rec.finish();
                rec.monitor().count(Rule::L1) == 0
            }),
            Property::sometimes("stale rejection resumed without refresh", |_, s: &World| {
                s.saw(Witness::StaleRejectionResumed)
            }),
            Property::sometimes("transient failure recovered", |_, s: &World| {
                s.saw(Witness::TransientRecovered)
            }),
            Property::sometimes("permanent failure", |_, s: &World| {
                s.saw(Witness::PermanentFailure)
            }),
            Property::sometimes(
                "soft timeout, then the late answer adopted",
                |_, s: &World| s.saw(Witness::LateResultAdopted),
            ),
            Property::sometimes(
                "refresh ahead completed while requests were sent",
                |_, s: &World| s.saw(Witness::RefreshAheadWhileSending),
            ),
            Property::sometimes("refresh ahead gave up, failing nobody", |_, s: &World| {
                s.saw(Witness::RefreshAheadGaveUpQuietly)
            }),
            Property::sometimes("call abandoned, then the next attempt", |_, s: &World| {
                s.saw(Witness::AbandonedThenNextAttempt)
            }),
            Property::sometimes("waiter cancelled during a refresh", |_, s: &World| {
                s.saw(Witness::WaiterCancelled)
            }),
            Property::sometimes("gave up, failing every waiter", |_, s: &World| {
                s.saw(Witness::GaveUpFailingWaiters)
            }),
            Property::sometimes("auth rejected after retries", |_, s: &World| {
                s.saw(Witness::AuthRejected)
            }),
            Property::sometimes(
                "refresh ahead of expiry, the request sent",
                |_, s: &World| s.saw(Witness::ProactiveRefresh),
            ),
        ]
    }
}

const SAFETY: [&str; 9] = ["S1", "S2", "S3", "S4", "S5", "S5b", "S6", "S7", "L1"];

/// Explores the whole scope and returns the number of distinct states.
#[allow(clippy::disallowed_methods)] // wall time, only to report how long the exploration took
fn explore_all(scope: Scope, witnesses: bool) -> usize {
    let started = Instant::now();
    let mut model = Explore::new(scope, None);
    model.witnesses = witnesses;
    let checker = model
        .checker()
        .threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
        .spawn_bfs()
        .join();
    let states = checker.unique_state_count();
    println!(
        "explored {scope:?}: {states} distinct states ({} generated), depth {}, in {:.1?}",
        checker.state_count(),
        checker.max_depth(),
        started.elapsed()
    );
    for name in SAFETY {
        if let Some(path) = checker.discovery(name) {
            let last = path.last_state().clone();
            panic!(
                "{name} broken: {:?}\nafter moves {:?}",
                last.rec.monitor().violations(),
                path.into_actions()
            );
        }
    }
    // Witnesses: the exploration reached each interesting situation.
    let properties = Explore::new(scope, None).properties();
    let witnessed = properties
        .iter()
        .filter(|p| witnesses && !SAFETY.contains(&p.name));
    for p in witnessed {
        assert!(
            checker.discovery(p.name).is_some(),
            "never reached: {}",
            p.name
        );
    }
    states
}

#[test]
fn every_reachable_state_of_the_small_scope_is_safe_and_live() {
    let states = explore_all(SMALL, true);
    assert!(states > 1_000, "the scope is not trivial: {states}");
}

/// Logins from elsewhere, racing everything else, in a scope small enough
/// for every `cargo test`.
const WITH_LOGIN: Scope = Scope {
    requests: 3,
    expiries: 1,
    faults: 1,
    permanents: 1,
    pauses: 1,
    logins: 1,
    cancels: 1,
};

#[test]
fn every_reachable_state_with_a_login_is_safe_and_live() {
    let states = explore_all(WITH_LOGIN, false);
    assert!(states > 1_000, "the scope is not trivial: {states}");
}

/// The wide scopes: five requests, and four with a login. Each takes a few
/// seconds to half a minute in release; widening any budget by one multiplies
/// the states by five or more (see `proofs.md`).
/// `TOKENFLIGHT_EXPLORE=requests,expiries,faults,permanents,pauses,logins,cancels`
/// runs one scope of your choosing instead.
const WIDE: [Scope; 2] = [
    Scope {
        requests: 5,
        expiries: 1,
        faults: 1,
        permanents: 1,
        pauses: 1,
        logins: 0,
        cancels: 1,
    },
    Scope {
        requests: 4,
        logins: 1,
        ..WITH_LOGIN
    },
];

#[test]
#[ignore = "wide scope: run in release (`cargo test --release --test explore -- --ignored`)"]
fn every_reachable_state_of_the_wide_scope_is_safe_and_live() {
    let scopes = match std::env::var("TOKENFLIGHT_EXPLORE") {
        Ok(spec) => {
            let n: Vec<u8> = spec
                .split(',')
                .map(|x| x.trim().parse().expect("a number"))
                .collect();
            let [requests, expiries, faults, permanents, pauses, logins, cancels] = n[..] else {
                panic!("TOKENFLIGHT_EXPLORE takes 7 numbers, got {spec:?}");
            };
            vec![Scope {
                requests: requests.into(),
                expiries,
                faults,
                permanents,
                pauses,
                logins,
                cancels,
            }]
        }
        Err(_) => WIDE.to_vec(),
    };
    for scope in scopes {
        explore_all(scope, false);
    }
}

/// The shortest history that breaks a guarantee under `mutant`.
fn counterexample(mutant: Mutant, scope: Scope) -> (Vec<Violation>, Vec<Move>) {
    let checker = Explore::new(scope, Some(mutant))
        .checker()
        .finish_when(HasDiscoveries::AnyFailures)
        .spawn_bfs()
        .join();
    let found = SAFETY.iter().find_map(|name| checker.discovery(name));
    let Some(path) = found else {
        panic!("{mutant:?} survived the exploration");
    };
    let mut rec = path.last_state().rec.clone();
    if checker.model().terminal(path.last_state()) {
        rec.finish();
    }
    let violations = rec.monitor().violations().to_vec();
    (violations, path.into_actions())
}

#[test]
fn every_mutant_is_caught_with_a_short_counterexample() {
    let expected = [
        (Mutant::RefreshBesideInFlight, Rule::S1, SMALL),
        (Mutant::RefreshOnStaleRejection, Rule::S2, SMALL),
        // With one call at a time, only a login makes an answer's base
        // older than the current generation.
        (Mutant::AdoptEveryLateResult, Rule::S2, WITH_LOGIN),
        (Mutant::LoseWaiterOnCancel, Rule::S3, SMALL),
        (Mutant::IgnoreRetryBudget, Rule::S4, SMALL),
        (Mutant::HandOutRejectedToken, Rule::S5, SMALL),
        (Mutant::KeepWaitersOnFailure, Rule::S6, SMALL),
        (Mutant::IgnoreMaxWaiters, Rule::S7, SMALL),
        (Mutant::ForgetBackoffTimer, Rule::L1, SMALL),
        (Mutant::StartBesideOutstandingCall, Rule::S1, SMALL),
        (Mutant::ParkWhileUsable, Rule::S5b, SMALL),
    ];
    assert_eq!(expected.len(), Mutant::ALL.len(), "every mutant is listed");
    for (mutant, rule, scope) in expected {
        let (violations, moves) = counterexample(mutant, scope);
        println!("{mutant:?}: caught in {} moves {moves:?}", moves.len());
        for v in &violations {
            println!("    {v}");
        }
        assert!(
            violations.iter().any(|v| v.rule == rule),
            "{mutant:?} not caught under {rule:?}: {violations:?}"
        );
        assert!(
            moves.len() <= 12,
            "{mutant:?}: counterexample too long: {moves:?}"
        );
    }
}
