//! The [`Board`]: the state both handles keep under their one lock (the
//! core, the waiting requests' rounds, and the snapshot the lock-free fast
//! path reads), and the fast path itself.

use std::sync::Arc;

use super::clock::{Clock, Deadline};
use super::error::{Fault, HandleError};
use super::log::{Described, Note};
use super::refresh::Refresh;
use super::status::Status;
use super::ticket::Ticket;
#[cfg(feature = "observe")]
use super::watch::{Asking, Before};
use crate::sync::{Nothing, OnceCell, SnapshotCell};
use crate::{
    Action, Config, ConfigError, Core, Credential, Fresh, Generation, Lease, Next, Phase,
    RefreshError, RefreshId, RequestId, Snapshot, Timestamp,
};

/// Where a waiting waiter sits: its round (named by the round's first
/// request id) and its position in the round's waker list; what the async
/// handle appoints a driver by (only waiters still waiting are appointed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seat {
    round: u64,
    pos: u32,
}

/// What a request that waits keeps (24 bytes): the core's name for it,
/// its position in the round, so that reaching its entry needs no lookup
/// by id, the send its lease will be for (the core resumes it with
/// `sends + 1`, the same number the board computes when it parks), and its
/// round's mailbox, where it reads its outcome without the handle's lock.
pub(crate) struct Place<T, E> {
    pub(crate) id: RequestId,
    pos: u32,
    send: u32,
    mailbox: Arc<Mailbox<T, E>>,
    /// An observed handle's number for the request.
    #[cfg(feature = "observe")]
    seen: Option<RequestId>,
}

/// A round's outcome, delivered once for all of its waiters: each builds
/// its own ticket from it (a clone of the token's `Arc`, its own send).
enum Delivered<T, E> {
    Token(Arc<T>, Generation),
    Error(HandleError<E>),
}

/// Where a round's outcome is delivered: set once, under the handle's lock,
/// in the critical section that answers the round (before its waiters are
/// woken), and read by its waiters without the lock, so that a herd woken
/// at once does not queue on it. Shared by the round's waiters through its
/// `Arc`: the board forgets a round once it is answered, and the outcome
/// goes with the last waiter that holds it.
struct Mailbox<T, E> {
    outcome: OnceCell<Delivered<T, E>>,
    /// The observer of the handle, to report what the waiters do with
    /// their outcome.
    #[cfg(feature = "observe")]
    observer: Option<Arc<super::observe::Observer>>,
}

impl<T, E> Place<T, E> {
    /// The outcome, once the round is answered: read without a lock. A set
    /// happens before the wake that follows it, so a woken waiter finds
    /// it; one that looks before it is set looks again under the lock.
    pub(crate) fn outcome(&self) -> Option<Result<Ticket<T>, HandleError<E>>> {
        let outcome = self.mailbox.outcome.with(|delivered| match delivered {
            Delivered::Token(token, generation) => Ok(Ticket::core(Lease::new(
                Arc::clone(token),
                *generation,
                self.send,
            ))),
            Delivered::Error(error) => Err(error.clone()),
        })?;
        #[cfg(feature = "observe")]
        if let (Some(observer), Some(id)) = (&self.mailbox.observer, self.seen) {
            // A ticket only: an error already ended the request.
            return Some(
                outcome.map(|ticket| ticket.seen(super::observe::Seen::new(observer, id))),
            );
        }
        Some(outcome)
    }

    /// Whether the round was answered: then neither the core nor the board
    /// holds this waiter any more.
    pub(crate) fn answered(&self) -> bool {
        self.mailbox.outcome.with(|_| ()).is_some()
    }

    /// Whether it was answered with a token.
    #[cfg(feature = "observe")]
    fn answered_token(&self) -> bool {
        self.mailbox
            .outcome
            .with(|d| matches!(d, Delivered::Token(..)))
            .unwrap_or(false)
    }

