//! What the async and the blocking handle share: the types their users see
//! ([`Ticket`], [`Reply`], [`Fault`], [`Clock`]) and the [`Board`], the
//! state both keep under their one lock: the core, the waiting requests'
//! mailboxes, and the snapshot the lock-free fast path reads.
//!
//! The board is also where both handles report what happens, as `tracing`
//! events: on the slow path only (the fast path never reaches it), and
//! never with a token, only ids, generations, counts and errors (which
//! carry no token either).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, trace, warn};

use crate::sync::{guarded, SnapshotCell, SnapshotGuard, DRIVING};
use crate::{
    Action, Config, ConfigError, Core, Error, Fresh, Generation, Lease, Next, Phase, RefreshError,
    RefreshFailure, RefreshId, RequestId, Snapshot, Timestamp,
};

/// Why a refresh attempt brought no token, as the handles report it to the
/// core: the refresher's own error, or a failure of the refresher itself.
///
/// The handles' errors are [`Error<Fault<E>>`](Error): a transient refresher
/// error that exhausted its retries arrives as
/// `Error::RefreshUnavailable(RefreshFailure::Refresher(fault))`.
///
/// # Examples
///
/// ```
/// use tokenflight::Fault;
///
/// let f: Fault<std::io::Error> = Fault::Panicked("boom".into());
/// assert_eq!(f.to_string(), "the refresher panicked: boom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Fault<E> {
    /// The refresher returned this error.
    #[error("{0}")]
    Refresher(E),
    /// The refresher panicked (with this message). Counted as a transient
    /// failure: the attempt is retried with back-off like any other, and
    /// when the retries run out every waiter gets the error; the handle
    /// stays usable.
    #[error("the refresher panicked: {0}")]
    Panicked(String),
    /// The refresher asked its own handle for a token while refreshing; it
    /// would wait for itself forever, so that request fails at once instead.
    #[error("the refresher asked its own handle for a token")]
    Reentrant,
}

/// What a handle's calls end with: the core's [`Error`] over the handles'
/// [`Fault`].
pub type HandleError<E> = Error<Fault<E>>;

/// What the request closure of `call` reports back.
///
/// # Examples
///
/// ```
/// use tokenflight::Reply;
///
/// fn classify(status: u16, body: String) -> Reply<String> {
///     if status == 401 { Reply::Rejected } else { Reply::Done(body) }
/// }
/// assert!(matches!(classify(401, String::new()), Reply::Rejected));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reply<R> {
    /// The server answered (anything but an auth rejection): this is the
    /// call's result.
    Done(R),
    /// The server rejected the token as expired or invalid: the handle
    /// refreshes (once, however many requests say so) and sends again.
    Rejected,
}

/// The token a request is to be sent with, and what the handle needs to
/// know if the server rejects it.
///
/// A ticket from the fast path holds the published snapshot without
/// touching any shared reference count; keep it only while the request is
/// in flight.
///
/// # Examples
///
/// ```
/// use tokenflight::{Config, Fresh, Generation, blocking};
///
/// let handle = blocking::Handle::new(Config::default(), |_clock| {
///     Ok::<_, tokenflight::RefreshError<()>>(Fresh::new("tok".to_string()))
/// })
/// .unwrap();
/// let ticket = handle.ticket().unwrap();
/// assert_eq!(ticket.token(), "tok");
/// assert_eq!(ticket.generation(), Generation(1));
/// assert_eq!(ticket.send(), 1);
/// ```
pub struct Ticket<T>(TicketKind<T>);

enum TicketKind<T> {
    /// From the fast path: always holds a snapshot.
    Fast(SnapshotGuard<Published<T>>),
    /// From the core.
    Core(Lease<T>),
}

impl<T> Ticket<T> {
    #[inline]
    pub(crate) fn fast(guard: SnapshotGuard<Published<T>>) -> Self {
        debug_assert!(guarded(&guard).is_some());
        Ticket(TicketKind::Fast(guard))
    }

    pub(crate) fn core(lease: Lease<T>) -> Self {
        Ticket(TicketKind::Core(lease))
    }

    /// The lease as the core issued it.
    pub fn lease(&self) -> &Lease<T> {
        match &self.0 {
            TicketKind::Fast(guard) => match guarded(guard) {
                Some(published) => &published.snapshot.lease,
                None => unreachable!("a fast ticket is only made from a present snapshot"),
            },
            TicketKind::Core(lease) => lease,
        }
    }

