//! The refresh coordinator: a pure state machine, `Idle` / `Refreshing` /
//! `Failed`.

mod mutant;
mod state;
mod stats;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use mutant::Mutant;
use state::{Current, Round, State, Step};
pub use stats::Stats;
use stats::Uncompared;

use crate::jitter::Jitter;
use crate::{
    Config, ConfigError, Error, Fresh, Generation, Lease, RefreshError, RefreshFailure, RefreshId,
    RequestId, Timestamp,
};

/// What a request does next, answered at once to the request that asked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[must_use = "a request must act on its next step, or it is lost"]
pub enum Next<T, E> {
    /// Send the request now with this lease.
    Send(Lease<T>),
    /// Wait: exactly one [`Action::Resume`] or [`Action::Fail`] for this
    /// request will follow, unless the caller cancels it first.
    Wait,
    /// The request is over with this error.
    Fail(Error<E>),
}

/// Work for the driver, drained with [`Core::poll_action`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[must_use = "an action left undone hangs a request or a refresh"]
pub enum Action<T, E> {
    /// Run the refresher, then report its result with
    /// [`Core::handle_refreshed`] under this attempt id.
    StartRefresh {
        /// Names the attempt in `handle_refreshed`.
        attempt: RefreshId,
    },
    /// A waiting request may be sent now with this lease.
    Resume {
        /// The waiting request.
        id: RequestId,
        /// What to send it with.
        lease: Lease<T>,
    },
    /// A waiting request is over with this error.
    Fail {
        /// The waiting request.
        id: RequestId,
        /// Why.
        error: Error<E>,
    },
}

/// Which of its three states the core is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// No refresh under way; no request waits.
    Idle,
    /// A refresh attempt is in flight or backing off; requests wait for it.
    Refreshing,
    /// Refreshing gave up; new requests fail fast (until the cool-down ends,
    /// or until a new login after a permanent failure). No request waits.
    Failed,
}

/// A token that may be handed out without asking the core, until
/// `valid_until`. Front-ends publish one after every transition for their
/// lock-free fast path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Snapshot<T> {
    /// The token, as a first send.
    pub lease: Lease<T>,
    /// From this time on the fast path must ask the core instead: the token
    /// expires, or is due for a refresh ahead of its expiry.
    pub valid_until: Timestamp,
}

