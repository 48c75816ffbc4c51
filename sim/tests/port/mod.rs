//! A second implementation of the core, following `spec/README.md` the way
//! a port to another language would: plain `u64` nanoseconds, its own
//! SplitMix64, its own state, its own ITF writer. Without a bug it must
//! agree with every vector and with the oracle; each [`Bug`] is one way a
//! port author could plausibly get the spec wrong, and the vectors must
//! catch every one.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tokenflight::Config;
use tokenflight_sim::itf::{int, option, unit, variant};
use tokenflight_sim::script::{config_record, input_value, nanos, Input, RefreshResult, Script};

/// A plausible port bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bug {
    /// Jitter state starts one step after the seed (the first output of
    /// SplitMix64 is taken as the state).
    JitterStateAfterSeed,
    /// Skew jitter drawn from a stream of its own, not the shared one.
    SkewOwnStream,
    /// Equal jitter as `d/2 + up_to(d/2)` (differs for odd `d`).
    EqualJitterHalfHalf,
    /// `up_to` as `next % (max + 1)` instead of multiply-shift.
    UpToModulo,
    /// A draw is made (and a state step spent) when the span is 0.
    DrawOnZeroSpan,
    /// An already expired login gets no skew draw.
    NoSkewForExpiredLogin,
    /// A refreshed token that arrives expired still gets a skew draw.
    SkewForExpiredRefresh,
    /// Back-off `initial * 2^failures` (one doubling too many).
    BackoffOneTooMany,
    /// Back-off multiplied in wrapping `u64` nanoseconds.
    BackoffWraps,
    /// Resume/Fail in the order requests joined, not by ascending id.
    JoinOrder,
    /// A late error does not end the outstanding call, so a round queued
    /// behind it waits for the hard limit.
    LateErrorKeepsCall,
    /// `invalidate(0)` before any token starts a refresh.
    InvalidateBeforeToken,
    /// Times kept in milliseconds.
    Milliseconds,
    /// Refresh ahead without the half-life floor.
    NoHalfLifeFloor,
    /// An input's time is trusted even when it is earlier than the last.
    TrustBackwardsTime,
    /// A token expiring exactly now counts as unexpired on arrival.
    ExpiryBoundary,
    /// The attempt timer fires only after its deadline, not at it.
    TimerBoundary,
    /// The retry budget allows one send too many.
    RetryBudgetOffByOne,
    /// `max_waiters` allows one waiter too many.
    WaitersOffByOne,
    /// A lease of a generation never issued is taken as the current one.
    NoUnknownGeneration,
    /// The cool-down is not jittered.
    CooldownUnjittered,
    /// While `Failed`, a request fails fast even if the token is usable.
    FailedFailsUsable,
    /// A stale rejection (older generation) starts a refresh.
    StaleRejectionRefreshes,
    /// A token rejected by the server is handed out again until it expires.
    HandOutRejected,
    /// A login during a refresh keeps the round's waiters waiting.
    LoginKeepsWaiters,
    /// A cancel of a waiter also drops the next one.
    CancelDropsNext,
    /// A rejection naming a waiting id is answered as a duplicate before
    /// its generation and retry budget are looked at.
    DuplicateCheckedFirst,
    /// The next attempt starts while the timed-out call is still out.
    StartBesideCall,
    /// A request that finds a usable token during a refresh waits.
    ParkWhileUsable,
    /// No safety margin: a token is usable until its stated expiry.
    NoSafetyMargin,
    /// `refresh_at` is not capped at the end of the usable time.
    RefreshAtUncapped,
    /// `poll_timeout` forgets the outstanding call's hard limit.
    TimeoutIgnoresAbandon,
    /// A login ends the outstanding call, so a new round starts at once.
    LoginEndsCall,
    /// A late success is adopted whatever generation it was asked for.
    AdoptAnyBase,
    /// The refresh ahead is started by a timer, not by the first request.
    EagerRefreshAhead,
}

