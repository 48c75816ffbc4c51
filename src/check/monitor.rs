//! The invariant checker: reads a history event by event and judges it
//! against S1–S7 and L1 with its own bookkeeping, never the core's counters.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::Event;
use crate::{Config, Generation, Phase, RefreshId, RequestId, Timestamp};

/// The bounds a history is judged against (S4, S7, the proactive window
/// that justifies a refresh ahead of expiry under S2, and the safety margin
/// before expiry until which nobody may wait under S5b).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Requests waiting at once.
    pub max_waiters: usize,
    /// Sends of one request, first send included.
    pub max_sends: u32,
    /// Refresh attempts in one round.
    pub max_refresh_attempts: u32,
    /// How long before its expiry a token may be refreshed.
    pub proactive_window: Duration,
    /// A token counts as expired this long before its expiry; until then a
    /// request that waits breaks S5b.
    pub safety_margin: Duration,
}

impl Limits {
    /// The limits a core with `config` promises to keep.
    pub fn of(config: &Config) -> Self {
        Limits {
            max_waiters: config.max_waiters,
            max_sends: config.max_sends(),
            max_refresh_attempts: config.max_refresh_attempts,
            // A refresh ahead is due `expiry_skew` plus jitter before expiry,
            // but never later than the token stops being usable.
            proactive_window: config
                .expiry_skew
                .saturating_add(config.skew_jitter)
                .max(config.safety_margin),
            safety_margin: config.safety_margin,
        }
    }

    /// No bounds at all: for judging a system that promises none (the
    /// recipe) on S1–S6 and L1 alone. S5b then counts a token as usable
    /// until its stated expiry.
    pub fn unbounded() -> Self {
        Limits {
            max_waiters: usize::MAX,
            max_sends: u32::MAX,
            max_refresh_attempts: u32::MAX,
            proactive_window: Duration::ZERO,
            safety_margin: Duration::ZERO,
        }
    }
}

/// A guarantee of the contract (see `proofs.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// At most one refresher call outstanding at the endpoint.
    S1,
    /// One refresh per expiry, and only for the current generation.
    S2,
    /// No lost request; no waiter once idle.
    S3,
    /// No duplicate outcome, resume or send beyond the budget.
    S4,
    /// No send with a token known to be bad.
    S5,
    /// No wait while the current token is usable.
    S5b,
    /// Failure reaches every waiter in the same step.
    S6,
    /// Bounded waiters and refresh attempts.
    S7,
    /// Every request eventually ends.
    L1,
}

impl Rule {
    /// Every rule, in order.
    pub const ALL: [Rule; 9] = [
        Rule::S1,
        Rule::S2,
        Rule::S3,
        Rule::S4,
        Rule::S5,
        Rule::S5b,
        Rule::S6,
        Rule::S7,
        Rule::L1,
    ];

    /// The rule's short name.
    pub fn title(self) -> &'static str {
        match self {
            Rule::S1 => "single flight",
            Rule::S2 => "one refresh per expiry",
            Rule::S3 => "no lost request",
            Rule::S4 => "no duplicate",
            Rule::S5 => "no known-stale send",
            Rule::S5b => "no needless wait",
            Rule::S6 => "failure reaches everyone",
            Rule::S7 => "bounded",
            Rule::L1 => "nothing waits forever",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} ({})", self.title())
    }
}

/// A broken guarantee, with when and what.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Violation {
    /// Which guarantee.
    pub rule: Rule,
    /// When (the history's time).
    pub at: Timestamp,
    /// What happened, in words.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.rule, self.at, self.detail)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Request {
    waiting: bool,
    sends: u32,
    last_sent: Option<Generation>,
}