/// The refresh coordinator: decides, for every request, whether to send it,
/// make it wait for a refresh, or fail it, and when to refresh.
///
/// It never reads a clock, spawns, sleeps, locks or does I/O: time comes in
/// with every input and work goes out as [`Action`]s. Same inputs, same
/// outputs.
///
/// # Driving it
///
/// 1. For each request pick a fresh [`RequestId`] and call
///    [`handle_acquire`](Core::handle_acquire). On [`Next::Send`] send the
///    request with the lease's token; on [`Next::Wait`] wait for an action
///    naming the id; on [`Next::Fail`] the request is over.
/// 2. If the server rejects the token, call
///    [`handle_rejection`](Core::handle_rejection) with the lease the request
///    was sent with and act on its answer the same way. Any other response
///    needs no report: the core keeps no record of requests in flight, only
///    of waiters.
/// 3. A waiter that gives up is removed with [`handle_cancel`](Core::handle_cancel).
/// 4. After every input drain [`poll_action`](Core::poll_action): run
///    [`Action::StartRefresh`] (report with
///    [`handle_refreshed`](Core::handle_refreshed)), deliver
///    [`Action::Resume`] and [`Action::Fail`] to their waiters.
/// 5. Call [`handle_timeout`](Core::handle_timeout) once the time given by
///    [`poll_timeout`](Core::poll_timeout) is reached. Spurious or early
///    calls simply do nothing.
/// 6. A login elsewhere is reported with [`handle_set_token`](Core::handle_set_token);
///    [`handle_invalidate`](Core::handle_invalidate) forces a refresh.
///
/// # Time
///
/// Time must not go backwards. If it does, the core treats the earlier time
/// as the latest it has seen: timers never fire early and a token known to be
/// expired never becomes valid again.
///
/// # Examples
///
/// ```
/// use tokenflight::{Action, Config, Core, Fresh, Next, RequestId, Timestamp};
///
/// let mut core: Core<String, std::io::Error> = Core::new(Config::default()).unwrap();
/// let t0 = Timestamp::ZERO;
///
/// // No token yet: the first request waits and a refresh starts.
/// assert!(matches!(core.handle_acquire(t0, RequestId(1)), Next::Wait));
/// let Some(Action::StartRefresh { attempt }) = core.poll_action() else { panic!() };
///
/// // The refresher answers; the waiter is resumed with the new token.
/// core.handle_refreshed(t0, attempt, Ok(Fresh::new("abc".to_string())));
/// let Some(Action::Resume { id, lease }) = core.poll_action() else { panic!() };
/// assert_eq!((id, lease.token().as_str()), (RequestId(1), "abc"));
///
/// // The server rejects it; the retry waits for the one refresh.
/// assert!(matches!(core.handle_rejection(t0, id, &lease), Next::Wait));
/// assert!(matches!(core.poll_action(), Some(Action::StartRefresh { .. })));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Core<T, E> {
    config: Config,
    /// The latest time seen; an earlier input time is taken as this one.
    now: Timestamp,
    /// `None` exactly while `generation` is [`Generation::NONE`].
    token: Option<Current<T>>,
    generation: Generation,
    state: State<E>,
    /// The last attempt id issued (0: none yet).
    last_attempt: RefreshId,
    /// Timed-out attempts for the current generation whose late answer may
    /// still be adopted. Cleared when the generation changes, which is what
    /// makes a second new generation from one base impossible (S2); capped
    /// at `max_refresh_attempts` entries (S7).
    abandoned: BTreeSet<RefreshId>,
    actions: VecDeque<Action<T, E>>,
    jitter: Jitter,
    mutant: Option<Mutant>,
    stats: Uncompared,
}