impl Bug {
    pub(crate) const ALL: [Bug; 35] = [
        Bug::JitterStateAfterSeed,
        Bug::SkewOwnStream,
        Bug::EqualJitterHalfHalf,
        Bug::UpToModulo,
        Bug::DrawOnZeroSpan,
        Bug::NoSkewForExpiredLogin,
        Bug::SkewForExpiredRefresh,
        Bug::BackoffOneTooMany,
        Bug::BackoffWraps,
        Bug::JoinOrder,
        Bug::LateErrorKeepsCall,
        Bug::InvalidateBeforeToken,
        Bug::Milliseconds,
        Bug::NoHalfLifeFloor,
        Bug::TrustBackwardsTime,
        Bug::ExpiryBoundary,
        Bug::TimerBoundary,
        Bug::RetryBudgetOffByOne,
        Bug::WaitersOffByOne,
        Bug::NoUnknownGeneration,
        Bug::CooldownUnjittered,
        Bug::FailedFailsUsable,
        Bug::StaleRejectionRefreshes,
        Bug::HandOutRejected,
        Bug::LoginKeepsWaiters,
        Bug::CancelDropsNext,
        Bug::DuplicateCheckedFirst,
        Bug::StartBesideCall,
        Bug::ParkWhileUsable,
        Bug::NoSafetyMargin,
        Bug::RefreshAtUncapped,
        Bug::TimeoutIgnoresAbandon,
        Bug::LoginEndsCall,
        Bug::AdoptAnyBase,
        Bug::EagerRefreshAhead,
    ];
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Jitter {
    state: u64,
}

impl Jitter {
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    fn up_to(&mut self, max: u64, bug: Option<Bug>) -> u64 {
        if max == 0 && bug != Some(Bug::DrawOnZeroSpan) {
            return 0;
        }
        let r = self.next();
        if bug == Some(Bug::UpToModulo) {
            return r % max.saturating_add(1).max(1);
        }
        ((u128::from(r) * u128::from(max.saturating_add(1))) >> 64) as u64
    }

    fn equal(&mut self, d: u64, bug: Option<Bug>) -> u64 {
        let half = d / 2;
        if bug == Some(Bug::EqualJitterHalfHalf) {
            return half + self.up_to(half, bug);
        }
        half + self.up_to(d - half, bug)
    }
}

struct Cfg {
    max_waiters: u64,
    max_sends: u64,
    max_refresh_attempts: u64,
    refresh_timeout: u64,
    abandon_after: u64,
    backoff_initial: u64,
    backoff_max: u64,
    cooldown: u64,
    expiry_skew: u64,
    skew_jitter: u64,
    safety_margin: u64,
}

struct Current {
    token: String,
    usable_until: Option<u64>,
    refresh_at: Option<u64>,
    rejected: bool,
}

impl Current {
    fn unexpired(&self, now: u64) -> bool {
        self.usable_until.is_none_or(|u| now < u)
    }
    fn usable(&self, now: u64) -> bool {
        !self.rejected && self.unexpired(now)
    }
    fn due(&self, now: u64) -> bool {
        self.usable(now) && self.refresh_at.is_some_and(|r| now >= r)
    }
}

enum Step {
    InFlight { attempt: u64, deadline: u64 },
    BackingOff { retry_at: u64 },
    Queued,
}

#[derive(Clone, Copy)]
struct Call {
    attempt: u64,
    base: u64,
    abandon_at: u64,
}

enum St {
    Idle,
    Refreshing {
        /// id -> (sends, join order)
        waiters: BTreeMap<u64, (u32, u64)>,
        failures: u64,
        step: Step,
    },
    Failed {
        error: Value,
        retry_at: Option<u64>,
    },
}

enum Next {
    Send(u32),
    Wait,
    Fail(Value),
}

pub(crate) struct Port {
    bug: Option<Bug>,
    cfg: Cfg,
    now: u64,
    token: Option<Current>,
    generation: u64,
    st: St,
    last_attempt: u64,
    call: Option<Call>,
    actions: Vec<Value>,
    jitter: Jitter,
    skew: Jitter,
    joins: u64,
}

fn err(kind: &str) -> Value {
    variant(kind, unit())
}

impl Port {
    /// `None` for a configuration the core refuses.
    pub(crate) fn new(c: &Config, bug: Option<Bug>) -> Option<Port> {
        let ns = |d| nanos(d);
        if c.max_waiters == 0
            || c.max_refresh_attempts == 0
            || c.refresh_timeout.is_zero()
            || c.refresh_abandon_after < c.refresh_timeout
            || c.backoff_initial > c.backoff_max
        {
            return None;
        }
        let seed = if bug == Some(Bug::JitterStateAfterSeed) {
            mix(c.seed.wrapping_add(GOLDEN))
        } else {
            c.seed
        };
        Some(Port {
            bug,
            cfg: Cfg {
                max_waiters: c.max_waiters as u64,
                max_sends: u64::from(c.max_auth_retries.saturating_add(1)),
                max_refresh_attempts: u64::from(c.max_refresh_attempts),
                refresh_timeout: ns(c.refresh_timeout),
                abandon_after: ns(c.refresh_abandon_after),
                backoff_initial: ns(c.backoff_initial),
                backoff_max: ns(c.backoff_max),
                cooldown: ns(c.cooldown),
                expiry_skew: ns(c.expiry_skew),
                skew_jitter: ns(c.skew_jitter),
                safety_margin: if bug == Some(Bug::NoSafetyMargin) {
                    0
                } else {
                    ns(c.safety_margin)
                },
            },
            now: 0,
            token: None,
            generation: 0,
            st: St::Idle,
            last_attempt: 0,
            call: None,
            actions: Vec::new(),
            jitter: Jitter { state: seed },
            skew: Jitter {
                state: seed ^ 0x5555,
            },
            joins: 0,
        })
    }