/// Judges a history against S1–S7 and L1, one event at a time.
///
/// It keeps its own books: which requests are live, which are waiting, which
/// generation is current and whether it is known bad, which refresher call
/// is outstanding (from `RefreshStarted` until `RefreshEnded` or
/// `RefreshDropped`; a `RefreshAbandoned` call still counts) and for which
/// generation each was started. It never looks at
/// the system it judges. Request ids must not be reused within a history.
///
/// # Examples
///
/// ```
/// use tokenflight::check::{Event, Limits, Monitor, Rule};
/// use tokenflight::core::{RefreshId, RequestId};
/// use tokenflight::{Generation, Timestamp};
///
/// let mut m = Monitor::new(Limits::unbounded());
/// let t = Timestamp::ZERO;
/// m.observe(t, Event::RefreshStarted { attempt: RefreshId(1) });
/// m.observe(t, Event::RefreshStarted { attempt: RefreshId(2) });
/// assert_eq!(m.first_violation().map(|v| v.rule), Some(Rule::S1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Monitor {
    limits: Limits,
    now: Timestamp,
    current: Generation,
    current_expires_at: Option<Timestamp>,
    /// The current generation was rejected or invalidated.
    current_bad: bool,
    /// Requests that arrived and have not ended.
    live: BTreeMap<RequestId, Request>,
    waiting: usize,
    /// The generation each attempt was started for.
    attempts: BTreeMap<RefreshId, Generation>,
    /// The refresher call outstanding at the endpoint (S1).
    outstanding: Option<RefreshId>,
    round_attempts: u32,
    counts: [u64; Rule::ALL.len()],
    first: Vec<Violation>,
}

/// How many violations keep their details; the rest are only counted.
const KEEP: usize = 16;

impl Monitor {
    /// A checker with the limits a handle or core with `config` promises
    /// ([`Limits::of`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::check::Monitor;
    /// use tokenflight::Config;
    ///
    /// let monitor = Monitor::of(&Config::default());
    /// assert!(monitor.first_violation().is_none());
    /// ```
    pub fn of(config: &Config) -> Self {
        Monitor::new(Limits::of(config))
    }

    /// A checker for a history that starts with no token and no request.
    pub fn new(limits: Limits) -> Self {
        Monitor {
            limits,
            now: Timestamp::ZERO,
            current: Generation::NONE,
            current_expires_at: None,
            current_bad: false,
            live: BTreeMap::new(),
            waiting: 0,
            attempts: BTreeMap::new(),
            outstanding: None,
            round_attempts: 0,
            counts: [0; Rule::ALL.len()],
            first: Vec::new(),
        }
    }

    /// Judges the next event of the history, which happened at `at`.
    /// Violations are collected; see [`Monitor::first_violation`].
    pub fn observe(&mut self, at: Timestamp, event: Event) {
        self.now = self.now.max(at);
        match event {
            Event::Arrived { id } => {
                let fresh = Request {
                    waiting: false,
                    sends: 0,
                    last_sent: None,
                };
                if self.live.insert(id, fresh).is_some() {
                    self.flag(Rule::S4, format!("{id} arrived twice"));
                }
            }
            Event::Sent { id, generation } => self.sent(id, generation),
            Event::Rejected { id, generation } => {
                if let Some(r) = self.live_request(id, "rejected") {
                    if r.waiting {
                        self.flag(Rule::S4, format!("{id} rejected while waiting, never sent"));
                    }
                }
                if generation == self.current {
                    self.current_bad = true;
                }
            }
            Event::Waiting { id } => {
                let Some(r) = self.live_request(id, "waiting") else {
                    return;
                };
                if r.waiting {
                    self.flag(Rule::S4, format!("{id} parked twice"));
                    return;
                }
                r.waiting = true;
                self.waiting += 1;
                if self.current_usable() {
                    let g = self.current;
                    self.flag(Rule::S5b, format!("{id} waits while {g} is usable"));
                }
                if self.waiting > self.limits.max_waiters {
                    let n = self.waiting;
                    self.flag(Rule::S7, format!("{n} requests waiting"));
                }
            }
            Event::Completed { id } => {
                if self.end(id, "completed") == Some(true) {
                    self.flag(
                        Rule::S4,
                        format!("{id} completed while waiting, never sent"),
                    );
                }
            }
            Event::Failed { id } => {
                self.end(id, "failed");
            }
            Event::Cancelled { id } => {
                self.end(id, "cancelled");
            }
            Event::RefreshStarted { attempt } => self.refresh_started(attempt),
            Event::RefreshEnded { attempt, .. } | Event::RefreshDropped { attempt } => {
                if self.outstanding == Some(attempt) {
                    self.outstanding = None;
                }
            }
            // The system stopped waiting, but the endpoint still works on the
            // call: it stays outstanding.
            Event::RefreshAbandoned { .. } => {}
            Event::NewGeneration {
                generation,
                expires_at,
                from,
            } => self.new_generation(generation, expires_at, from),
            Event::Invalidated { generation } => {
                if generation == self.current {
                    self.current_bad = true;
                }
            }
            Event::PhaseChanged { phase } => {
                if phase != Phase::Refreshing {
                    self.round_attempts = 0;
                    if self.waiting > 0 {
                        let (rule, state) = match phase {
                            Phase::Failed => (Rule::S6, "failed"),
                            _ => (Rule::S3, "idle"),
                        };
                        let n = self.waiting;
                        self.flag(rule, format!("{n} requests still waiting once {state}"));
                    }
                }
            }
        }
    }