    /// The token to put on the request.
    pub fn token(&self) -> &T {
        self.lease().token()
    }

    /// Which generation the token is.
    pub fn generation(&self) -> Generation {
        self.lease().generation()
    }

    /// Which send of its request this is: 1 for the first, 2 for the first
    /// retry, and so on.
    pub fn send(&self) -> u32 {
        self.lease().send()
    }
}

impl<T> fmt::Debug for Ticket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("token", &"<redacted>")
            .field("generation", &self.generation().0)
            .field("send", &self.send())
            .finish()
    }
}

/// Where a handle's time comes from: the system's monotonic clock measured
/// from the handle's construction, or a function (for tests and
/// simulations). Refreshers get one to turn a relative `expires_in` into
/// the [`Timestamp`] that [`Fresh::expiring_at`](crate::Fresh::expiring_at)
/// takes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::{Clock, Timestamp};
///
/// let clock = Clock::manual(|| Timestamp::from_millis(500));
/// assert_eq!(clock.after(Duration::from_millis(250)), Timestamp::from_millis(750));
/// assert!(Clock::system().now() < Timestamp::MAX);
/// ```
#[derive(Clone)]
pub struct Clock(ClockKind);

#[derive(Clone)]
enum ClockKind {
    System(Instant),
    Manual(Arc<dyn Fn() -> Timestamp + Send + Sync>),
}

impl Clock {
    /// The system's monotonic clock, with its origin now.
    pub fn system() -> Self {
        Clock(ClockKind::System(instant_now()))
    }

    /// A clock that reads `now`; it must never go backwards.
    pub fn manual(now: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        Clock(ClockKind::Manual(Arc::new(now)))
    }

    /// The time now.
    pub fn now(&self) -> Timestamp {
        match &self.0 {
            ClockKind::System(origin) => Timestamp::from_elapsed(instant_now() - *origin),
            ClockKind::Manual(now) => now(),
        }
    }

    /// The time `duration` from now, e.g. a token's expiry from its
    /// `expires_in`.
    pub fn after(&self, duration: Duration) -> Timestamp {
        self.now() + duration
    }

    /// How the fast path tells that this clock has reached `at`.
    fn deadline(&self, at: Timestamp) -> Deadline {
        match &self.0 {
            _ if at == Timestamp::MAX => Deadline::Never,
            // The exact inverse of `now`: `origin + at` is reached when
            // `now() >= at`, to the nanosecond.
            ClockKind::System(origin) => origin
                .checked_add(Duration::from_nanos(at.as_nanos()))
                .map_or(Deadline::Never, Deadline::Instant),
            ClockKind::Manual(_) => Deadline::Timestamp(at),
        }
    }

    /// The wall-clock instant at which this clock reads `at` (roughly, for a
    /// manual clock), for waiting on a condition variable.
    pub(crate) fn instant_at(&self, at: Timestamp) -> Instant {
        instant_now() + at.saturating_since(self.now())
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ClockKind::System(_) => f.write_str("Clock::system"),
            ClockKind::Manual(_) => f.write_str("Clock::manual"),
        }
    }
}

/// The front-ends' only clock read. The core never reads a clock; the
/// front-ends must, to give it `now`.
#[allow(clippy::disallowed_methods)]
fn instant_now() -> Instant {
    Instant::now()
}

/// Why a handle could not be built.
///
/// # Examples
///
/// ```
/// use tokenflight::{BuildError, Config, ConfigError};
///
/// let e = BuildError::Config(ConfigError::NoWaiters);
/// assert_eq!(e.to_string(), "max_waiters must be at least 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configuration backs off between refresh attempts, but the handle
    /// has no timer to end a back-off with: waiters would hang. Give the
    /// handle a timer, or set `backoff_initial` and `backoff_max` to zero.
    #[error("back-off needs a timer: give the handle one, or set the back-off to zero")]
    TimerRequired,
}

/// Where a parked waiter sits: its round (named by the round's first
/// request id) and its position in the round's waker list; what the async
/// handle appoints a driver by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seat {
    round: u64,
    pos: u32,
}

/// What a request that waits keeps (16 bytes): the core's name for it,
/// which also tells its round (rounds hold disjoint ranges of ids), its
/// position in the round, so that reaching its entry needs no lookup by id,
/// and the send its lease will be for (the core resumes it with
/// `sends + 1`, the same number the board computes when it parks).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place {
    pub(crate) id: RequestId,
    pos: u32,
    send: u32,
}

