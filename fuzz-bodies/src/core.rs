//! The core under arbitrary histories: a configuration and a sequence of
//! inputs decoded from the fuzzer's bytes (times that jump, stand still and
//! go backwards; request ids fresh, reused and arbitrary; rejections with
//! the request's own lease, another request's and one forged by a second
//! core; refresh answers for the attempt in flight, for old attempts and
//! for ids never issued), judged by the shared [`Monitor`](tokenflight::check::Monitor)
//! after every step, then healed and judged on L1.
//!
//! What it leaves out is what the driving contract forbids: a request that
//! arrives again while it is live (the monitor could not tell it from a
//! duplicate outcome), and a rejection with a lease older or sent fewer
//! times than the one the request was sent with (the core trusts the lease
//! it issued; a lease of a generation it never issued is refused, and that
//! the target does forge).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use tokenflight::check::Recorder;
use tokenflight::core::{Action, Core, Lease, Next, RefreshId, RequestId};
use tokenflight::{Config, ConfigError, Error, Fresh, Generation, RefreshError, Timestamp};

/// The core the target drives: tokens are numbers, refresh errors too.
pub type FuzzCore = Core<u64, u32>;

/// Steps of one history at most, so that one input runs in bounded time.
const MAX_STEPS: usize = 256;
/// Leases kept for rejecting other requests with, at most.
const MAX_POOL: usize = 32;

/// The target: panics on a panic of the core or a broken guarantee.
pub fn run(data: &[u8]) {
    if let Err(e) = check(data, Core::new) {
        panic!("{e}");
    }
}

/// Decodes a history from `data`, runs it on the core `make` builds and
/// judges it; the first thing that went wrong, if anything. A configuration
/// that `make` refuses ends the run (that is [`Config::validate`]'s typed
/// error doing its job).
///
/// # Errors
///
/// The first broken guarantee, or a disagreement between the core and the
/// driver's books, with the step it happened at.
pub fn check(
    data: &[u8],
    make: impl FnOnce(Config) -> Result<FuzzCore, ConfigError>,
) -> Result<(), String> {
    let mut u = Unstructured::new(data);
    let Ok(config) = config(&mut u) else {
        return Ok(());
    };
    let Ok(core) = make(config) else {
        return Ok(());
    };
    let mut h = Harness::new(core);
    for step in 0..MAX_STEPS {
        let Ok(op) = Op::arbitrary(&mut u) else { break };
        h.apply(&op)
            .and_then(|()| h.verdict())
            .map_err(|e| format!("step {step} {op:?}: {e}"))?;
        if u.is_empty() {
            break;
        }
    }
    h.heal()?;
    h.verdict()
}

fn duration(u: &mut Unstructured<'_>) -> arbitrary::Result<Duration> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => Duration::ZERO,
        1 => Duration::MAX,
        2 => Duration::from_nanos(u.arbitrary()?),
        _ => Duration::from_millis(u.int_in_range(0..=20_000)?),
    })
}

fn config(u: &mut Unstructured<'_>) -> arbitrary::Result<Config> {
    let mut c = Config::default();
    c.max_waiters = u.int_in_range(1..=6)?;
    c.max_auth_retries = u.int_in_range(0..=4)?;
    c.max_refresh_attempts = u.int_in_range(1..=5)?;
    c.refresh_timeout = duration(u)?;
    // Now and then shorter than the soft timeout: a configuration the core
    // must refuse with a typed error.
    let abandon = duration(u)?;
    c.refresh_abandon_after = if u.ratio(1, 16)? {
        abandon
    } else {
        abandon.max(c.refresh_timeout)
    };
    c.safety_margin = duration(u)?;
    c.backoff_initial = duration(u)?;
    c.backoff_max = duration(u)?.max(c.backoff_initial);
    c.cooldown = duration(u)?;
    c.expiry_skew = duration(u)?;
    c.skew_jitter = duration(u)?;
    c.seed = u.arbitrary()?;
    Ok(c)
}

/// Which request id an arriving request gets.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Id {
    /// One never used.
    Fresh,
    /// The `n`-th of the ids that have ended (reuse after the end is allowed).
    Ended(u8),
    /// Any number; a live one is skipped.
    Raw(u64),
}