    /// L1, judged at the end of a history in which nothing more can happen:
    /// every request that arrived has ended.
    pub fn finish(&mut self) {
        if self.live.is_empty() {
            return;
        }
        let n = self.live.len();
        let waiting = self.waiting;
        let some: Vec<String> = self
            .live
            .keys()
            .take(3)
            .map(|id| id.0.to_string())
            .collect();
        self.flag(
            Rule::L1,
            format!(
                "{n} requests never ended ({waiting} of them waiting), e.g. #{}",
                some.join(", #")
            ),
        );
    }

    /// The first violation seen, if any.
    pub fn first_violation(&self) -> Option<&Violation> {
        self.first.first()
    }

    /// The first few violations, in order (at most 16 are kept).
    pub fn violations(&self) -> &[Violation] {
        &self.first
    }

    /// How many violations of `rule` were seen.
    pub fn count(&self, rule: Rule) -> u64 {
        self.counts[rule as usize]
    }

    /// Whether request `id` arrived and has not ended.
    pub fn is_live(&self, id: RequestId) -> bool {
        self.live.contains_key(&id)
    }

    /// Requests live now.
    pub fn live_requests(&self) -> usize {
        self.live.len()
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// The generation the history has made current.
    pub fn current(&self) -> Generation {
        self.current
    }

    /// The limits this checker judges by.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn flag(&mut self, rule: Rule, detail: String) {
        self.counts[rule as usize] += 1;
        if self.first.len() < KEEP {
            self.first.push(Violation {
                rule,
                at: self.now,
                detail,
            });
        }
    }

    fn live_request(&mut self, id: RequestId, what: &str) -> Option<&mut Request> {
        if !self.live.contains_key(&id) {
            self.flag(
                Rule::S4,
                format!("{id} {what} but it is not live (ended or never arrived)"),
            );
        }
        self.live.get_mut(&id)
    }

    /// Ends a live request; returns whether it was waiting.
    fn end(&mut self, id: RequestId, what: &str) -> Option<bool> {
        let Some(r) = self.live.remove(&id) else {
            self.flag(
                Rule::S4,
                format!("{id} {what} but it is not live (ended or never arrived)"),
            );
            return None;
        };
        if r.waiting {
            self.waiting -= 1;
        }
        Some(r.waiting)
    }

    fn sent(&mut self, id: RequestId, generation: Generation) {
        let (current, bad, expires_at, now) = (
            self.current,
            self.current_bad,
            self.current_expires_at,
            self.now,
        );
        let max_sends = self.limits.max_sends;
        let Some(r) = self.live_request(id, "sent") else {
            return;
        };
        let was_waiting = std::mem::replace(&mut r.waiting, false);
        r.sends += 1;
        let sends = r.sends;
        let repeated = r.last_sent == Some(generation);
        r.last_sent = Some(generation);
        if was_waiting {
            self.waiting -= 1;
        }
        if sends > max_sends {
            self.flag(Rule::S4, format!("{id} sent {sends} times"));
        }
        if repeated {
            self.flag(Rule::S4, format!("{id} sent twice with {generation}"));
        }
        if generation != current || generation == Generation::NONE {
            self.flag(
                Rule::S5,
                format!("{id} sent with {generation} while current is {}", current.0),
            );
        } else if bad {
            self.flag(
                Rule::S5,
                format!("{id} sent with {generation}, already rejected"),
            );
        } else if expires_at.is_some_and(|e| now >= e) {
            self.flag(
                Rule::S5,
                format!("{id} sent with {generation}, already expired"),
            );
        }
    }

    /// Not rejected, and before its expiry minus the safety margin (S5b).
    fn current_usable(&self) -> bool {
        let margin = self.limits.safety_margin;
        self.current != Generation::NONE
            && !self.current_bad
            && self
                .current_expires_at
                .is_none_or(|e| self.now < e.saturating_sub(margin))
    }