    fn is(&self, b: Bug) -> bool {
        self.bug == Some(b)
    }

    fn advance(&mut self, now: u64) -> u64 {
        let now = if self.is(Bug::Milliseconds) {
            now / 1_000_000 * 1_000_000
        } else {
            now
        };
        self.now = if self.is(Bug::TrustBackwardsTime) {
            now
        } else {
            self.now.max(now)
        };
        self.now
    }

    fn lease(&self, send: u32) -> Value {
        let t = self.token.as_ref().expect("a token");
        json!({ "token": t.token, "generation": int(self.generation), "send": int(u64::from(send)) })
    }

    fn next_value(&self, n: Next) -> Value {
        match n {
            Next::Send(send) => variant("Send", self.lease(send)),
            Next::Wait => variant("Wait", unit()),
            Next::Fail(e) => variant("Fail", json!({ "error": e })),
        }
    }

    fn acquire(&mut self, now: u64, id: u64) -> Next {
        let now = self.advance(now);
        self.route(now, id, 0)
    }

    fn reject(&mut self, now: u64, id: u64, generation: u64, send: u32) -> Next {
        let now = self.advance(now);
        let waiting =
            matches!(&self.st, St::Refreshing { waiters, .. } if waiters.contains_key(&id));
        if waiting && self.is(Bug::DuplicateCheckedFirst) {
            return Next::Fail(err("DuplicateRequest"));
        }
        let generation = if self.is(Bug::NoUnknownGeneration) {
            generation.min(self.generation)
        } else {
            generation
        };
        if generation > self.generation {
            return Next::Fail(err("UnknownGeneration"));
        }
        let stale = generation < self.generation;
        if !stale || self.is(Bug::StaleRejectionRefreshes) {
            if let Some(c) = &mut self.token {
                c.rejected = true;
            }
        }
        let budget = if self.is(Bug::RetryBudgetOffByOne) {
            u64::from(send) > self.cfg.max_sends
        } else {
            u64::from(send) >= self.cfg.max_sends
        };
        if budget {
            return Next::Fail(variant(
                "AuthRejected",
                json!({ "sends": int(u64::from(send)) }),
            ));
        }
        self.route(now, id, send)
    }