/// When a token expires.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Expiry {
    Never,
    /// This many milliseconds from now.
    In(u16),
    /// This many nanoseconds from now.
    InNanos(u64),
    /// At this time on the clock.
    At(u64),
    /// This many nanoseconds ago.
    Ago(u32),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Answer {
    Ok(Expiry),
    Transient(u32),
    Permanent(u32),
}

/// What the server says to a request in flight.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Reply {
    /// Not an auth rejection: the request is over.
    Complete,
    /// Rejects the token the request was sent with.
    Reject,
    /// Rejects, the request presenting another request's lease, one no
    /// older and sent at least as often as its own (with an older one the
    /// core would rightly send it again with the generation it already had,
    /// and with fewer sends it would rightly grant more retries).
    RejectWith(u8),
    /// Rejects, the request presenting a lease of a generation this core
    /// never made (minted by a second core): it must fail the request.
    Forged(u8),
}

/// Which generation an invalidation names.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Gen {
    Current,
    Older(u8),
    Raw(u64),
}

/// One input of a history.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Op {
    Arrive(Id),
    Reply {
        pick: u8,
        reply: Reply,
    },
    /// The caller gives up on the `pick`-th live request.
    Cancel(u8),
    /// Cancels an arbitrary id (most likely not live).
    CancelRaw(u64),
    /// The refresher answers the `pick`-th unanswered attempt.
    Refresh {
        pick: u8,
        answer: Answer,
    },
    /// An answer for any attempt id (repeated, late or never issued).
    Stray {
        attempt: u64,
        answer: Answer,
    },
    Advance(u16),
    AdvanceNanos(u64),
    /// The next inputs are stamped this much before the latest time.
    Backwards(u64),
    /// Time jumps to this point (earlier or later).
    Jump(u64),
    /// The timer fires when the core asked.
    Timer,
    /// The timer fires now, asked for or not.
    SpuriousTimer,
    Login(Expiry),
    Invalidate(Gen),
}

#[derive(Debug, Clone)]
enum Req {
    InFlight(Lease<u64>),
    Waiting,
}

struct Harness {
    rec: Recorder<u64, u32>,
    /// The time inputs are stamped with; may be earlier than the core's.
    now: Timestamp,
    next_id: u64,
    live: BTreeMap<u64, Req>,
    ended: Vec<u64>,
    outstanding: BTreeSet<RefreshId>,
    pool: Vec<Lease<u64>>,
    minted: u64,
}

impl Harness {
    fn new(core: FuzzCore) -> Self {
        Harness {
            rec: Recorder::new(core),
            now: Timestamp::ZERO,
            next_id: 1,
            live: BTreeMap::new(),
            ended: Vec::new(),
            outstanding: BTreeSet::new(),
            pool: Vec::new(),
            minted: 0,
        }
    }

    fn verdict(&self) -> Result<(), String> {
        match self.rec.monitor().first_violation() {
            Some(v) => Err(v.to_string()),
            None => Ok(()),
        }
    }

    fn at(&self, e: Expiry) -> Option<Timestamp> {
        match e {
            Expiry::Never => None,
            Expiry::In(ms) => Some(self.now + Duration::from_millis(ms.into())),
            Expiry::InNanos(ns) => Some(self.now + Duration::from_nanos(ns)),
            Expiry::At(ns) => Some(Timestamp::from_nanos(ns)),
            Expiry::Ago(ns) => Some(self.now.saturating_sub(Duration::from_nanos(ns.into()))),
        }
    }

    fn fresh(&mut self, e: Expiry) -> Fresh<u64> {
        self.minted += 1;
        let fresh = Fresh::new(self.minted);
        match self.at(e) {
            Some(at) => fresh.expiring_at(at),
            None => fresh,
        }
    }

    fn end(&mut self, id: u64) {
        self.live.remove(&id);
        if self.ended.len() < 64 {
            self.ended.push(id);
        }
    }

    fn keep(&mut self, lease: &Lease<u64>) {
        if self.pool.len() >= MAX_POOL {
            self.pool.remove(0);
        }
        self.pool.push(lease.clone());
    }

    fn on_next(&mut self, id: u64, next: Next<u64, u32>) {
        match next {
            Next::Send(lease) => {
                self.keep(&lease);
                self.live.insert(id, Req::InFlight(lease));
            }
            Next::Wait => {
                self.live.insert(id, Req::Waiting);
            }
            Next::Fail(_) => self.end(id),
        }
    }