    /// An answered waiter goes without reading its outcome: an observed
    /// one given a token reports it will not use it (one given an error
    /// was already reported failed). Never call it with the handle's lock
    /// held: it runs the observer.
    #[cfg(feature = "observe")]
    pub(crate) fn report_unread(&self) {
        if let (Some(observer), Some(id), true) =
            (&self.mailbox.observer, self.seen, self.answered_token())
        {
            observer.report_now(crate::check::Event::Cancelled { id });
        }
    }
}

/// The waiters that parked together, from the first who found no usable
/// token until the core answered them all at once (a token or an error).
/// A waiter joins the round still waiting; a round answered leaves the
/// board (its outcome stays in its mailbox), and the next waiter opens a
/// new one.
struct Round<T, E, W> {
    /// The id of its first waiter: the round's name in a [`Seat`].
    first: u64,
    /// The id of its last waiter, so far.
    last: u64,
    /// Each waiter's waker, by position; `None` before its first poll and
    /// after it left. Taken, to wake, when the round is answered.
    wakers: Vec<Option<W>>,
    /// Positions whose waiter left before the round was answered, for the
    /// next waiter to take: a round's list is as long as the most waiters
    /// it held at once, never longer, however many come and go (S7).
    free: Vec<u32>,
    /// Waiters that have not cancelled. The round goes when this drops to
    /// zero.
    members: usize,
    /// Positions below this hold no waker (see `Board::first_waker`).
    scan: usize,
    mailbox: Arc<Mailbox<T, E>>,
}

/// An answered round's mailbox, and the outcome to put in it.
type Letter<T, E> = (Arc<Mailbox<T, E>>, Delivered<T, E>);

/// The core's answer to one waiter.
type Answer<T, E> = Result<Lease<T>, HandleError<E>>;

/// One settling's answers so far, and how many of them are failures (the
/// first one's error, for the warning when refreshing gives up). The core
/// answers a round all with one token or all with one error, so only the
/// first answer is kept: a list of them all, at 100 000 waiters, cost more
/// than the rest of the step.
struct Drained<T, E> {
    first: Option<Answer<T, E>>,
    count: usize,
    /// Each answer's request, and whether it agreed with the first, for
    /// the delivery to be checked against (debug builds only).
    #[cfg(debug_assertions)]
    checked: Vec<(RequestId, bool)>,
    failed: usize,
    first_error: Option<HandleError<E>>,
}

impl<T, E> Drained<T, E> {
    fn new() -> Self {
        Drained {
            first: None,
            count: 0,
            #[cfg(debug_assertions)]
            checked: Vec::new(),
            failed: 0,
            first_error: None,
        }
    }

    fn answer(&mut self, id: RequestId, answer: Answer<T, E>) {
        self.count += 1;
        #[cfg(debug_assertions)]
        self.checked.push((
            id,
            self.first.as_ref().is_none_or(|one| match (&answer, one) {
                (Ok(lease), Ok(one)) => {
                    lease.generation() == one.generation()
                        && Arc::ptr_eq(lease.shared_token(), one.shared_token())
                }
                (Err(_), Err(_)) => true,
                _ => false,
            }),
        ));
        #[cfg(not(debug_assertions))]
        let _ = id;
        self.first.get_or_insert(answer);
    }
}

/// Runs `$body` with the board's observer-side watch, if the handle is
/// observed (feature `observe`); nothing at all without the feature.
#[cfg(feature = "observe")]
macro_rules! watch {
    ($board:ident, $w:ident => $body:expr) => {
        $board.watch.as_mut().map(|$w| $body)
    };
}
#[cfg(not(feature = "observe"))]
macro_rules! watch {
    ($board:ident, $w:ident => $body:expr) => {
        ()
    };
}

/// What changed in one step, to act on after unlocking.
pub(crate) struct Settled<W> {
    /// Waiters whose outcome arrived, one list per round answered.
    pub(crate) woken: Vec<Vec<Option<W>>>,
    /// Events to report, once the lock is released.
    pub(crate) notes: Vec<Note>,
}