/// A round's outcome, delivered once for all of its waiters: each builds
/// its own ticket from it (a clone of the token's `Arc`, its own send).
enum Delivered<T, E> {
    Token(Arc<T>, Generation),
    Error(HandleError<E>),
}

/// The waiters that parked together, from the first who found no usable
/// token until the core answered them all at once (a token or an error).
/// A waiter joins the round still waiting; a round answered is closed, and
/// the next waiter opens a new one.
struct Round<T, E, W> {
    /// The id of its first waiter; rounds are kept in this order.
    first: u64,
    /// The id of its last waiter, so far.
    last: u64,
    /// Each waiter's waker, by position; `None` before its first poll,
    /// after it left, and once the round is answered (the wakers are
    /// taken, to wake).
    wakers: Vec<Option<W>>,
    /// Waiters that have not left yet (read their outcome, or cancelled).
    /// The round goes when this drops to zero.
    members: usize,
    /// Positions below this hold no waker (see `Board::first_waker`).
    scan: usize,
    outcome: Option<Delivered<T, E>>,
}

/// The core's answer to one waiter, as one step's answers are gathered.
type Answer<T, E> = (RequestId, Result<Lease<T>, HandleError<E>>);

/// What changed in one step, to act on after unlocking.
pub(crate) struct Settled<W> {
    /// Waiters whose outcome arrived, one list per round answered.
    pub(crate) woken: Vec<Vec<Option<W>>>,
}

/// The state a handle keeps under its one lock.
pub(crate) struct Board<T, E, W> {
    pub(crate) core: Core<T, Fault<E>>,
    /// Turns the snapshot's `valid_until` into the fast path's deadline.
    clock: Clock,
    next_id: u64,
    /// The rounds whose waiters have not all left, oldest first; only the
    /// last can still be waiting. Ordered, so that which waiter the async
    /// handle appoints next is deterministic (loom replays executions).
    rounds: VecDeque<Round<T, E, W>>,
    /// Outcomes that did not come for a whole round at once, by waiter.
    /// The core answers a round's waiters together (all resumed with one
    /// token, or all failed with one error), so this stays empty; it keeps
    /// every outcome exact should that ever not hold.
    single: BTreeMap<RequestId, Result<Ticket<T>, HandleError<E>>>,
    /// What the snapshot cell holds now (`None`: empty), so that an
    /// unchanged snapshot is not stored again.
    published: Option<(Generation, Timestamp)>,
    /// The core's phase after the last step, to tell when it fails.
    phase: Phase,
    /// How the last attempt to end without a token ended, for the warning
    /// when refreshing gives up with no waiter to carry the error.
    last_failure: &'static str,
    /// The attempt in flight was refused for good in this step.
    refused: bool,
    /// A deliberately broken variant for the loom suite to catch: the
    /// snapshot is computed under the lock but stored after it is released
    /// (a check-then-act split across two critical sections), so a stale
    /// store can land after a newer one.
    #[cfg(tokenflight_loom)]
    pub(crate) late_publish: Option<LatePublish<T>>,
}

/// See `Board::late_publish`: `Some` once the broken variant is chosen,
/// holding the snapshot still to be stored, if any.
#[cfg(tokenflight_loom)]
pub(crate) type LatePublish<T> = Option<Option<Arc<Published<T>>>>;

/// What the fast path reads: the core's snapshot, and its `valid_until` in
/// the form cheapest to check.
pub(crate) struct Published<T> {
    pub(crate) snapshot: Snapshot<T>,
    deadline: Deadline,
}

/// When a published snapshot stops being valid. For the system clock it is
/// an `Instant`, computed once when the snapshot is published, so that the
/// fast path compares `Instant::now()` with it and nothing else: turning
/// `now` into a [`Timestamp`] on every call (subtracting the clock's origin,
/// converting to nanoseconds) cost more than the rest of the fast path.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    Never,
    Instant(Instant),
    /// A manual clock is read and compared as it is.
    Timestamp(Timestamp),
}

impl Deadline {
    #[inline]
    fn has_passed(self, clock: &Clock) -> bool {
        match self {
            Deadline::Never => false,
            Deadline::Instant(at) => instant_now() >= at,
            Deadline::Timestamp(at) => clock.now() >= at,
        }
    }
}