    fn drain(&mut self) -> Result<(), String> {
        while let Some(action) = self.rec.poll_action() {
            match action {
                Action::StartRefresh { attempt } => {
                    if !self.outstanding.insert(attempt) {
                        return Err(format!("{attempt} started twice"));
                    }
                }
                // The driver drops the call: no answer will come from it.
                Action::AbandonRefresh { attempt } => {
                    if !self.outstanding.remove(&attempt) {
                        return Err(format!("{attempt} abandoned, but it was not outstanding"));
                    }
                }
                Action::Resume { id, lease } => match self.live.get(&id.0) {
                    Some(Req::Waiting) => {
                        self.keep(&lease);
                        self.live.insert(id.0, Req::InFlight(lease));
                    }
                    other => return Err(format!("resumed {id}, which was {other:?}")),
                },
                Action::Fail { id, .. } => match self.live.get(&id.0) {
                    Some(Req::Waiting) => self.end(id.0),
                    other => return Err(format!("failed {id}, which was {other:?}")),
                },
            }
        }
        Ok(())
    }

    fn refresh(&mut self, attempt: RefreshId, answer: Answer) {
        let result = match answer {
            Answer::Ok(e) => Ok(self.fresh(e)),
            Answer::Transient(e) => Err(RefreshError::Transient(e)),
            Answer::Permanent(e) => Err(RefreshError::Permanent(e)),
        };
        self.rec.refreshed(self.now, attempt, result);
    }

    fn pick<T: Copy>(items: &[T], n: u8) -> Option<T> {
        (!items.is_empty()).then(|| items[usize::from(n) % items.len()])
    }

    fn arrive(&mut self, id: Id) {
        let id = match id {
            Id::Fresh => None,
            Id::Ended(n) => Self::pick(&self.ended, n),
            Id::Raw(id) => Some(id),
        };
        let id = match id {
            Some(id) if !self.live.contains_key(&id) => id,
            _ => {
                while self.live.contains_key(&self.next_id) {
                    self.next_id = self.next_id.wrapping_add(1);
                }
                self.next_id
            }
        };
        self.next_id = self.next_id.max(id.saturating_add(1));
        let next = self.rec.acquire(self.now, RequestId(id));
        self.on_next(id, next);
    }

    /// A lease of a generation beyond this core's, from a second core that
    /// logged in more often.
    fn forge(&self, extra: u8) -> Lease<u64> {
        let mut other = FuzzCore::new(Config::default()).expect("the default config is valid");
        let beyond = self.rec.core().generation().0 + 1 + u64::from(extra % 4);
        for token in 0..beyond {
            other.handle_set_token(Timestamp::ZERO, Fresh::new(token));
        }
        match other.handle_acquire(Timestamp::ZERO, RequestId(0)) {
            Next::Send(lease) => lease,
            _ => unreachable!("a core with a token that never expires sends"),
        }
    }

