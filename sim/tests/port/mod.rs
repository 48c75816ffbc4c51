//! A second implementation of the core, written from `spec/core.md` the way
//! a port to another language would be: plain `u64` nanoseconds, its own
//! SplitMix64, its own state, its own ITF writer. Without a bug it must
//! agree with every vector and with the oracle; each [`Bug`] is one way a
//! port author could plausibly get the spec wrong, and the vectors must
//! catch every one.

use std::collections::{BTreeMap, BTreeSet};

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
    /// A late error leaves its attempt adoptable.
    LateErrorKeepsAttempt,
    /// `invalidate(0)` before any token starts a refresh.
    InvalidateBeforeToken,
    /// A duplicate rejection (of a waiting id) does not mark the token bad.
    DuplicateRejectionHarmless,
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
    /// A late success is adopted after a permanent failure.
    AdoptAfterPermanent,
    /// A lease of a generation never issued is taken as the current one.
    NoUnknownGeneration,
    /// The cool-down is not jittered.
    CooldownUnjittered,
    /// Giving up discards a token that is still good.
    GiveUpDropsGoodToken,
    /// A stale rejection (older generation) starts a refresh.
    StaleRejectionRefreshes,
    /// A token rejected by the server is handed out again until it expires.
    HandOutRejected,
    /// A login during a refresh keeps the round's waiters waiting.
    LoginKeepsWaiters,
    /// A cancel of a waiter also drops the next one.
    CancelDropsNext,
}