    fn route(&mut self, now: u64, id: u64, sends: u32) -> Next {
        let failed_first = self.is(Bug::FailedFailsUsable);
        let park = self.is(Bug::ParkWhileUsable) && matches!(self.st, St::Refreshing { .. });
        if let St::Failed { error, retry_at } = &self.st {
            if failed_first && retry_at.is_none_or(|at| now < at) {
                return Next::Fail(error.clone());
            }
        }
        if let Some(c) = &self.token {
            let handout = c.usable(now) || (self.is(Bug::HandOutRejected) && c.unexpired(now));
            if handout && !park {
                if self.due_ahead(now) {
                    self.start_round(now, BTreeMap::new());
                }
                return Next::Send(sends.saturating_add(1));
            }
        }
        let limit = if self.is(Bug::WaitersOffByOne) {
            self.cfg.max_waiters + 1
        } else {
            self.cfg.max_waiters
        };
        match &mut self.st {
            St::Refreshing { waiters, .. } => {
                if waiters.contains_key(&id) {
                    return Next::Fail(err("DuplicateRequest"));
                }
                if waiters.len() as u64 >= limit {
                    return Next::Fail(err("Overloaded"));
                }
                self.joins += 1;
                waiters.insert(id, (sends, self.joins));
                Next::Wait
            }
            St::Failed { error, retry_at } if retry_at.is_none_or(|at| now < at) => {
                Next::Fail(error.clone())
            }
            St::Idle | St::Failed { .. } => {
                self.joins += 1;
                self.start_round(now, BTreeMap::from([(id, (sends, self.joins))]));
                Next::Wait
            }
        }
    }

    fn due_ahead(&self, now: u64) -> bool {
        match &self.st {
            St::Idle => self.token.as_ref().is_some_and(|c| c.due(now)),
            St::Failed {
                retry_at: Some(at), ..
            } => now >= *at,
            _ => false,
        }
    }

    fn start_round(&mut self, now: u64, waiters: BTreeMap<u64, (u32, u64)>) {
        self.st = St::Refreshing {
            waiters,
            failures: 0,
            step: Step::Queued,
        };
        self.next_attempt(now);
    }

    fn next_attempt(&mut self, now: u64) {
        if self.call.is_some() && !self.is(Bug::StartBesideCall) {
            if let St::Refreshing { step, .. } = &mut self.st {
                *step = Step::Queued;
            }
            return;
        }
        self.start_attempt(now);
    }

    fn start_attempt(&mut self, now: u64) {
        self.last_attempt = self.last_attempt.saturating_add(1);
        let attempt = self.last_attempt;
        self.call = Some(Call {
            attempt,
            base: self.generation,
            abandon_at: now.saturating_add(self.cfg.abandon_after),
        });
        let deadline = now.saturating_add(self.cfg.refresh_timeout);
        if let St::Refreshing { step, .. } = &mut self.st {
            *step = Step::InFlight { attempt, deadline };
        }
        self.actions
            .push(variant("StartRefresh", json!({ "attempt": int(attempt) })));
    }

    fn in_flight(&self) -> Option<u64> {
        match &self.st {
            St::Refreshing {
                step: Step::InFlight { attempt, .. },
                ..
            } => Some(*attempt),
            _ => None,
        }
    }

    /// No longer usable on arrival: expired, or within the safety margin.
    fn expired(&self, expires_at: Option<u64>, now: u64) -> bool {
        let m = self.cfg.safety_margin;
        if self.is(Bug::ExpiryBoundary) {
            expires_at.is_some_and(|e| e.saturating_sub(m) < now)
        } else {
            expires_at.is_some_and(|e| e.saturating_sub(m) <= now)
        }
    }