/// The state a handle keeps under its one lock.
pub(crate) struct Board<T, E, W> {
    pub(crate) core: Core<T, Fault<E>>,
    /// Turns the snapshot's `valid_until` into the fast path's deadline.
    clock: Clock,
    next_id: u64,
    /// The round whose waiters still wait, if any: the only one the board
    /// holds. Its waker list is ordered, so that which waiter the async
    /// handle appoints next is deterministic (loom replays executions).
    open: Option<Round<T, E, W>>,
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
    /// Events noted in this step, emitted after unlocking.
    notes: Vec<Note>,
    /// The current token and its generation, for the refresher to be told
    /// what it replaces (kept also once the token is no longer usable).
    current: Option<(Arc<T>, Generation)>,
    /// The refresh credential that came with the latest token that had one.
    credential: Option<Credential>,
    /// What the call out presented, if one is out.
    presented: Option<Option<Credential>>,
    /// An observed handle's history of this board's steps.
    #[cfg(feature = "observe")]
    watch: Option<super::watch::Watch>,
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
    /// `Some` whenever `deadline` can be found not passed: only the cell's
    /// [`Nothing`] has none, and its deadline has always passed.
    pub(crate) snapshot: Option<Snapshot<T>>,
    deadline: Deadline,
}

impl<T> Nothing for Published<T> {
    fn nothing() -> Self {
        Published {
            snapshot: None,
            deadline: Deadline::passed(),
        }
    }
}

/// What the core answered a request, as the handles act on it.
pub(crate) enum Asked<T, E> {
    Send(Ticket<T>),
    Wait(Place<T, E>),
    Fail(HandleError<E>),
}

/// Stores a snapshot into the cell the fast path reads, told whether it
/// differs from the one stored last. The async handle passes one that
/// withholds the snapshot while work waits to be picked up.
pub(crate) type Store<'a, T> = &'a mut dyn FnMut(Option<Arc<Published<T>>>, bool);

impl<T, E, W> Board<T, E, W> {
    /// A board whose core runs with `config`; a seed left at zero is drawn
    /// from the OS's entropy, so that a fleet on the defaults does not
    /// jitter in lock-step.
    pub(crate) fn new(mut config: Config, clock: Clock) -> Result<Self, ConfigError> {
        if config.seed == 0 {
            config.seed = super::entropy_seed();
        }
        Ok(Board {
            core: Core::new(config)?,
            clock,
            next_id: 0,
            open: None,
            published: None,
            phase: Phase::Idle,
            last_failure: "",
            refused: false,
            notes: Vec::new(),
            current: None,
            credential: None,
            presented: None,
            #[cfg(feature = "observe")]
            watch: None,
            #[cfg(tokenflight_loom)]
            late_publish: None,
        })
    }

    /// Writes this board's steps down for `observer`.
    #[cfg(feature = "observe")]
    pub(crate) fn observe(&mut self, observer: Arc<super::observe::Observer>) {
        self.watch = Some(super::watch::Watch::new(observer));
    }

    /// A new request asks the core for a token. On `Wait` its mailbox
    /// exists before the step's actions are delivered.
    pub(crate) fn acquire(&mut self, now: Timestamp) -> Asked<T, E> {
        let id = self.next_id();
        let refreshing = self.core.phase() == Phase::Refreshing;
        #[cfg(feature = "observe")]
        let before = Before::of(&self.core);
        let next = self.core.handle_acquire(now, id);
        #[cfg(feature = "observe")]
        let seen = watch!(self, w => w.asked(&self.core, before, id, Asking::New, &next));
        self.asked(
            id,
            1,
            next,
            refreshing,
            #[cfg(feature = "observe")]
            seen,
        )
    }