    fn reply(&mut self, pick: u8, reply: Reply) -> Result<(), String> {
        let in_flight: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, r)| matches!(r, Req::InFlight(_)))
            .map(|(id, _)| *id)
            .collect();
        let Some(id) = Self::pick(&in_flight, pick) else {
            return Ok(());
        };
        let Some(Req::InFlight(own)) = self.live.get(&id).cloned() else {
            unreachable!("picked among the requests in flight")
        };
        let lease = match reply {
            Reply::Complete => {
                self.end(id);
                self.rec.complete(RequestId(id));
                return Ok(());
            }
            Reply::Reject => own,
            Reply::RejectWith(n) => {
                let busier: Vec<usize> = (0..self.pool.len())
                    .filter(|&i| {
                        let l = &self.pool[i];
                        l.send() >= own.send() && l.generation() >= own.generation()
                    })
                    .collect();
                match Self::pick(&busier, n) {
                    Some(i) => self.pool[i].clone(),
                    None => own,
                }
            }
            Reply::Forged(extra) => {
                let forged = self.forge(extra);
                let next = self.rec.reject(self.now, RequestId(id), &forged);
                if !matches!(next, Next::Fail(Error::UnknownGeneration)) {
                    return Err(format!("a forged {forged:?} was answered {next:?}"));
                }
                self.end(id);
                return Ok(());
            }
        };
        let next = self.rec.reject(self.now, RequestId(id), &lease);
        self.on_next(id, next);
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Arrive(id) => self.arrive(id),
            Op::Reply { pick, reply } => self.reply(pick, reply)?,
            Op::Cancel(pick) => {
                let ids: Vec<u64> = self.live.keys().copied().collect();
                if let Some(id) = Self::pick(&ids, pick) {
                    let was_waiting = matches!(self.live.get(&id), Some(Req::Waiting));
                    self.end(id);
                    let removed = self.rec.cancel(self.now, RequestId(id));
                    if removed != was_waiting {
                        return Err(format!(
                            "cancel of {id}: core said {removed}, books say waiting={was_waiting}"
                        ));
                    }
                }
            }
            Op::CancelRaw(id) => {
                let was_waiting = matches!(self.live.get(&id), Some(Req::Waiting));
                if self.live.contains_key(&id) {
                    self.end(id);
                }
                let removed = self.rec.cancel(self.now, RequestId(id));
                if removed != was_waiting {
                    return Err(format!(
                        "cancel of {id}: core said {removed}, books say waiting={was_waiting}"
                    ));
                }
            }
            Op::Refresh { pick, answer } => {
                let attempts: Vec<RefreshId> = self.outstanding.iter().copied().collect();
                if let Some(attempt) = Self::pick(&attempts, pick) {
                    self.outstanding.remove(&attempt);
                    self.refresh(attempt, answer);
                }
            }
            Op::Stray { attempt, answer } => {
                let attempt = RefreshId(attempt);
                if !self.outstanding.contains(&attempt) {
                    self.refresh(attempt, answer);
                }
            }
            Op::Advance(ms) => {
                self.now = self.rec.core().now().max(self.now) + Duration::from_millis(ms.into())
            }
            Op::AdvanceNanos(ns) => self.now = self.now + Duration::from_nanos(ns),
            Op::Backwards(ns) => {
                self.now = self
                    .rec
                    .core()
                    .now()
                    .saturating_sub(Duration::from_nanos(ns))
            }
            Op::Jump(ns) => self.now = Timestamp::from_nanos(ns),
            Op::Timer => {
                if let Some(at) = self.rec.poll_timeout() {
                    self.now = self.now.max(at);
                    self.rec.timeout(self.now);
                }
            }
            Op::SpuriousTimer => self.rec.timeout(self.now),
            Op::Login(e) => {
                let fresh = self.fresh(e);
                self.rec.set_token(self.now, fresh);
            }
            Op::Invalidate(g) => {
                let current = self.rec.core().generation();
                let g = match g {
                    Gen::Current => current,
                    Gen::Older(n) => Generation(current.0.saturating_sub(u64::from(n) + 1)),
                    Gen::Raw(g) => Generation(g),
                };
                self.rec.invalidate(self.now, g);
            }
        }
        self.drain()?;
        self.check_books()
    }

    /// The driver's books agree with what the core says of itself.
    fn check_books(&self) -> Result<(), String> {
        let waiting = self
            .live
            .values()
            .filter(|r| matches!(r, Req::Waiting))
            .count();
        self.rec.books_agree(waiting, &self.outstanding)
    }

    /// The refresher answers every attempt with a token that never expires,
    /// the server accepts every request and timers fire when the core asks:
    /// every request must end.
    fn heal(&mut self) -> Result<(), String> {
        self.now = self.rec.core().now().max(self.now);
        for _ in 0..4 * MAX_STEPS {
            if self.live.is_empty() {
                break;
            }
            if let Some(&attempt) = self.outstanding.iter().next_back() {
                self.outstanding.remove(&attempt);
                self.refresh(attempt, Answer::Ok(Expiry::Never));
            } else if let Some((&id, _)) = self
                .live
                .iter()
                .find(|(_, r)| matches!(r, Req::InFlight(_)))
            {
                self.end(id);
                self.rec.complete(RequestId(id));
            } else if let Some(at) = self.rec.poll_timeout() {
                self.now = self.now.max(at);
                self.rec.timeout(self.now);
            } else {
                break;
            }
            self.drain()?;
            self.check_books()?;
        }
        self.rec.finish();
        self.verdict().map_err(|e| format!("after healing: {e}"))
    }
}