/// What the core answered a request, as the handles act on it.
pub(crate) enum Asked<T, E> {
    Send(Ticket<T>),
    Wait(Place),
    Fail(HandleError<E>),
}

impl<T, E, W> Board<T, E, W> {
    pub(crate) fn new(config: Config, clock: Clock) -> Result<Self, ConfigError> {
        Ok(Board {
            core: Core::new(config)?,
            clock,
            next_id: 0,
            rounds: VecDeque::new(),
            single: BTreeMap::new(),
            published: None,
            phase: Phase::Idle,
            last_failure: "",
            refused: false,
            #[cfg(tokenflight_loom)]
            late_publish: None,
        })
    }

    /// A new request asks the core for a token. On `Wait` its mailbox
    /// exists before the step's actions are delivered.
    pub(crate) fn acquire(&mut self, now: Timestamp) -> Asked<T, E> {
        let id = self.next_id();
        let refreshing = self.core.phase() == Phase::Refreshing;
        let next = self.core.handle_acquire(now, id);
        self.asked(id, 1, next, refreshing)
    }

    /// The server rejected `lease`.
    pub(crate) fn reject(&mut self, now: Timestamp, lease: &Lease<T>) -> Asked<T, E> {
        let id = self.next_id();
        let refreshing = self.core.phase() == Phase::Refreshing;
        let next = self.core.handle_rejection(now, id, lease);
        let current = self.core.generation();
        if lease.generation() < current && matches!(next, Next::Send(_)) {
            trace!(
                request = id.0,
                rejected = lease.generation().0,
                generation = current.0,
                "stale rejection answered with the current token, without a refresh"
            );
        }
        self.asked(id, lease.send().saturating_add(1), next, refreshing)
    }

    /// The refresher answered `attempt`: reports it to the core.
    pub(crate) fn refreshed(
        &mut self,
        now: Timestamp,
        attempt: RefreshId,
        result: Result<Fresh<T>, RefreshError<Fault<E>>>,
    ) {
        let in_flight = self.core.in_flight() == Some(attempt);
        let before = self.core.generation();
        let outcome = match &result {
            Ok(_) => "expired on arrival",
            Err(RefreshError::Transient(Fault::Panicked(_))) => "panicked",
            Err(RefreshError::Transient(_)) => "transient error",
            Err(RefreshError::Permanent(_)) => "permanent error",
        };
        let permanent = matches!(result, Err(RefreshError::Permanent(_)));
        self.core.handle_refreshed(now, attempt, result);
        let generation = self.core.generation();
        let adopted = generation != before;
        match (in_flight, adopted) {
            (true, true) => debug!(
                attempt = attempt.0,
                generation = generation.0,
                "refresh attempt ends: token adopted"
            ),
            (true, false) => {
                debug!(
                    attempt = attempt.0,
                    outcome, "refresh attempt ends without a token"
                );
                self.last_failure = outcome;
                self.refused = permanent;
            }
            (false, true) => debug!(
                attempt = attempt.0,
                generation = generation.0,
                "late refresh answer adopted"
            ),
            (false, false) => debug!(attempt = attempt.0, "late refresh answer ignored"),
        }
    }

    fn next_id(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }

    fn asked(
        &mut self,
        id: RequestId,
        send: u32,
        next: Next<T, Fault<E>>,
        refreshing: bool,
    ) -> Asked<T, E> {
        if refreshing && matches!(next, Next::Wait) {
            trace!(
                request = id.0,
                waiters = self.core.waiters(),
                "request joins the refresh under way"
            );
        }
        match next {
            Next::Send(lease) => Asked::Send(Ticket::core(lease)),
            Next::Fail(error) => Asked::Fail(error),
            Next::Wait => Asked::Wait(self.park(id, send)),
        }
    }

    /// How many waiters the open round has.
    fn waiting(&self) -> usize {
        self.rounds
            .back()
            .filter(|r| r.outcome.is_none())
            .map_or(0, |r| r.members)
    }