    /// The server rejected `ticket`'s token.
    pub(crate) fn reject(&mut self, now: Timestamp, ticket: &mut Ticket<T>) -> Asked<T, E> {
        #[cfg(feature = "observe")]
        let seen = ticket.take_seen();
        let lease = ticket.lease();
        let id = self.next_id();
        let refreshing = self.core.phase() == Phase::Refreshing;
        #[cfg(feature = "observe")]
        let before = Before::of(&self.core);
        let next = self.core.handle_rejection(now, id, lease);
        #[cfg(feature = "observe")]
        let seen = watch!(self, w => {
            let generation = lease.generation();
            let asking = Asking::Rejected { seen, generation };
            w.asked(&self.core, before, id, asking, &next)
        });
        let current = self.core.generation();
        if lease.generation() < current && matches!(next, Next::Send(_)) {
            self.notes.push(Note::StaleRejection {
                request: id.0,
                rejected: lease.generation().0,
                generation: current.0,
            });
        }
        self.asked(
            id,
            lease.send().saturating_add(1),
            next,
            refreshing,
            #[cfg(feature = "observe")]
            seen,
        )
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
        let result = result.map(|fresh| fresh.stamped(now));
        let credential = result.as_ref().ok().and_then(|f| f.credential().cloned());
        #[cfg(feature = "observe")]
        let (observed, expires_at) = (
            Before::of(&self.core),
            result.as_ref().ok().and_then(Fresh::expires_at),
        );
        self.core.handle_refreshed(now, attempt, result);
        watch!(self, w => w.refreshed(&self.core, observed, attempt, expires_at));
        let generation = self.core.generation();
        let adopted = generation != before;
        if adopted {
            self.adopted(credential);
        } else if credential.is_some() && self.presented.take() == Some(self.credential.clone()) {
            // A token the core could not use (expired on arrival, or a late
            // answer it ignored) still rotated the refresh credential: the
            // one this call presented is spent and is still the one held
            // (no login replaced it meanwhile), so the next call needs this.
            self.credential = credential;
        }
        let (attempt, generation) = (attempt.0, generation.0);
        self.notes.push(match (in_flight, adopted) {
            (true, true) => Note::Adopted {
                attempt,
                generation,
            },
            (true, false) => {
                self.last_failure = outcome;
                self.refused = permanent;
                Note::NoToken { attempt, outcome }
            }
            (false, true) => Note::LateAdopted {
                attempt,
                generation,
            },
            (false, false) => Note::LateIgnored { attempt },
        });
    }

    /// The call `attempt`, which the core started, was superseded (by a
    /// login, or its attempt timed out) before the handle made it: it never
    /// will be, and the core is told the call is over. To the core that is
    /// a late answer, whose error is never anyone's outcome: it only ends
    /// the call, and lets an attempt queued behind it start.
    pub(crate) fn unmade(&mut self, attempt: RefreshId) {
        debug_assert_ne!(self.core.in_flight(), Some(attempt));
        let now = self.core.now();
        let never = Fault::Panicked("superseded before the call was made".into());
        self.core
            .handle_refreshed(now, attempt, Err(RefreshError::Transient(never)));
    }

    /// A token obtained elsewhere (a login) becomes current.
    pub(crate) fn set_token(&mut self, now: Timestamp, fresh: Fresh<T>) {
        let fresh = fresh.stamped(now);
        let credential = fresh.credential().cloned();
        #[cfg(feature = "observe")]
        let (before, expires_at) = (Before::of(&self.core), fresh.expires_at());
        self.core.handle_set_token(now, fresh);
        watch!(self, w => w.set_token(&self.core, before, expires_at));
        self.adopted(credential);
    }

    /// The user declared `generation` bad.
    pub(crate) fn invalidate(&mut self, now: Timestamp, generation: Generation) {
        #[cfg(feature = "observe")]
        let before = Before::of(&self.core);
        self.core.handle_invalidate(now, generation);
        watch!(self, w => w.invalidated(&self.core, before, generation));
    }

    /// A new generation was adopted, with `credential` if it came with one
    /// (a server that does not rotate keeps the one it gave before).
    fn adopted(&mut self, credential: Option<Credential>) {
        if credential.is_some() {
            self.credential = credential;
        }
        self.current = self
            .core
            .snapshot()
            .map(|s| (Arc::clone(s.lease.shared_token()), s.lease.generation()));
    }