impl<T, E> Core<T, E> {
    /// A core with no token yet: the first request starts a refresh.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] of a configuration that cannot work.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Core {
            jitter: Jitter::new(config.seed),
            config,
            now: Timestamp::ZERO,
            token: None,
            generation: Generation::NONE,
            state: State::Idle,
            last_attempt: RefreshId(0),
            abandoned: BTreeSet::new(),
            actions: VecDeque::new(),
            mutant: None,
            stats: Uncompared::default(),
        })
    }

    /// A core with a planted bug, for showing that the checkers catch it.
    #[cfg(feature = "mutants")]
    #[doc(hidden)]
    pub fn with_mutant(config: Config, mutant: Mutant) -> Result<Self, ConfigError> {
        let mut core = Core::new(config)?;
        core.mutant = Some(mutant);
        Ok(core)
    }

    fn is(&self, mutant: Mutant) -> bool {
        cfg!(feature = "mutants") && self.mutant == Some(mutant)
    }

    /// A request asks for a token.
    ///
    /// `id` must not belong to a request that is waiting now; if it does, the
    /// new request fails with [`Error::DuplicateRequest`] and the waiting one
    /// is untouched.
    pub fn handle_acquire(&mut self, now: Timestamp, id: RequestId) -> Next<T, E> {
        let now = self.advance(now);
        self.route(now, id, 0)
    }

    /// The server rejected the token that the request `id` was sent with.
    ///
    /// A rejection of an older generation than the current one is answered at
    /// once with the current token and never starts a refresh. A rejection of
    /// the current generation marks it bad for good and waits for the one
    /// refresh. After `max_auth_retries` retries the request fails with
    /// [`Error::AuthRejected`].
    pub fn handle_rejection(
        &mut self,
        now: Timestamp,
        id: RequestId,
        lease: &Lease<T>,
    ) -> Next<T, E> {
        let now = self.advance(now);
        if lease.generation() > self.generation {
            return Next::Fail(Error::UnknownGeneration);
        }
        // What the rejection teaches about the token holds whatever becomes
        // of this request: even a request out of retries marks the current
        // token bad, or the next request would be sent with it (S5).
        let stale = lease.generation() < self.generation;
        if stale {
            self.stats.0.stale_rejections_skipped += 1;
        } else {
            self.stats.0.rejections += 1;
        }
        if !stale || self.is(Mutant::RefreshOnStaleRejection) {
            if let Some(current) = &mut self.token {
                current.rejected = true;
            }
        }
        if lease.send() >= self.config.max_sends() && !self.is(Mutant::IgnoreRetryBudget) {
            self.stats.0.auth_rejected += 1;
            return Next::Fail(Error::AuthRejected {
                sends: lease.send(),
            });
        }
        let refreshing = matches!(self.state, State::Refreshing(_));
        if !stale && refreshing && self.is(Mutant::RefreshBesideInFlight) {
            self.start_attempt(now);
        }
        self.route(now, id, lease.send())
    }

    /// The waiting request `id` gave up. Returns whether it was waiting;
    /// cancelling anything else (a finished, unknown or in-flight request)
    /// does nothing.
    pub fn handle_cancel(&mut self, now: Timestamp, id: RequestId) -> bool {
        self.advance(now);
        let lose_next = self.is(Mutant::LoseWaiterOnCancel);
        let State::Refreshing(round) = &mut self.state else {
            return false;
        };
        let removed = round.waiters.remove(&id).is_some();
        if removed && lose_next {
            round.waiters.pop_first();
        }
        removed
    }

    /// The refresher answered attempt `attempt`.
    ///
    /// The answer of the attempt in flight is used: a token is adopted as the
    /// next generation and every waiter resumed; a transient error backs off
    /// and retries, up to `max_refresh_attempts`; a permanent error fails
    /// every waiter and keeps the core `Failed` until
    /// [`handle_set_token`](Core::handle_set_token). A token that has already
    /// expired counts as a transient failure.
    ///
    /// A late success of an attempt that timed out is adopted if no newer
    /// generation exists yet (with rotating refresh tokens it carries the
    /// only valid refresh token, so dropping it would force a new login), and
    /// if refreshing did not fail permanently since. Every other answer (an
    /// unknown attempt, a repeated answer, a late error, a late success for a
    /// generation already refreshed) is ignored.
    pub fn handle_refreshed(
        &mut self,
        now: Timestamp,
        attempt: RefreshId,
        result: Result<Fresh<T>, RefreshError<E>>,
    ) {
        let now = self.advance(now);
        if self.in_flight() == Some(attempt) {
            match result {
                Ok(fresh) if expired(&fresh, now) => {
                    self.attempt_failed(now, RefreshFailure::ExpiredOnArrival)
                }
                Ok(fresh) => self.adopt(now, fresh),
                Err(RefreshError::Transient(e)) => {
                    self.attempt_failed(now, RefreshFailure::Refresher(Arc::new(e)))
                }
                Err(RefreshError::Permanent(e)) => {
                    self.stats.0.permanent_failures += 1;
                    self.give_up(Error::LoginRequired(Arc::new(e)), None)
                }
            }
            return;
        }
        let late = if self.is(Mutant::AdoptEveryLateResult) {
            attempt <= self.last_attempt
        } else {
            self.abandoned.remove(&attempt)
        };
        let revoked = matches!(self.state, State::Failed { retry_at: None, .. });
        if let (true, false, Ok(fresh)) = (late, revoked, result) {
            if !expired(&fresh, now) {
                self.stats.0.late_results_adopted += 1;
                self.adopt(now, fresh);
            }
        }
    }

    /// Timers: a refresh attempt that has not answered by its deadline counts
    /// as failed; a back-off that has ended starts the next attempt. Calls
    /// before [`poll_timeout`](Core::poll_timeout)'s time do nothing.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.advance(now);
        let State::Refreshing(round) = &self.state else {
            return;
        };
        match round.step {
            Step::InFlight { attempt, deadline } if now >= deadline => {
                self.stats.0.attempts_timed_out += 1;
                self.abandoned.insert(attempt);
                if self.abandoned.len() > self.config.max_refresh_attempts as usize {
                    self.abandoned.pop_first();
                }
                self.attempt_failed(now, RefreshFailure::TimedOut);
            }
            Step::BackingOff { retry_at } if now >= retry_at => self.start_attempt(now),
            _ => {}
        }
    }

    /// A token obtained elsewhere (a new login): it becomes the next
    /// generation at once, ends a `Failed` state, supersedes any refresh
    /// under way (its answer will be ignored) and resumes every waiter. An
    /// already expired token is installed but known bad, so the waiters wait
    /// for a refresh instead.
    pub fn handle_set_token(&mut self, now: Timestamp, fresh: Fresh<T>) {
        let now = self.advance(now);
        self.install(now, fresh);
        self.settle(now);
    }

    /// Marks `generation` bad and, if it is the current one and no refresh is
    /// under way, starts one. An older or unknown generation is ignored.
    pub fn handle_invalidate(&mut self, now: Timestamp, generation: Generation) {
        let now = self.advance(now);
        if generation != self.generation {
            return;
        }
        let Some(current) = &mut self.token else {
            return;
        };
        current.rejected = true;
        if matches!(self.state, State::Idle) {
            self.start_round(now, BTreeMap::new());
        }
    }

    /// The next piece of work for the driver, oldest first.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action<T, E>> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Core::handle_timeout) must be called next, if
    /// at all.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match &self.state {
            State::Refreshing(round) => match round.step {
                Step::InFlight { deadline, .. } => Some(deadline),
                Step::BackingOff { .. } if self.is(Mutant::ForgetBackoffTimer) => None,
                Step::BackingOff { retry_at } => Some(retry_at),
            },
            State::Idle | State::Failed { .. } => None,
        }
    }

    /// Which state the core is in.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Idle => Phase::Idle,
            State::Refreshing(_) => Phase::Refreshing,
            State::Failed { .. } => Phase::Failed,
        }
    }

    /// The current token generation ([`Generation::NONE`] before the first).
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The refresh attempt in flight, if any.
    pub fn in_flight(&self) -> Option<RefreshId> {
        match &self.state {
            State::Refreshing(Round {
                step: Step::InFlight { attempt, .. },
                ..
            }) => Some(*attempt),
            _ => None,
        }
    }

    /// Whether a late answer of `attempt` may still be adopted: it timed out
    /// for the current generation (and was not evicted from the capped set
    /// of such attempts), and refreshing has not failed permanently since.
    ///
    /// A front-end keeps a timed-out attempt's refresh alive while this
    /// holds, and drops it once it no longer does: with rotating refresh
    /// tokens a late answer may carry the only valid refresh token.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{Action, Config, Core, RequestId, Timestamp};
    ///
    /// let mut core: Core<&str, ()> = Core::new(Config::default()).unwrap();
    /// let _ = core.handle_acquire(Timestamp::ZERO, RequestId(1));
    /// let Some(Action::StartRefresh { attempt }) = core.poll_action() else { panic!() };
    /// assert!(!core.awaits_late_answer(attempt), "in flight, not late");
    /// core.handle_timeout(core.poll_timeout().unwrap());
    /// assert!(core.awaits_late_answer(attempt));
    /// ```
    pub fn awaits_late_answer(&self, attempt: RefreshId) -> bool {
        let revoked = matches!(self.state, State::Failed { retry_at: None, .. });
        !revoked && self.abandoned.contains(&attempt)
    }

    /// How many requests wait for a refresh.
    pub fn waiters(&self) -> usize {
        match &self.state {
            State::Refreshing(round) => round.waiters.len(),
            _ => 0,
        }
    }

    /// What the core has done so far, for metrics.
    pub fn stats(&self) -> &Stats {
        &self.stats.0
    }

    /// The configuration the core runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The latest time the core has seen.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// What a fast path may hand out without asking the core: present only
    /// while the core is `Idle` with a token that is neither known bad nor
    /// due for a refresh at the latest time seen.
    pub fn snapshot(&self) -> Option<Snapshot<T>> {
        if !matches!(self.state, State::Idle) {
            return None;
        }
        let current = self.token.as_ref().filter(|c| c.usable(self.now))?;
        Some(Snapshot {
            lease: Lease::new(Arc::clone(&current.token), self.generation, 1),
            valid_until: current.valid_until(),
        })
    }

    fn advance(&mut self, now: Timestamp) -> Timestamp {
        self.now = self.now.max(now);
        self.now
    }

    /// Decides the next step of a request that has been sent `sends` times.
    fn route(&mut self, now: Timestamp, id: RequestId, sends: u32) -> Next<T, E> {
        let limit = if self.is(Mutant::IgnoreMaxWaiters) {
            usize::MAX
        } else {
            self.config.max_waiters
        };
        if let State::Refreshing(round) = &mut self.state {
            let next = park(round, id, sends, limit);
            let stats = &mut self.stats.0;
            match next {
                Next::Wait => stats.joins += 1,
                Next::Fail(Error::Overloaded) => stats.overloaded += 1,
                _ => {}
            }
            return next;
        }
        if let State::Failed { error, retry_at } = &self.state {
            if retry_at.is_none_or(|at| now < at) {
                self.stats.0.fast_failures += 1;
                return Next::Fail(error.clone());
            }
        } else if let Some(lease) = self.usable_lease(now, sends.saturating_add(1)) {
            return Next::Send(lease);
        }
        self.start_round(now, BTreeMap::from([(id, sends)]));
        Next::Wait
    }

    fn usable_lease(&self, now: Timestamp, send: u32) -> Option<Lease<T>> {
        let current = self.token.as_ref()?;
        let usable = current.usable(now)
            || (self.is(Mutant::HandOutRejectedToken) && current.unexpired(now));
        usable.then(|| Lease::new(Arc::clone(&current.token), self.generation, send))
    }

    fn start_round(&mut self, now: Timestamp, waiters: BTreeMap<RequestId, u32>) {
        self.state = State::Refreshing(Round {
            waiters,
            failures: 0,
            step: Step::BackingOff { retry_at: now },
        });
        self.start_attempt(now);
    }

    fn start_attempt(&mut self, now: Timestamp) {
        self.last_attempt = self.last_attempt.next();
        self.stats.0.refreshes_started += 1;
        let attempt = self.last_attempt;
        if let State::Refreshing(round) = &mut self.state {
            round.step = Step::InFlight {
                attempt,
                deadline: now + self.config.refresh_timeout,
            };
        }
        self.actions.push_back(Action::StartRefresh { attempt });
    }

    fn attempt_failed(&mut self, now: Timestamp, failure: RefreshFailure<E>) {
        let State::Refreshing(round) = &mut self.state else {
            return;
        };
        round.failures += 1;
        self.stats.0.attempts_failed += 1;
        if round.failures < self.config.max_refresh_attempts {
            let backoff = backoff(&self.config, round.failures);
            round.step = Step::BackingOff {
                retry_at: now + self.jitter.equal(backoff),
            };
            return;
        }
        // A transient failure does not discard a token that is still good:
        // the waiters get it, and it is used until it expires or is rejected.
        if let Some(current) = self.token.as_mut().filter(|c| c.fresh_at(now)) {
            current.refresh_at = None;
            self.settle(now);
            return;
        }
        let retry_at = now + self.jitter.equal(self.config.cooldown);
        self.stats.0.rounds_given_up += 1;
        self.give_up(Error::RefreshUnavailable(failure), Some(retry_at));
    }

    /// Enters `Failed`, failing every waiter in the same step (S6).
    fn give_up(&mut self, error: Error<E>, retry_at: Option<Timestamp>) {
        let previous = std::mem::replace(
            &mut self.state,
            State::Failed {
                error: error.clone(),
                retry_at,
            },
        );
        if let (State::Refreshing(round), false) = (previous, self.is(Mutant::KeepWaitersOnFailure))
        {
            for id in round.waiters.into_keys() {
                self.actions.push_back(Action::Fail {
                    id,
                    error: error.clone(),
                });
            }
        }
    }

    fn adopt(&mut self, now: Timestamp, fresh: Fresh<T>) {
        self.stats.0.tokens_adopted += 1;
        self.install(now, fresh);
        self.settle(now);
    }

    /// Makes `fresh` the next generation.
    fn install(&mut self, now: Timestamp, fresh: Fresh<T>) {
        let (token, expires_at) = fresh.into_parts();
        self.generation = self.generation.next();
        self.abandoned.clear();
        let refresh_at = expires_at.map(|e| {
            // Refresh `skew` (plus jitter) ahead of expiry, but never in the
            // first half of the token's life: a refresher that keeps handing
            // out nearly expired tokens then costs at most two refreshes per
            // token lifetime, not a storm.
            // Saturating: a skew near `Duration::MAX` means "as early as
            // allowed", not a panic (S7).
            let jitter = self.jitter.up_to(self.config.skew_jitter);
            let skew = self.config.expiry_skew.saturating_add(jitter);
            let life = e.saturating_since(now);
            e.saturating_sub(skew).max(now + (life - life / 2))
        });
        self.token = Some(Current {
            token: Arc::new(token),
            expires_at,
            refresh_at,
            rejected: false,
        });
    }

    /// After the token changed: resume every waiter if it is usable and go
    /// `Idle`; otherwise keep them waiting for a new round.
    fn settle(&mut self, now: Timestamp) {
        let waiters = match std::mem::replace(&mut self.state, State::Idle) {
            State::Refreshing(round) => round.waiters,
            State::Idle | State::Failed { .. } => BTreeMap::new(),
        };
        let usable = self.token.as_ref().is_some_and(|c| c.fresh_at(now));
        if !usable {
            if !waiters.is_empty() {
                self.start_round(now, waiters);
            }
            return;
        }
        let current = self.token.as_ref().map(|c| Arc::clone(&c.token));
        let Some(token) = current else { return };
        for (id, sends) in waiters {
            let lease = Lease::new(Arc::clone(&token), self.generation, sends.saturating_add(1));
            self.actions.push_back(Action::Resume { id, lease });
        }
    }
}

/// Parks a request in the round, within `limit` waiters.
fn park<T, E>(round: &mut Round, id: RequestId, sends: u32, limit: usize) -> Next<T, E> {
    if round.waiters.contains_key(&id) {
        return Next::Fail(Error::DuplicateRequest);
    }
    if round.waiters.len() >= limit {
        return Next::Fail(Error::Overloaded);
    }
    round.waiters.insert(id, sends);
    Next::Wait
}

fn expired<T>(fresh: &Fresh<T>, now: Timestamp) -> bool {
    fresh.expires_at().is_some_and(|e| e <= now)
}

impl<T, E> fmt::Debug for Core<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("phase", &self.phase())
            .field("generation", &self.generation.0)
            .field("now", &self.now)
            .field("waiters", &self.waiters())
            .field("in_flight", &self.in_flight())
            .field("pending_actions", &self.actions.len())
            .finish_non_exhaustive()
    }
}

/// The back-off after `failures` failed attempts, before jitter: doubling
/// from `backoff_initial`, capped at `backoff_max`.
fn backoff(config: &Config, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(31);
    config
        .backoff_initial
        .saturating_mul(1 << exp)
        .min(config.backoff_max)
}

#[cfg(test)]
mod tests;