    /// Seats a new waiter in the open round, or opens one.
    fn park(&mut self, id: RequestId, send: u32) -> Place {
        let open = self.rounds.back_mut().filter(|r| r.outcome.is_none());
        let round = match open {
            Some(round) => round,
            None => {
                self.rounds.push_back(Round {
                    first: id.0,
                    last: id.0,
                    wakers: Vec::new(),
                    members: 0,
                    scan: 0,
                    outcome: None,
                });
                self.rounds.back_mut().expect("just pushed")
            }
        };
        let pos = u32::try_from(round.wakers.len()).expect("fewer than 2^32 waiters in a round");
        round.wakers.push(None);
        round.members += 1;
        round.last = id.0;
        Place { id, pos, send }
    }

    /// The index of `place`'s round: the last that starts at or before it.
    fn round_index(&self, place: Place) -> usize {
        let index = self.rounds.partition_point(|r| r.first <= place.id.0);
        debug_assert!(index > 0, "a waiter's round lives until the waiter leaves");
        index - 1
    }

    /// The seat of the waiter at `place`.
    pub(crate) fn seat(&self, place: Place) -> Seat {
        Seat {
            round: self.rounds[self.round_index(place)].first,
            pos: place.pos,
        }
    }

    /// `place` leaves its round (outcome read, or cancelled); the round
    /// goes with its last member.
    fn leave(&mut self, index: usize) {
        let round = &mut self.rounds[index];
        round.members -= 1;
        if round.members == 0 {
            self.rounds.remove(index);
        }
    }

    /// The waiter at `place` takes its outcome, if it has arrived; it has
    /// then left.
    pub(crate) fn take_outcome(
        &mut self,
        place: Place,
    ) -> Option<Result<Ticket<T>, HandleError<E>>> {
        let index = self.round_index(place);
        let outcome = match &self.rounds[index].outcome {
            Some(Delivered::Token(token, generation)) => Ok(Ticket::core(Lease::new(
                Arc::clone(token),
                *generation,
                place.send,
            ))),
            Some(Delivered::Error(error)) => Err(error.clone()),
            None if self.single.is_empty() => return None,
            None => self.single.remove(&place.id)?,
        };
        self.leave(index);
        Some(outcome)
    }

    /// The waker slot of the waiter at `place`, still waiting, to set.
    pub(crate) fn waker_mut(&mut self, place: Place) -> &mut Option<W> {
        let index = self.round_index(place);
        let round = &mut self.rounds[index];
        let pos = place.pos as usize;
        round.scan = round.scan.min(pos);
        &mut round.wakers[pos]
    }

    /// A waiting waiter's seat and waker, if any has one: the first of the
    /// open round. Amortised O(1): the positions skipped hold no waker, and
    /// a waiter that sets one below the mark moves it back.
    pub(crate) fn first_waker(&mut self) -> Option<(Seat, &W)> {
        let round = self.rounds.back_mut().filter(|r| r.outcome.is_none())?;
        while round.wakers.get(round.scan).is_some_and(Option::is_none) {
            round.scan += 1;
        }
        let pos = round.scan;
        let waker = round.wakers.get(pos)?.as_ref()?;
        let seat = Seat {
            round: round.first,
            pos: u32::try_from(pos).expect("fewer than 2^32 waiters in a round"),
        };
        Some((seat, waker))
    }

    /// Removes a waiter that gives up before its outcome arrived (or after,
    /// unread). Returns whether it was still waiting in the core.
    pub(crate) fn cancel(&mut self, now: Timestamp, place: Place) -> bool {
        let index = self.round_index(place);
        let round = &mut self.rounds[index];
        let waiting = round.outcome.is_none()
            && (self.single.is_empty() || self.single.remove(&place.id).is_none());
        if waiting {
            round.wakers[place.pos as usize] = None;
        }
        self.leave(index);
        waiting && self.core.handle_cancel(now, place.id)
    }