    /// What the refresher is told when the call the core has started is
    /// made.
    pub(crate) fn refresh_context(&mut self) -> Refresh<T> {
        self.presented = Some(self.credential.clone());
        let generation = self.core.generation();
        Refresh {
            current: self
                .current
                .as_ref()
                .filter(|(_, g)| *g == generation)
                .map(|(token, _)| Arc::clone(token)),
            generation,
            credential: self.credential.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The handle's state at a glance.
    pub(crate) fn status(&self) -> Status {
        let phase = self.core.phase();
        let next_refresh = match phase {
            Phase::Refreshing => None,
            Phase::Idle | Phase::Failed => self
                .core
                .snapshot()
                .map(|s| s.valid_until)
                .filter(|at| *at != Timestamp::MAX),
        };
        Status {
            phase,
            generation: self.core.generation(),
            waiters: self.core.waiters(),
            next_refresh,
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
        #[cfg(feature = "observe")] seen: Option<Option<super::observe::Seen>>,
    ) -> Asked<T, E> {
        if refreshing && matches!(next, Next::Wait) {
            self.notes.push(Note::Joins {
                request: id.0,
                waiters: self.core.waiters(),
            });
        }
        match next {
            Next::Send(lease) => {
                let ticket = Ticket::core(lease);
                #[cfg(feature = "observe")]
                let ticket = match seen.flatten() {
                    Some(seen) => ticket.seen(seen),
                    None => ticket,
                };
                Asked::Send(ticket)
            }
            Next::Fail(error) => Asked::Fail(error),
            Next::Wait => Asked::Wait(self.park(id, send)),
        }
    }

    /// How many waiters the open round has.
    fn waiting(&self) -> usize {
        self.open.as_ref().map_or(0, |r| r.members)
    }

    /// Seats a new waiter in the open round, or opens one. A position a
    /// waiter left is taken again first.
    fn park(&mut self, id: RequestId, send: u32) -> Place<T, E> {
        #[cfg(feature = "observe")]
        let observer = self.watch.as_ref().map(|w| Arc::clone(w.observer()));
        let round = self.open.get_or_insert_with(|| Round {
            first: id.0,
            last: id.0,
            wakers: Vec::new(),
            free: Vec::new(),
            members: 0,
            scan: 0,
            mailbox: Arc::new(Mailbox {
                outcome: OnceCell::new(),
                #[cfg(feature = "observe")]
                observer,
            }),
        });
        let pos = match round.free.pop() {
            Some(pos) => pos,
            None => {
                let pos =
                    u32::try_from(round.wakers.len()).expect("fewer than 2^32 waiters in a round");
                round.wakers.push(None);
                pos
            }
        };
        round.members += 1;
        round.last = id.0;
        Place {
            id,
            pos,
            send,
            mailbox: Arc::clone(&round.mailbox),
            #[cfg(feature = "observe")]
            seen: watch!(self, w => w.waiting_id(id)).flatten(),
        }
    }

    /// The open round, which holds `place` while it waits (its round is
    /// not answered).
    fn round_of(&mut self, place: &Place<T, E>) -> &mut Round<T, E, W> {
        let round = self
            .open
            .as_mut()
            .expect("a waiter that still waits is in the open round");
        debug_assert!(
            Arc::ptr_eq(&round.mailbox, &place.mailbox),
            "a waiter that still waits is in the open round"
        );
        round
    }

    /// The seat of the waiter at `place`, still waiting.
    pub(crate) fn seat(&mut self, place: &Place<T, E>) -> Seat {
        Seat {
            round: self.round_of(place).first,
            pos: place.pos,
        }
    }

    /// The waker slot of the waiter at `place`, still waiting, to set.
    pub(crate) fn waker_mut(&mut self, place: &Place<T, E>) -> &mut Option<W> {
        let round = self.round_of(place);
        let pos = place.pos as usize;
        round.scan = round.scan.min(pos);
        &mut round.wakers[pos]
    }

    /// A waiting waiter's seat and waker, if any has one: the first of the
    /// open round. Amortised O(1): the positions skipped hold no waker, and
    /// a waiter that sets one below the mark moves it back.
    pub(crate) fn first_waker(&mut self) -> Option<(Seat, &W)> {
        let round = self.open.as_mut()?;
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
    pub(crate) fn cancel(&mut self, now: Timestamp, place: &Place<T, E>) -> bool {
        if place.answered() {
            // The round left the board when it was answered, and the core
            // forgot its waiters then.
            #[cfg(feature = "observe")]
            if let (true, Some(id)) = (place.answered_token(), place.seen) {
                watch!(self, w => w.unread(&self.core, id));
            }
            return false;
        }
        let round = self.round_of(place);
        round.wakers[place.pos as usize] = None;
        round.free.push(place.pos);
        round.members -= 1;
        if round.members == 0 {
            self.open = None;
        }
        let waited = self.core.handle_cancel(now, place.id);
        watch!(self, w => w.cancelled(&self.core, place.id));
        waited
    }

    /// Delivers one step's answers: the core answers every waiter of the
    /// open round at once, all with one token or all with one error, so the
    /// round gets that outcome once, its wakers are taken, and it leaves
    /// the board. Returns the outcome and the mailbox to put it in, which
    /// is done last in the step (see `settle`).
    fn deliver(
        &mut self,
        drained: &Drained<T, E>,
        settled: &mut Settled<W>,
    ) -> Option<Letter<T, E>> {
        let first = drained.first.as_ref()?;
        let Some(round) = self.open.take() else {
            debug_assert!(false, "the core answered waiters no round holds");
            return None;
        };
        debug_assert_eq!(
            drained.count, round.members,
            "the core answered part of a round, or more"
        );
        #[cfg(debug_assertions)]
        debug_assert!(
            drained
                .checked
                .iter()
                .all(|&(id, agrees)| agrees && (round.first..=round.last).contains(&id.0)),
            "the core answered a round with more than one outcome, or beyond it"
        );
        let outcome = match first {
            Ok(lease) => Delivered::Token(Arc::clone(lease.shared_token()), lease.generation()),
            // The core fails a round with clones of one error.
            Err(error) => Delivered::Error(error.clone()),
        };
        settled.woken.push(round.wakers);
        Some((round.mailbox, outcome))
    }

    /// After every input: fires the timers that are due, delivers the
    /// core's actions into the mailboxes and publishes the snapshot, all in
    /// the caller's critical section, so that no reader can see a snapshot
    /// older than what the core knows once the lock is released.
    pub(crate) fn settle(&mut self, now: Timestamp, store: Store<'_, T>) -> Settled<W> {
        let mut settled = Settled {
            woken: Vec::new(),
            notes: Vec::new(),
        };
        let mut drained = Drained::new();
        // The input's actions, then each deadline's: drained step by step,
        // so that an observed history has each step's outcomes before the
        // phase it left the core in.
        self.drain(&mut drained);
        // Each call moves the core on (a deadline passed counts the attempt
        // as failed; a back-off that ended starts the next attempt, whose
        // deadline is later than `now`), so this ends.
        while self.core.poll_timeout().is_some_and(|t| t <= now) {
            let in_flight = self.core.in_flight();
            #[cfg(feature = "observe")]
            let before = Before::of(&self.core);
            self.core.handle_timeout(now);
            watch!(self, w => w.timed_out(&self.core, before));
            if let Some(attempt) = in_flight.filter(|a| self.core.in_flight() != Some(*a)) {
                self.notes.push(Note::TimedOut { attempt: attempt.0 });
                self.last_failure = "timed out";
            }
            self.drain(&mut drained);
        }
        let answered = self.deliver(&drained, &mut settled);
        let Drained {
            failed,
            first_error,
            ..
        } = drained;
        debug_assert_eq!(
            self.core.waiters(),
            self.waiting(),
            "the core's waiters are the open round's"
        );
        let phase = self.core.phase();
        let refused = std::mem::take(&mut self.refused);
        if phase == Phase::Failed && self.phase != Phase::Failed {
            let error = match &first_error {
                Some(error) => Described(error).to_string(),
                None => format!("the last attempt: {}", self.last_failure),
            };
            self.notes.push(Note::GaveUp {
                waiters_failed: failed,
                error,
                refused,
            });
        }
        self.phase = phase;
        #[cfg(feature = "observe")]
        let observer = self.watch.as_ref().map(|w| Arc::clone(w.observer()));
        #[cfg(feature = "observe")]
        let mut outbox = observer.as_ref().map(|o| o.outbox());
        self.publish(store);
        #[cfg(feature = "observe")]
        if let (Some(watch), Some(outbox)) = (&mut self.watch, &mut outbox) {
            watch.flush(outbox);
        }
        settled.notes = std::mem::take(&mut self.notes);
        // Last, after the step's events are queued: a waiter that reads its
        // outcome (with no lock) and then reports what it did with it is
        // reported after the step that answered it.
        if let Some((mailbox, outcome)) = answered {
            mailbox.outcome.set(outcome);
        }
        settled
    }

    /// Takes the core's pending actions: notes, and the answers to deliver.
    fn drain(&mut self, drained: &mut Drained<T, E>) {
        while let Some(action) = self.core.poll_action() {
            watch!(self, w => w.action(&self.core, &action));
            match action {
                // The handles run the call that the core names outstanding,
                // which is this one until it ends.
                Action::StartRefresh { attempt } => {
                    self.notes.push(Note::AttemptStarts {
                        attempt: attempt.0,
                        replacing: self.core.generation().0,
                    });
                }
                // The handles drop the abandoned call's future: it is no
                // longer `Core::outstanding_call`.
                Action::AbandonRefresh { attempt } => {
                    self.notes.push(Note::Abandoned { attempt: attempt.0 });
                }
                Action::Resume { id, lease } => drained.answer(id, Ok(lease)),
                Action::Fail { id, error } => {
                    drained.failed += 1;
                    drained.first_error.get_or_insert_with(|| error.clone());
                    drained.answer(id, Err(error));
                }
            }
        }
        watch!(self, w => w.phase(&self.core));
    }

    /// Publishes the core's snapshot for the fast path. It stays valid
    /// until the core's next deadline at the latest, so that the first
    /// request after it takes the slow path and fires the timer, even when
    /// no one waits.
    fn publish(&mut self, store: Store<'_, T>) {
        let clock = &self.clock;
        let deadline = self.core.poll_timeout();
        let snapshot = self.core.snapshot().map(|mut snapshot| {
            if let Some(at) = deadline {
                snapshot.valid_until = snapshot.valid_until.min(at);
            }
            Published {
                deadline: clock.deadline(snapshot.valid_until),
                snapshot: Some(snapshot),
            }
        });
        #[cfg(tokenflight_loom)]
        if let Some(late) = &mut self.late_publish {
            *late = Some(snapshot.map(Arc::new));
            return;
        }
        let key = snapshot
            .as_ref()
            .and_then(|p| p.snapshot.as_ref())
            .map(|s| (s.lease.generation(), s.valid_until));
        let changed = key != self.published;
        self.published = key;
        store(snapshot.map(Arc::new), changed);
    }
}

/// Stores a snapshot only when it changed: the store for a handle whose
/// fast path is never held back.
pub(crate) fn store_changed<T>(
    cell: &SnapshotCell<Published<T>>,
) -> impl FnMut(Option<Arc<Published<T>>>, bool) + '_ {
    move |snapshot, changed| {
        if changed {
            cell.store(snapshot);
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
    if guard.deadline.has_passed(clock) {
        return None;
    }
    Some(Ticket::fast(guard))
}
