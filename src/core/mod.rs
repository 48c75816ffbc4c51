//! The refresh coordinator: a pure state machine, `Idle` / `Refreshing` /
//! `Failed`.

mod mutant;
mod state;
mod stats;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[cfg_attr(not(feature = "mutants"), allow(unreachable_pub))]
pub use mutant::Mutant;
use state::{Call, Current, Round, State, Step};
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
    /// Give up the refresher call `attempt` for good: drop its future now.
    /// It has not answered within `refresh_abandon_after`; once dropped the
    /// call is over and the next attempt may start. An answer that still
    /// comes for it is ignored.
    AbandonRefresh {
        /// The call to drop.
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
    /// A refresh round runs: an attempt is in flight, backing off, or
    /// queued behind an earlier call. Requests that find a usable token are
    /// sent with it (a refresh ahead of expiry); the others wait for it.
    Refreshing,
    /// Refreshing gave up. Requests that find a usable token are still sent
    /// with it; the others fail fast (until the cool-down ends, or until a
    /// new login after a permanent failure). No request waits.
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
    /// stops being usable (its expiry minus the safety margin), or is due for
    /// a refresh ahead of its expiry, or a failed refresh may be retried.
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
/// 4. After every input drain [`poll_action`](Core::poll_action) and carry
///    each action out at once: [`Action::StartRefresh`] calls the refresher
///    now (report with [`handle_refreshed`](Core::handle_refreshed), even
///    after its attempt timed out), [`Action::AbandonRefresh`] drops that
///    call's future, [`Action::Resume`] and [`Action::Fail`] go to their
///    waiters.
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
/// use tokenflight::core::{Action, Core, Next, RequestId};
/// use tokenflight::{Config, Fresh, Timestamp};
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
    /// The refresher call outstanding at the endpoint, from `StartRefresh`
    /// until its answer or `AbandonRefresh`; it outlives its attempt's soft
    /// timeout and even its round. S1 by construction: an `Option`, and
    /// `start_attempt` runs only while it is `None`.
    call: Option<Call>,
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
            call: None,
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

    /// Plants `mutant` in a core already built (the handles' builders).
    #[cfg(feature = "mutants")]
    pub(crate) fn plant(&mut self, mutant: Mutant) {
        self.mutant = Some(mutant);
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

    /// The refresher answered attempt `attempt`; the call is over.
    ///
    /// The answer of the attempt in flight is used: a token is adopted as the
    /// next generation and every waiter resumed; a transient error backs off
    /// and retries, up to `max_refresh_attempts`; a permanent error fails
    /// every waiter and keeps the core `Failed` until
    /// [`handle_set_token`](Core::handle_set_token). A token that has already
    /// expired, or would within the safety margin, counts as a transient
    /// failure.
    ///
    /// A late answer (the outstanding call answering after its soft timeout)
    /// ends the call, so a round queued behind it starts its next attempt at
    /// once. A late success is adopted if it was asked for the generation
    /// that is still current (with rotating refresh tokens it carries the
    /// only valid refresh token, so dropping it would force a new login), and
    /// if refreshing did not fail permanently since. Every other answer (an
    /// unknown attempt, a repeated answer, an abandoned call's answer) is
    /// ignored.
    pub fn handle_refreshed(
        &mut self,
        now: Timestamp,
        attempt: RefreshId,
        result: Result<Fresh<T>, RefreshError<E>>,
    ) {
        let now = self.advance(now);
        let call = self.call.filter(|c| c.attempt == attempt);
        let replayed = self.is(Mutant::AdoptEveryLateResult)
            && attempt != RefreshId(0)
            && attempt <= self.last_attempt;
        if call.is_none() && !replayed {
            return;
        }
        if call.is_some() {
            self.call = None;
        }
        if self.in_flight() == Some(attempt) {
            match result {
                Ok(fresh) if self.arrives_expired(&fresh, now) => {
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
        // Only an answer asked for the current generation may make the next
        // one: an older base was already refreshed or replaced by a login (S2).
        let for_current = call.is_some_and(|c| c.base == self.generation) || replayed;
        let revoked = matches!(self.state, State::Failed { retry_at: None, .. });
        match result {
            Ok(fresh) if for_current && !revoked && !self.arrives_expired(&fresh, now) => {
                self.stats.0.late_results_adopted += 1;
                self.adopt(now, fresh);
            }
            _ => {
                if let State::Refreshing(Round {
                    step: Step::Queued, ..
                }) = self.state
                {
                    self.start_attempt(now);
                }
            }
        }
    }

    /// Timers: a call that has not answered by its hard limit is abandoned
    /// ([`Action::AbandonRefresh`]); an attempt that has not answered by its
    /// soft deadline counts as failed, its call still outstanding; a back-off
    /// that has ended starts the next attempt, or queues it behind the
    /// outstanding call. Calls before [`poll_timeout`](Core::poll_timeout)'s
    /// time do nothing.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.advance(now);
        if let Some(call) = self.call.filter(|c| now >= c.abandon_at) {
            self.call = None;
            self.stats.0.calls_abandoned += 1;
            self.actions.push_back(Action::AbandonRefresh {
                attempt: call.attempt,
            });
        }
        let State::Refreshing(round) = &self.state else {
            return;
        };
        match round.step {
            Step::InFlight { deadline, .. } if now >= deadline => {
                self.stats.0.attempts_timed_out += 1;
                self.attempt_failed(now, RefreshFailure::TimedOut);
            }
            Step::BackingOff { retry_at } if now >= retry_at => self.next_attempt(now),
            Step::Queued if self.call.is_none() => self.start_attempt(now),
            _ => {}
        }
    }

    /// A token obtained elsewhere (a new login): it becomes the next
    /// generation at once, ends a `Failed` state, supersedes any refresh
    /// under way and resumes every waiter. A call still outstanding stays
    /// so until it answers (its answer, for an older generation, is then
    /// ignored) or is abandoned. An
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
        let round = match &self.state {
            State::Refreshing(round) => match round.step {
                Step::InFlight { deadline, .. } => Some(deadline),
                Step::BackingOff { .. } if self.is(Mutant::ForgetBackoffTimer) => None,
                Step::BackingOff { retry_at } => Some(retry_at),
                Step::Queued => None,
            },
            State::Idle | State::Failed { .. } => None,
        };
        let abandon = self.call.map(|c| c.abandon_at);
        match (round, abandon) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
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

    /// The refresh attempt whose answer the round awaits, until its soft
    /// timeout, if any.
    pub fn in_flight(&self) -> Option<RefreshId> {
        match &self.state {
            State::Refreshing(Round {
                step: Step::InFlight { attempt, .. },
                ..
            }) => Some(*attempt),
            _ => None,
        }
    }

    /// The refresher call outstanding at the endpoint, if any: from its
    /// [`Action::StartRefresh`] until its answer is reported or it is
    /// given up with [`Action::AbandonRefresh`]. It outlives its attempt's
    /// soft timeout; there is never more than one (S1).
    ///
    /// A front-end keeps this call's future alive, and no other.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::core::{Action, Core, RequestId};
    /// use tokenflight::{Config, Timestamp};
    ///
    /// let mut core: Core<&str, ()> = Core::new(Config::default()).unwrap();
    /// let _ = core.handle_acquire(Timestamp::ZERO, RequestId(1));
    /// let Some(Action::StartRefresh { attempt }) = core.poll_action() else { panic!() };
    /// core.handle_timeout(core.poll_timeout().unwrap());
    /// assert_eq!(core.in_flight(), None, "timed out");
    /// assert_eq!(core.outstanding_call(), Some(attempt), "still at the endpoint");
    /// ```
    pub fn outstanding_call(&self) -> Option<RefreshId> {
        self.call.map(|c| c.attempt)
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

    /// What a fast path may hand out without asking the core: present in
    /// any phase while the token is usable at the latest time seen (and not
    /// due for a refresh ahead of expiry, nor for a retry after a failed
    /// one: the next request must ask the core, which starts it).
    pub fn snapshot(&self) -> Option<Snapshot<T>> {
        let current = self.token.as_ref().filter(|c| c.usable(self.now))?;
        let usable_until = current.usable_until();
        let valid_until = match &self.state {
            State::Idle => current
                .refresh_at
                .map_or(usable_until, |r| r.min(usable_until)),
            State::Failed {
                retry_at: Some(at), ..
            } => usable_until.min(*at),
            State::Refreshing(_) | State::Failed { .. } => usable_until,
        };
        (self.now < valid_until).then(|| Snapshot {
            lease: Lease::new(Arc::clone(&current.token), self.generation, 1),
            valid_until,
        })
    }

    fn advance(&mut self, now: Timestamp) -> Timestamp {
        self.now = self.now.max(now);
        self.now
    }

    /// Decides the next step of a request that has been sent `sends` times:
    /// in every phase, a usable token is sent at once (S5b), and the first
    /// request past its `refresh_at` (or past a failed round's retry time)
    /// also starts a round in the background; the others wait, or fail fast
    /// while `Failed`.
    fn route(&mut self, now: Timestamp, id: RequestId, sends: u32) -> Next<T, E> {
        let park_anyway =
            self.is(Mutant::ParkWhileUsable) && matches!(self.state, State::Refreshing(_));
        if let Some(lease) = self.usable_lease(now, sends.saturating_add(1)) {
            if !park_anyway {
                if self.due_ahead(now) {
                    self.start_round(now, BTreeMap::new());
                }
                return Next::Send(lease);
            }
        }
        let limit = if self.is(Mutant::IgnoreMaxWaiters) {
            usize::MAX
        } else {
            self.config.max_waiters
        };
        match &mut self.state {
            State::Refreshing(round) => {
                let next = park(round, id, sends, limit);
                let stats = &mut self.stats.0;
                match next {
                    Next::Wait => stats.joins += 1,
                    Next::Fail(Error::Overloaded) => stats.overloaded += 1,
                    _ => {}
                }
                next
            }
            State::Failed { error, retry_at } if retry_at.is_none_or(|at| now < at) => {
                self.stats.0.fast_failures += 1;
                Next::Fail(error.clone())
            }
            State::Idle | State::Failed { .. } => {
                self.start_round(now, BTreeMap::from([(id, sends)]));
                Next::Wait
            }
        }
    }

    /// Whether a round ahead of expiry is due: `Idle` past the token's
    /// `refresh_at`, or `Failed` transiently past `retry_at`. The trigger is
    /// a request, never a timer: an idle client does not refresh.
    fn due_ahead(&self, now: Timestamp) -> bool {
        match &self.state {
            State::Idle => self.token.as_ref().is_some_and(|c| c.due(now)),
            State::Failed {
                retry_at: Some(at), ..
            } => now >= *at,
            State::Refreshing(_) | State::Failed { .. } => false,
        }
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
            step: Step::Queued,
        });
        self.next_attempt(now);
    }

    /// Starts the round's next attempt, or queues it while an earlier call
    /// is still outstanding (S1).
    fn next_attempt(&mut self, now: Timestamp) {
        if self.call.is_some() && !self.is(Mutant::StartBesideOutstandingCall) {
            if let State::Refreshing(round) = &mut self.state {
                round.step = Step::Queued;
            }
            return;
        }
        self.start_attempt(now);
    }

    /// Calls the refresher: the new call is the outstanding one.
    fn start_attempt(&mut self, now: Timestamp) {
        self.last_attempt = self.last_attempt.next();
        self.stats.0.refreshes_started += 1;
        let attempt = self.last_attempt;
        self.call = Some(Call {
            attempt,
            base: self.generation,
            abandon_at: now + self.config.refresh_abandon_after,
        });
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
        // A round ahead of expiry has no waiters to fail: requests keep
        // getting the usable token, and the first after `retry_at` tries
        // again in the background. The cool-down only spaces those
        // background rounds, so it ends no later than the token's usable
        // time: the first request that finds the token unusable starts a
        // round of its own instead of failing fast for a round nobody
        // waited on.
        let mut retry_at = now + self.jitter.equal(self.config.cooldown);
        if let Some(current) = self.token.as_ref().filter(|c| c.usable(now)) {
            retry_at = retry_at.min(current.usable_until());
        }
        self.stats.0.rounds_given_up += 1;
        self.give_up(Error::RefreshUnavailable(failure), Some(retry_at));
    }

    /// Enters `Failed`, failing every waiter in the same step (S6). A call
    /// still outstanding stays so.
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

    /// Whether `fresh` is no longer usable when it arrives: expired, or
    /// within the safety margin of its expiry.
    fn arrives_expired(&self, fresh: &Fresh<T>, now: Timestamp) -> bool {
        fresh
            .expires_at()
            .is_some_and(|e| e.saturating_sub(self.config.safety_margin) <= now)
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
        let usable_until = expires_at.map(|e| e.saturating_sub(self.config.safety_margin));
        let refresh_at = expires_at.map(|e| {
            // Refresh `skew` (plus jitter) ahead of expiry, but never in the
            // first half of the token's life: a refresher that keeps handing
            // out nearly expired tokens then costs at most two refreshes per
            // token lifetime, not a storm. And never later than the token is
            // usable, so the refresh runs while requests still go out.
            // Saturating: a skew near `Duration::MAX` means "as early as
            // allowed", not a panic (S7).
            let jitter = self.jitter.up_to(self.config.skew_jitter);
            let skew = self.config.expiry_skew.saturating_add(jitter);
            let life = e.saturating_since(now);
            let ahead = e.saturating_sub(skew).max(now + (life - life / 2));
            usable_until.map_or(ahead, |u| ahead.min(u))
        });
        self.token = Some(Current {
            token: Arc::new(token),
            expires_at,
            usable_until,
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
        let usable = self.token.as_ref().is_some_and(|c| c.usable(now));
        if !usable {
            if !waiters.is_empty() {
                self.start_round(now, waiters);
            }
            return;
        }
        let current = self.token.as_ref().map(|c| Arc::clone(&c.token));
        let Some(token) = current else { return };
        // One action per waiter: grown once, not by doubling through a herd.
        self.actions.reserve(waiters.len());
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

impl<T, E> fmt::Debug for Core<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("phase", &self.phase())
            .field("generation", &self.generation.0)
            .field("now", &self.now)
            .field("waiters", &self.waiters())
            .field("in_flight", &self.in_flight())
            .field("outstanding_call", &self.outstanding_call())
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