    /// Delivers one step's answers. The common case, which the core's
    /// rounds make the only one: the answers are for every waiter of the
    /// open round, all the same token or all the same error; the round gets
    /// that outcome once, and its wakers are taken. Anything else is
    /// delivered waiter by waiter.
    fn deliver(&mut self, answers: Vec<Answer<T, E>>, settled: &mut Settled<W>) {
        let Some((_, first)) = answers.first() else {
            return;
        };
        let open = self.rounds.back_mut().filter(|r| r.outcome.is_none());
        let whole = open.filter(|round| {
            self.single.is_empty()
                && answers.len() == round.members
                && answers.iter().all(|(id, answer)| {
                    (round.first..=round.last).contains(&id.0)
                        && match (answer, first) {
                            (Ok(lease), Ok(one)) => {
                                lease.generation() == one.generation()
                                    && Arc::ptr_eq(lease.shared_token(), one.shared_token())
                            }
                            (Err(_), Err(_)) => true,
                            _ => false,
                        }
                })
        });
        debug_assert!(
            whole.is_some(),
            "the core answered part of a round, or more"
        );
        if let Some(round) = whole {
            round.outcome = Some(match first {
                Ok(lease) => Delivered::Token(Arc::clone(lease.shared_token()), lease.generation()),
                // The core fails a round with clones of one error.
                Err(error) => Delivered::Error(error.clone()),
            });
            round.scan = 0;
            settled.woken.push(std::mem::take(&mut round.wakers));
            return;
        }
        for (id, answer) in answers {
            self.single.insert(id, answer.map(Ticket::core));
        }
        // Which waiters these are is not known by position: wake the open
        // round; those still waiting poll again and go back to sleep.
        if let Some(round) = self.rounds.back_mut().filter(|r| r.outcome.is_none()) {
            round.scan = 0;
            let wakers = round.wakers.iter_mut().map(Option::take).collect();
            settled.woken.push(wakers);
        }
    }

    /// After every input: fires the timers that are due, delivers the
    /// core's actions into the mailboxes and publishes the snapshot, all in
    /// the caller's critical section, so that no reader can see a snapshot
    /// older than what the core knows once the lock is released.
    pub(crate) fn settle(
        &mut self,
        now: Timestamp,
        cell: &SnapshotCell<Published<T>>,
    ) -> Settled<W> {
        // Each call moves the core on (a deadline passed counts the attempt
        // as failed; a back-off that ended starts the next attempt, whose
        // deadline is later than `now`), so this ends.
        while self.core.poll_timeout().is_some_and(|t| t <= now) {
            let in_flight = self.core.in_flight();
            self.core.handle_timeout(now);
            if let Some(attempt) = in_flight.filter(|a| self.core.in_flight() != Some(*a)) {
                debug!(attempt = attempt.0, "refresh attempt ends: timed out");
                self.last_failure = "timed out";
            }
        }
        let mut settled = Settled { woken: Vec::new() };
        let (mut failed, mut first_error) = (0_usize, None);
        let mut answers = Vec::new();
        while let Some(action) = self.core.poll_action() {
            match action {
                // The front-ends run the call that `Core::outstanding_call`
                // names, which is this one until it ends.
                Action::StartRefresh { attempt } => {
                    debug!(
                        attempt = attempt.0,
                        replacing = self.core.generation().0,
                        "refresh attempt starts"
                    );
                }
                // The front-ends drop the abandoned call's future: it is no
                // longer `Core::outstanding_call`.
                Action::AbandonRefresh { attempt } => {
                    debug!(
                        attempt = attempt.0,
                        "refresh call abandoned: no answer in time"
                    );
                }
                Action::Resume { id, lease } => answers.push((id, Ok(lease))),
                Action::Fail { id, error } => {
                    failed += 1;
                    first_error.get_or_insert_with(|| error.clone());
                    answers.push((id, Err(error)));
                }
            }
        }
        self.deliver(answers, &mut settled);
        debug_assert!(
            !self.single.is_empty() || self.core.waiters() == self.waiting(),
            "the core's waiters are the open round's"
        );
        let phase = self.core.phase();
        let refused = std::mem::take(&mut self.refused);
        if phase == Phase::Failed && self.phase != Phase::Failed {
            let error = match &first_error {
                Some(error) => Described(error).to_string(),
                None => format!("the last attempt: {}", self.last_failure),
            };
            if refused {
                warn!(
                    waiters_failed = failed,
                    error, "token refresh refused for good; a new login is needed"
                );
            } else {
                warn!(
                    waiters_failed = failed,
                    error, "token refresh gave up; requests fail fast until the cool-down ends"
                );
            }
        }
        self.phase = phase;
        self.publish(cell);
        settled
    }

    fn publish(&mut self, cell: &SnapshotCell<Published<T>>) {
        let clock = &self.clock;
        let snapshot = self.core.snapshot().map(|snapshot| Published {
            deadline: clock.deadline(snapshot.valid_until),
            snapshot,
        });
        #[cfg(tokenflight_loom)]
        if let Some(late) = &mut self.late_publish {
            *late = Some(snapshot.map(Arc::new));
            return;
        }
        let key = snapshot
            .as_ref()
            .map(|p| (p.snapshot.lease.generation(), p.snapshot.valid_until));
        if key != self.published {
            cell.store(snapshot.map(Arc::new));
            self.published = key;
        }
    }
}