    fn refresh_started(&mut self, attempt: RefreshId) {
        if let Some(other) = self.outstanding {
            self.flag(
                Rule::S1,
                format!("{attempt} started while {other} is outstanding"),
            );
        }
        let due = self.current == Generation::NONE
            || self.current_bad
            || self
                .current_expires_at
                .is_some_and(|e| self.now + self.limits.proactive_window >= e);
        if !due {
            let g = self.current;
            self.flag(
                Rule::S2,
                format!("{attempt} started while {g} is good and not due"),
            );
        }
        self.round_attempts += 1;
        if self.round_attempts > self.limits.max_refresh_attempts {
            let n = self.round_attempts;
            self.flag(Rule::S7, format!("{n} refresh attempts in one round"));
        }
        if self.attempts.insert(attempt, self.current).is_some() {
            self.flag(Rule::S1, format!("{attempt} started twice"));
        }
        self.outstanding = Some(attempt);
    }

    fn new_generation(
        &mut self,
        generation: Generation,
        expires_at: Option<Timestamp>,
        from: Option<RefreshId>,
    ) {
        let expected = self.current.next();
        if generation != expected {
            self.flag(
                Rule::S2,
                format!("new {generation} after {}", self.current.0),
            );
        }
        if let Some(attempt) = from {
            match self.attempts.get(&attempt) {
                Some(&base) if base == self.current => {}
                Some(&base) => {
                    let c = self.current;
                    self.flag(
                        Rule::S2,
                        format!("{attempt} refreshed {base} but made a new token after {c}"),
                    );
                }
                None => self.flag(Rule::S2, format!("token adopted from unknown {attempt}")),
            }
        }
        self.current = generation;
        self.current_expires_at = expires_at;
        self.current_bad = false;
        self.round_attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn rules(m: &Monitor) -> Vec<Rule> {
        m.violations().iter().map(|v| v.rule).collect()
    }

    fn refreshed(m: &mut Monitor, attempt: u64, generation: u64) {
        m.observe(
            t(0),
            Event::RefreshStarted {
                attempt: RefreshId(attempt),
            },
        );
        m.observe(
            t(0),
            Event::RefreshEnded {
                attempt: RefreshId(attempt),
                ok: true,
            },
        );
        m.observe(
            t(0),
            Event::NewGeneration {
                generation: Generation(generation),
                expires_at: None,
                from: Some(RefreshId(attempt)),
            },
        );
    }

    #[test]
    fn a_clean_history_passes() {
        let mut m = Monitor::new(Limits::of(&Config::default()));
        let id = RequestId(1);
        m.observe(t(0), Event::Arrived { id });
        m.observe(t(0), Event::Waiting { id });
        refreshed(&mut m, 1, 1);
        m.observe(
            t(1),
            Event::Sent {
                id,
                generation: Generation(1),
            },
        );
        m.observe(t(2), Event::Completed { id });
        m.observe(t(2), Event::PhaseChanged { phase: Phase::Idle });
        m.finish();
        assert_eq!(m.violations(), &[]);
    }

    #[test]
    fn refresh_for_a_stale_rejection_breaks_s2() {
        let mut m = Monitor::new(Limits::unbounded());
        refreshed(&mut m, 1, 1);
        let id = RequestId(1);
        m.observe(t(0), Event::Arrived { id });
        m.observe(
            t(0),
            Event::Rejected {
                id,
                generation: Generation(0),
            },
        );
        m.observe(
            t(0),
            Event::RefreshStarted {
                attempt: RefreshId(2),
            },
        );
        assert_eq!(rules(&m), [Rule::S2]);
    }

    #[test]
    fn a_second_token_from_one_base_breaks_s2() {
        let mut m = Monitor::new(Limits::unbounded());
        refreshed(&mut m, 1, 1);
        m.observe(
            t(0),
            Event::NewGeneration {
                generation: Generation(2),
                expires_at: None,
                from: Some(RefreshId(1)),
            },
        );
        assert_eq!(rules(&m), [Rule::S2]);
    }

    #[test]
    fn sends_with_bad_tokens_break_s5() {
        let mut m = Monitor::new(Limits::unbounded());
        let (a, b) = (RequestId(1), RequestId(2));
        m.observe(t(0), Event::Arrived { id: a });
        m.observe(
            t(0),
            Event::Sent {
                id: a,
                generation: Generation(0),
            },
        );
        m.observe(
            t(0),
            Event::NewGeneration {
                generation: Generation(1),
                expires_at: Some(t(10)),
                from: None,
            },
        );
        m.observe(t(0), Event::Arrived { id: b });
        m.observe(
            t(10),
            Event::Sent {
                id: b,
                generation: Generation(1),
            },
        );
        assert_eq!(rules(&m), [Rule::S5, Rule::S5]);
    }

    #[test]
    fn waiters_left_behind_break_s3_s6_and_l1() {
        let mut m = Monitor::new(Limits::unbounded());
        let id = RequestId(7);
        m.observe(t(0), Event::Arrived { id });
        m.observe(t(0), Event::Waiting { id });
        m.observe(
            t(0),
            Event::PhaseChanged {
                phase: Phase::Failed,
            },
        );
        m.observe(t(0), Event::PhaseChanged { phase: Phase::Idle });
        m.finish();
        assert_eq!(rules(&m), [Rule::S6, Rule::S3, Rule::L1]);
    }

    #[test]
    fn a_call_counts_until_it_ends_or_is_dropped_not_when_abandoned() {
        let mut m = Monitor::new(Limits::unbounded());
        let started = |m: &mut Monitor, a| {
            m.observe(
                t(0),
                Event::RefreshStarted {
                    attempt: RefreshId(a),
                },
            )
        };
        started(&mut m, 1);
        m.observe(
            t(1),
            Event::RefreshAbandoned {
                attempt: RefreshId(1),
            },
        );
        started(&mut m, 2);
        assert_eq!(
            rules(&m),
            [Rule::S1],
            "a soft timeout does not end the call"
        );
        let mut m = Monitor::new(Limits::unbounded());
        started(&mut m, 1);
        m.observe(
            t(1),
            Event::RefreshAbandoned {
                attempt: RefreshId(1),
            },
        );
        m.observe(
            t(2),
            Event::RefreshDropped {
                attempt: RefreshId(1),
            },
        );
        started(&mut m, 2);
        m.observe(
            t(3),
            Event::RefreshEnded {
                attempt: RefreshId(2),
                ok: false,
            },
        );
        started(&mut m, 3);
        assert_eq!(rules(&m), [], "dropped and answered calls are over");
    }

    #[test]
    fn a_wait_while_the_token_is_usable_breaks_s5b() {
        let mut limits = Limits::unbounded();
        limits.safety_margin = Duration::from_millis(5);
        let mut m = Monitor::new(limits);
        let wait = |m: &mut Monitor, at, id| {
            let id = RequestId(id);
            m.observe(t(at), Event::Arrived { id });
            m.observe(t(at), Event::Waiting { id });
        };
        wait(&mut m, 0, 1);
        assert_eq!(rules(&m), [], "no token yet");
        m.observe(
            t(0),
            Event::NewGeneration {
                generation: Generation(1),
                expires_at: Some(t(100)),
                from: None,
            },
        );
        wait(&mut m, 94, 2);
        assert_eq!(rules(&m), [Rule::S5b], "usable until 95");
        wait(&mut m, 95, 3);
        assert_eq!(m.count(Rule::S5b), 1, "within the margin it may wait");
        m.observe(
            t(96),
            Event::NewGeneration {
                generation: Generation(2),
                expires_at: None,
                from: None,
            },
        );
        m.observe(
            t(96),
            Event::Invalidated {
                generation: Generation(2),
            },
        );
        wait(&mut m, 96, 4);
        assert_eq!(m.count(Rule::S5b), 1, "a bad token may be waited out");
    }

    #[test]
    fn double_outcomes_and_budgets_break_s4_and_s7() {
        let mut limits = Limits::unbounded();
        limits.max_sends = 1;
        limits.max_waiters = 1;
        let mut m = Monitor::new(limits);
        let (a, b) = (RequestId(1), RequestId(2));
        for id in [a, b] {
            m.observe(t(0), Event::Arrived { id });
            m.observe(t(0), Event::Waiting { id });
        }
        refreshed(&mut m, 1, 1);
        m.observe(
            t(0),
            Event::Sent {
                id: a,
                generation: Generation(1),
            },
        );
        m.observe(
            t(0),
            Event::Sent {
                id: a,
                generation: Generation(1),
            },
        );
        m.observe(t(0), Event::Failed { id: a });
        m.observe(t(0), Event::Failed { id: a });
        assert_eq!(rules(&m), [Rule::S7, Rule::S4, Rule::S4, Rule::S4]);
        assert_eq!(m.count(Rule::S4), 3);
    }
}