impl Bug {
    pub(crate) const ALL: [Bug; 28] = [
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
        Bug::LateErrorKeepsAttempt,
        Bug::InvalidateBeforeToken,
        Bug::DuplicateRejectionHarmless,
        Bug::Milliseconds,
        Bug::NoHalfLifeFloor,
        Bug::TrustBackwardsTime,
        Bug::ExpiryBoundary,
        Bug::TimerBoundary,
        Bug::RetryBudgetOffByOne,
        Bug::WaitersOffByOne,
        Bug::AdoptAfterPermanent,
        Bug::NoUnknownGeneration,
        Bug::CooldownUnjittered,
        Bug::GiveUpDropsGoodToken,
        Bug::StaleRejectionRefreshes,
        Bug::HandOutRejected,
        Bug::LoginKeepsWaiters,
        Bug::CancelDropsNext,
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
    backoff_initial: u64,
    backoff_max: u64,
    cooldown: u64,
    expiry_skew: u64,
    skew_jitter: u64,
}

struct Current {
    token: String,
    expires_at: Option<u64>,
    refresh_at: Option<u64>,
    rejected: bool,
}

impl Current {
    fn fresh_at(&self, now: u64) -> bool {
        !self.rejected && self.expires_at.is_none_or(|e| now < e)
    }
    fn usable(&self, now: u64) -> bool {
        self.fresh_at(now) && self.refresh_at.is_none_or(|r| now < r)
    }
}

enum Step {
    InFlight { attempt: u64, deadline: u64 },
    BackingOff { retry_at: u64 },
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
    abandoned: BTreeSet<u64>,
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
                backoff_initial: ns(c.backoff_initial),
                backoff_max: ns(c.backoff_max),
                cooldown: ns(c.cooldown),
                expiry_skew: ns(c.expiry_skew),
                skew_jitter: ns(c.skew_jitter),
            },
            now: 0,
            token: None,
            generation: 0,
            st: St::Idle,
            last_attempt: 0,
            abandoned: BTreeSet::new(),
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
        let generation = if self.is(Bug::NoUnknownGeneration) {
            generation.min(self.generation)
        } else {
            generation
        };
        if generation > self.generation {
            return Next::Fail(err("UnknownGeneration"));
        }
        let stale = generation < self.generation;
        let duplicate =
            matches!(&self.st, St::Refreshing { waiters, .. } if waiters.contains_key(&id));
        if duplicate && self.is(Bug::DuplicateRejectionHarmless) {
            return Next::Fail(err("DuplicateRequest"));
        }
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
        let limit = if self.is(Bug::WaitersOffByOne) {
            self.cfg.max_waiters + 1
        } else {
            self.cfg.max_waiters
        };
        if let St::Refreshing { waiters, .. } = &mut self.st {
            if waiters.contains_key(&id) {
                return Next::Fail(err("DuplicateRequest"));
            }
            if waiters.len() as u64 >= limit {
                return Next::Fail(err("Overloaded"));
            }
            self.joins += 1;
            waiters.insert(id, (sends, self.joins));
            return Next::Wait;
        }
        if let St::Failed { error, retry_at } = &self.st {
            if retry_at.is_none_or(|at| now < at) {
                return Next::Fail(error.clone());
            }
        } else if let Some(c) = &self.token {
            let handout = c.usable(now)
                || (self.is(Bug::HandOutRejected)
                    && c.expires_at.is_none_or(|e| now < e)
                    && c.refresh_at.is_none_or(|r| now < r));
            if handout {
                return Next::Send(sends.saturating_add(1));
            }
        }
        self.joins += 1;
        self.start_round(now, BTreeMap::from([(id, (sends, self.joins))]));
        Next::Wait
    }

    fn start_round(&mut self, now: u64, waiters: BTreeMap<u64, (u32, u64)>) {
        self.st = St::Refreshing {
            waiters,
            failures: 0,
            step: Step::BackingOff { retry_at: now },
        };
        self.start_attempt(now);
    }

    fn start_attempt(&mut self, now: u64) {
        self.last_attempt = self.last_attempt.saturating_add(1);
        let attempt = self.last_attempt;
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

    fn expired(&self, expires_at: Option<u64>, now: u64) -> bool {
        if self.is(Bug::ExpiryBoundary) {
            expires_at.is_some_and(|e| e < now)
        } else {
            expires_at.is_some_and(|e| e <= now)
        }
    }

    fn refreshed(&mut self, now: u64, attempt: u64, result: &RefreshResult) {
        let now = self.advance(now);
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
        let late =
            if self.is(Bug::LateErrorKeepsAttempt) && !matches!(result, RefreshResult::Ok { .. }) {
                false
            } else {
                self.abandoned.remove(&attempt)
            };
        let revoked = matches!(self.st, St::Failed { retry_at: None, .. })
            && !self.is(Bug::AdoptAfterPermanent);
        if let (true, false, RefreshResult::Ok { token, expires_at }) = (late, revoked, result) {
            if !self.expired(*expires_at, now) {
                self.install(now, token, *expires_at);
                self.settle(now);
            }
        }
    }

    fn timeout(&mut self, now: u64) {
        let now = self.advance(now);
        let boundary = self.is(Bug::TimerBoundary);
        let St::Refreshing { step, .. } = &self.st else {
            return;
        };
        match *step {
            Step::InFlight { attempt, deadline }
                if now > deadline || (now == deadline && !boundary) =>
            {
                self.abandoned.insert(attempt);
                if self.abandoned.len() as u64 > self.cfg.max_refresh_attempts {
                    self.abandoned.pop_first();
                }
                self.attempt_failed(now, "RefreshUnavailable.TimedOut");
            }
            Step::BackingOff { retry_at } if now >= retry_at => self.start_attempt(now),
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
        let keep = !self.is(Bug::GiveUpDropsGoodToken);
        if let Some(c) = self.token.as_mut().filter(|c| keep && c.fresh_at(now)) {
            c.refresh_at = None;
            self.settle(now);
            return;
        }
        let cool = if self.is(Bug::CooldownUnjittered) {
            self.cfg.cooldown
        } else {
            self.jitter.equal(self.cfg.cooldown, self.bug)
        };
        self.give_up(err(kind), Some(now.saturating_add(cool)));
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
        self.abandoned.clear();
        let refresh_at = expires_at.map(|e| {
            let login_expired = e <= now;
            let draw = !(self.is(Bug::NoSkewForExpiredLogin) && login_expired);
            let jitter = if draw { self.skew_draw() } else { 0 };
            let skew = self.cfg.expiry_skew.saturating_add(jitter);
            let life = e.saturating_sub(now);
            let ahead = e.saturating_sub(skew);
            if self.is(Bug::NoHalfLifeFloor) {
                ahead
            } else {
                ahead.max(now.saturating_add(life - life / 2))
            }
        });
        self.token = Some(Current {
            token: token.to_string(),
            expires_at: expires_at.map(|e| {
                if self.is(Bug::Milliseconds) {
                    e / 1_000_000 * 1_000_000
                } else {
                    e
                }
            }),
            refresh_at,
            rejected: false,
        });
    }

    fn settle(&mut self, now: u64) {
        let waiters = match std::mem::replace(&mut self.st, St::Idle) {
            St::Refreshing { waiters, .. } => waiters,
            _ => BTreeMap::new(),
        };
        let usable = self.token.as_ref().is_some_and(|c| c.fresh_at(now));
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

    fn timeout_value(&self) -> Value {
        match &self.st {
            St::Refreshing { step, .. } => match step {
                Step::InFlight { deadline, .. } => option(Some(*deadline)),
                Step::BackingOff { retry_at } => option(Some(*retry_at)),
            },
            _ => option(None),
        }
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