/// A handle's error for a log line, whatever `E` is: the error's own words,
/// with the refresher's own error (which need not be `Display`) named, not
/// shown. Errors carry no token.
struct Described<'a, E>(&'a HandleError<E>);

impl<E> fmt::Display for Described<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn fault<E>(fault: &Fault<E>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match fault {
                Fault::Refresher(_) => f.write_str("the refresher's error"),
                // Its message is the refresher's own: named, not shown.
                Fault::Panicked(_) => f.write_str("the refresher panicked"),
                Fault::Reentrant => f.write_str("the refresher asked its own handle for a token"),
            }
        }
        match self.0 {
            Error::RefreshUnavailable(failure) => {
                f.write_str("token refresh is failing, retry later: ")?;
                match failure {
                    RefreshFailure::Refresher(e) => fault(e, f),
                    RefreshFailure::TimedOut => f.write_str("refresh attempt timed out"),
                    RefreshFailure::ExpiredOnArrival => {
                        f.write_str("refresher returned an already expired token")
                    }
                }
            }
            Error::LoginRequired(e) => {
                f.write_str("token refresh was refused, a new login is needed: ")?;
                fault(e, f)
            }
            Error::Overloaded => f.write_str("too many requests are waiting for a token"),
            Error::AuthRejected { sends } => write!(
                f,
                "the server rejected the token on all {sends} sends of this request"
            ),
            Error::DuplicateRequest => f.write_str("request id is already waiting for a token"),
            Error::UnknownGeneration => {
                f.write_str("lease names a token generation this core never issued")
            }
        }
    }
}

/// The lock-free fast path: the published snapshot, if it is valid at the
/// time `clock` reads. Reads the clock only for a token with an expiry.
///
/// Always inlined: left to itself the compiler kept it out of line in
/// `blocking::Handle::ticket`, and the call and the ticket returned through
/// memory cost ~10 % of a call that is otherwise an `ArcSwap` load and one
/// clock read.
#[inline(always)]
pub(crate) fn fast_ticket<T>(
    cell: &SnapshotCell<Published<T>>,
    clock: &Clock,
) -> Option<Ticket<T>> {
    let guard = cell.load();
    if guarded(&guard)?.deadline.has_passed(clock) {
        return None;
    }
    Some(Ticket::fast(guard))
}

/// The error a request gets when the refresher asks its own handle for a
/// token (see [`Fault::Reentrant`]).
pub(crate) fn reentrant<E>() -> HandleError<E> {
    Error::RefreshUnavailable(RefreshFailure::Refresher(Arc::new(Fault::Reentrant)))
}

/// Marks the current thread as running the refresher of the handle at
/// `key` for as long as it lives.
///
/// Guards L1 against a refresher that calls back into its own handle: such
/// a request would wait for the refresh that waits for it. While the mark is
/// up, a request of that handle that would wait fails at once instead. The
/// mark comes down on drop, also when the refresher panics, so a later,
/// unrelated request on this thread is never failed by mistake.
pub(crate) struct Driving(usize);

impl Driving {
    pub(crate) fn enter(key: usize) -> Self {
        DRIVING.with(|d| d.borrow_mut().push(key));
        Driving(key)
    }

    /// Whether this thread is running the refresher of the handle at `key`.
    pub(crate) fn is_active(key: usize) -> bool {
        DRIVING.with(|d| d.borrow().contains(&key))
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        DRIVING.with(|d| {
            let mut d = d.borrow_mut();
            if let Some(i) = d.iter().rposition(|k| *k == self.0) {
                d.remove(i);
            }
        });
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

/// The refresher's error as the core sees it.
pub(crate) fn lift<E>(error: RefreshError<E>) -> RefreshError<Fault<E>> {
    match error {
        RefreshError::Transient(e) => RefreshError::Transient(Fault::Refresher(e)),
        RefreshError::Permanent(e) => RefreshError::Permanent(Fault::Refresher(e)),
    }
}

/// Whether `config` backs off between attempts, which needs a timer.
pub(crate) fn needs_timer(config: &Config) -> bool {
    // The back-off doubles from `backoff_initial`: zero stays zero.
    !config.backoff_initial.is_zero()
}