    fn refreshed(&mut self, now: u64, attempt: u64, result: &RefreshResult) {
        let now = self.advance(now);
        let Some(call) = self.call.filter(|c| c.attempt == attempt) else {
            return;
        };
        let late_error =
            !matches!(result, RefreshResult::Ok { .. }) && self.in_flight() != Some(attempt);
        if !(late_error && self.is(Bug::LateErrorKeepsCall)) {
            self.call = None;
        }
        if self.in_flight() == Some(attempt) {
            match result {
                RefreshResult::Ok { expires_at, .. } if self.expired(*expires_at, now) => {
                    if self.is(Bug::SkewForExpiredRefresh) && self.cfg.skew_jitter > 0 {
                        let _ = self.skew_draw();
                    }
                    self.attempt_failed(now, "RefreshUnavailable.ExpiredOnArrival")
                }
                RefreshResult::Ok { token, expires_at } => {
                    self.install(now, token, *expires_at);
                    self.settle(now);
                }
                RefreshResult::Transient { .. } => {
                    self.attempt_failed(now, "RefreshUnavailable.Refresher")
                }
                RefreshResult::Permanent { .. } => self.give_up(err("LoginRequired"), None),
            }
            return;
        }
        let for_current = call.base == self.generation || self.is(Bug::AdoptAnyBase);
        let revoked = matches!(self.st, St::Failed { retry_at: None, .. });
        match result {
            RefreshResult::Ok { token, expires_at }
                if for_current && !revoked && !self.expired(*expires_at, now) =>
            {
                self.install(now, token, *expires_at);
                self.settle(now);
            }
            _ => {
                if matches!(
                    self.st,
                    St::Refreshing {
                        step: Step::Queued,
                        ..
                    }
                ) && self.call.is_none()
                {
                    self.start_attempt(now);
                }
            }
        }
    }

    fn timeout(&mut self, now: u64) {
        let now = self.advance(now);
        if let Some(call) = self.call.filter(|c| now >= c.abandon_at) {
            self.call = None;
            self.actions.push(variant(
                "AbandonRefresh",
                json!({ "attempt": int(call.attempt) }),
            ));
        }
        if self.is(Bug::EagerRefreshAhead) && matches!(self.st, St::Idle) && self.due_ahead(now) {
            self.start_round(now, BTreeMap::new());
            return;
        }
        let boundary = self.is(Bug::TimerBoundary);
        let St::Refreshing { step, .. } = &self.st else {
            return;
        };
        match *step {
            Step::InFlight { deadline, .. } if now > deadline || (now == deadline && !boundary) => {
                self.attempt_failed(now, "RefreshUnavailable.TimedOut");
            }
            Step::BackingOff { retry_at } if now >= retry_at => self.next_attempt(now),
            Step::Queued if self.call.is_none() => self.start_attempt(now),
            _ => {}
        }
    }

    fn backoff(&self, failures: u64) -> u64 {
        let exp = if self.is(Bug::BackoffOneTooMany) {
            failures.min(31)
        } else {
            failures.saturating_sub(1).min(31)
        };
        let raw = if self.is(Bug::BackoffWraps) {
            self.cfg.backoff_initial.wrapping_mul(1 << exp)
        } else {
            self.cfg.backoff_initial.saturating_mul(1 << exp)
        };
        raw.min(self.cfg.backoff_max)
    }

    fn attempt_failed(&mut self, now: u64, kind: &str) {
        let failures = match &mut self.st {
            St::Refreshing { failures, .. } => {
                *failures += 1;
                *failures
            }
            _ => return,
        };
        if failures < self.cfg.max_refresh_attempts {
            let b = self.backoff(failures);
            let retry_at = now.saturating_add(self.jitter.equal(b, self.bug));
            if let St::Refreshing { step, .. } = &mut self.st {
                *step = Step::BackingOff { retry_at };
            }
            return;
        }
        let cool = if self.is(Bug::CooldownUnjittered) {
            self.cfg.cooldown
        } else {
            self.jitter.equal(self.cfg.cooldown, self.bug)
        };
        let mut retry_at = now.saturating_add(cool);
        if let Some(c) = self.token.as_ref().filter(|c| c.usable(now)) {
            retry_at = retry_at.min(c.usable_until.unwrap_or(u64::MAX));
        }
        self.give_up(err(kind), Some(retry_at));
    }

    fn ordered(&self, waiters: BTreeMap<u64, (u32, u64)>) -> Vec<(u64, u32)> {
        let mut v: Vec<(u64, (u32, u64))> = waiters.into_iter().collect();
        if self.is(Bug::JoinOrder) {
            v.sort_by_key(|(_, (_, join))| *join);
        }
        v.into_iter().map(|(id, (s, _))| (id, s)).collect()
    }

    fn give_up(&mut self, error: Value, retry_at: Option<u64>) {
        let previous = std::mem::replace(
            &mut self.st,
            St::Failed {
                error: error.clone(),
                retry_at,
            },
        );
        if let St::Refreshing { waiters, .. } = previous {
            for (id, _) in self.ordered(waiters) {
                self.actions.push(variant(
                    "Fail",
                    json!({ "id": int(id), "error": error.clone() }),
                ));
            }
        }
    }

    fn skew_draw(&mut self) -> u64 {
        let max = self.cfg.skew_jitter;
        let bug = self.bug;
        if self.is(Bug::SkewOwnStream) {
            self.skew.up_to(max, bug)
        } else {
            self.jitter.up_to(max, bug)
        }
    }

    fn install(&mut self, now: u64, token: &str, expires_at: Option<u64>) {
        self.generation = self.generation.saturating_add(1);
        let expires_at = expires_at.map(|e| {
            if self.is(Bug::Milliseconds) {
                e / 1_000_000 * 1_000_000
            } else {
                e
            }
        });
        let usable_until = expires_at.map(|e| e.saturating_sub(self.cfg.safety_margin));
        let refresh_at = expires_at.map(|e| {
            let login_expired = e <= now;
            let draw = !(self.is(Bug::NoSkewForExpiredLogin) && login_expired);
            let jitter = if draw { self.skew_draw() } else { 0 };
            let skew = self.cfg.expiry_skew.saturating_add(jitter);
            let life = e.saturating_sub(now);
            let mut ahead = e.saturating_sub(skew);
            if !self.is(Bug::NoHalfLifeFloor) {
                ahead = ahead.max(now.saturating_add(life - life / 2));
            }
            match usable_until {
                Some(u) if !self.is(Bug::RefreshAtUncapped) => ahead.min(u),
                _ => ahead,
            }
        });
        self.token = Some(Current {
            token: token.to_string(),
            usable_until,
            refresh_at,
            rejected: false,
        });
    }

    fn settle(&mut self, now: u64) {
        let waiters = match std::mem::replace(&mut self.st, St::Idle) {
            St::Refreshing { waiters, .. } => waiters,
            _ => BTreeMap::new(),
        };
        let usable = self.token.as_ref().is_some_and(|c| c.usable(now));
        if !usable {
            if !waiters.is_empty() {
                self.start_round(now, waiters);
            }
            return;
        }
        for (id, sends) in self.ordered(waiters) {
            let mut lease = self.lease(sends.saturating_add(1));
            lease["id"] = int(id);
            self.actions.push(variant("Resume", lease));
        }
    }

    fn set_token(&mut self, now: u64, token: &str, expires_at: Option<u64>) {
        let now = self.advance(now);
        self.install(now, token, expires_at);
        if self.is(Bug::LoginEndsCall) {
            self.call = None;
        }
        if self.is(Bug::LoginKeepsWaiters) && matches!(self.st, St::Refreshing { .. }) {
            return;
        }
        self.settle(now);
    }

    fn invalidate(&mut self, now: u64, generation: u64) {
        let now = self.advance(now);
        if generation != self.generation {
            return;
        }
        let before_token = self.is(Bug::InvalidateBeforeToken);
        match &mut self.token {
            Some(c) => c.rejected = true,
            None if before_token => {}
            None => return,
        }
        if matches!(self.st, St::Idle) {
            self.start_round(now, BTreeMap::new());
        }
    }

    fn cancel(&mut self, now: u64, id: u64) -> bool {
        self.advance(now);
        let drop_next = self.is(Bug::CancelDropsNext);
        let St::Refreshing { waiters, .. } = &mut self.st else {
            return false;
        };
        let removed = waiters.remove(&id).is_some();
        if removed && drop_next {
            waiters.pop_first();
        }
        removed
    }

    /// Until when a fast path may hand out the token without asking.
    fn valid_until(&self) -> Option<u64> {
        let c = self.token.as_ref().filter(|c| c.usable(self.now))?;
        let usable_until = c.usable_until.unwrap_or(u64::MAX);
        let until = match &self.st {
            St::Idle if !self.is(Bug::RefreshAtUncapped) => {
                c.refresh_at.map_or(usable_until, |r| r.min(usable_until))
            }
            St::Idle => c.refresh_at.unwrap_or(usable_until),
            St::Failed {
                retry_at: Some(at), ..
            } => usable_until.min(*at),
            _ => usable_until,
        };
        (self.now < until).then_some(until)
    }

    fn timeout_value(&self) -> Value {
        let round = match &self.st {
            St::Refreshing { step, .. } => match step {
                Step::InFlight { deadline, .. } => Some(*deadline),
                Step::BackingOff { retry_at } => Some(*retry_at),
                Step::Queued => None,
            },
            _ => None,
        };
        let abandon = self
            .call
            .filter(|_| !self.is(Bug::TimeoutIgnoresAbandon))
            .map(|c| c.abandon_at);
        option(match (round, abandon) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn observe(&mut self, index: usize, now: u64, input: Value, answer: Value) -> Value {
        let phase = match self.st {
            St::Idle => "Idle",
            St::Refreshing { .. } => "Refreshing",
            St::Failed { .. } => "Failed",
        };
        let waiters = match &self.st {
            St::Refreshing { waiters, .. } => waiters.len() as u64,
            _ => 0,
        };
        json!({
            "#meta": { "index": index },
            "now": int(now),
            "input": input,
            "answer": answer,
            "actions": std::mem::take(&mut self.actions),
            "timeout": self.timeout_value(),
            "phase": phase,
            "generation": int(self.generation),
            "waiters": int(waiters),
            "outstanding": option(self.call.map(|c| c.attempt)),
            "valid_until": option(self.valid_until()),
        })
    }

    fn step(&mut self, now: u64, input: &Input) -> Value {
        let none = || variant("None", unit());
        match input {
            Input::Acquire { id } => {
                let n = self.acquire(now, *id);
                self.next_value(n)
            }
            Input::Reject {
                id,
                generation,
                send,
                ..
            } => {
                let n = self.reject(now, *id, *generation, *send);
                self.next_value(n)
            }
            Input::Cancel { id } => {
                let was = self.cancel(now, *id);
                variant("Cancelled", json!({ "was_waiting": was }))
            }
            Input::Refreshed { attempt, result } => {
                self.refreshed(now, *attempt, result);
                none()
            }
            Input::Timeout => {
                self.timeout(now);
                none()
            }
            Input::SetToken { token, expires_at } => {
                self.set_token(now, token, *expires_at);
                none()
            }
            Input::Invalidate { generation } => {
                self.invalidate(now, *generation);
                none()
            }
        }
    }
}

/// The port's trace states for `script`; `None` for a refused config.
pub(crate) fn states(script: &Script, bug: Option<Bug>) -> Option<Vec<Value>> {
    let mut port = Port::new(&script.config, bug)?;
    let init = variant("Init", json!({ "config": config_record(&script.config) }));
    let mut out = vec![port.observe(0, 0, init, variant("None", unit()))];
    for (i, (now, input)) in script.inputs.iter().enumerate() {
        let answer = port.step(*now, input);
        out.push(port.observe(i + 1, *now, input_value(input), answer));
    }
    Some(out)
}
