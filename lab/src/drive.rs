//! A run of the real async handle in the lab, step by step, judged after
//! every step: the handle's own history by [`Monitor`](tokenflight::check::Monitor)
//! (S1–S7, S5b), the endpoint's calls by the scripted refresher's books
//! (S1 counted at the endpoint, whatever the handle reports), and, after
//! healing, every request ended (L1).

use std::fmt;
use std::time::Duration;

use tokenflight::check::Violation;
use tokenflight::{Config, Fresh, Handle, RefreshError, Reply as Answered, Timestamp};

use crate::executor::Joined;
use crate::history::History;
use crate::lab::Lab;
use crate::ops::{Lifetime, Op, Reply};
use crate::script::Script;

/// The handle under test: tokens are numbers, errors words.
pub type LabHandle = Handle<u64, &'static str>;

/// How the handle in a run is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Its configuration.
    pub config: Config,
    /// Whether it has a spawner (the lab's): refreshes nobody waits for
    /// run on a driver task; without one, requests drive every call.
    pub spawner: bool,
}

impl Setup {
    /// The lab's usual configuration: a refresh timeout of 100 ms and a
    /// hard limit of 250 ms, short back-offs and cool-down, two attempts
    /// per round, one retry per request, three waiters at most, a refresh
    /// 40–50 ms ahead of expiry and a safety margin of 10 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight_lab::Setup;
    ///
    /// let setup = Setup::small(true);
    /// assert!(setup.spawner);
    /// assert!(tokenflight::core::Core::<u64, ()>::new(setup.config).is_ok());
    /// ```
    pub fn small(spawner: bool) -> Self {
        let ms = Duration::from_millis;
        let mut config = Config::default()
            .with_refresh_timeout(ms(100))
            .with_backoff(ms(20), ms(80))
            .with_cooldown(ms(100))
            .with_max_refresh_attempts(2)
            .with_max_auth_retries(1)
            .with_max_waiters(3)
            .with_expiry_skew(ms(40), ms(10))
            .with_seed(1);
        config.refresh_abandon_after = ms(250);
        config.safety_margin = ms(10);
        Setup { config, spawner }
    }
}

/// What broke, at which step, and the steps that led there.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The step that broke it (the number of steps run before healing, if
    /// it broke while healing).
    pub step: usize,
    /// What broke.
    pub what: String,
    /// The steps, as run.
    pub steps: Vec<Op>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at step {}: {}", self.step, self.what)?;
        for (i, op) in self.steps.iter().enumerate() {
            write!(f, "\n  {i:>3} {op:?}")?;
        }
        Ok(())
    }
}

/// One run: the lab, the scripted endpoint, the handle and its history.
pub struct Drive {
    lab: Lab,
    script: Script<u64, &'static str>,
    history: History,
    handle: Option<LabHandle>,
    /// The requests started and not yet seen to end.
    requests: Vec<Joined<()>>,
    issued: u64,
    steps: Vec<Op>,
    /// The hard limit: a call dropped unanswered sooner, while the handle
    /// lives, lost its answer.
    abandon_after: Duration,
    /// Observer and timer calls made while the handle's lock was held.
    #[cfg(feature = "mutants")]
    under_lock: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl fmt::Debug for Drive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drive")
            .field("now", &self.lab.now())
            .field("steps", &self.steps.len())
            .field("script", &self.script)
            .finish_non_exhaustive()
    }
}

/// How many rounds of healing (answer every call, move to the next
/// deadline) a run gets before a request still running counts as hung.
pub const HEAL_ROUNDS: usize = 200;

impl Drive {
    /// A fresh lab with a handle set up as `setup` says.
    pub fn new(setup: &Setup) -> Self {
        Drive::with_builder(setup, |builder| builder)
    }

    /// As [`new`](Drive::new), with `adjust` applied to the builder last
    /// (a planted bug, another timer).
    pub fn with_builder(
        setup: &Setup,
        adjust: impl FnOnce(
            tokenflight::Builder<u64, &'static str>,
        ) -> tokenflight::Builder<u64, &'static str>,
    ) -> Self {
        let lab = Lab::new();
        let script = Script::new(lab.timers());
        let history = History::new(&setup.config);
        let record = history.observer();
        // The observer is user code: it must never run under the handle's
        // lock. With the planted bugs compiled in, it checks.
        #[cfg(feature = "mutants")]
        let (probe, under_lock) = (
            std::sync::Arc::new(std::sync::OnceLock::<Box<dyn Fn() -> bool + Send + Sync>>::new()),
            std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        );
        #[cfg(feature = "mutants")]
        let record = {
            let (probe, under_lock) = (
                std::sync::Arc::clone(&probe),
                std::sync::Arc::clone(&under_lock),
            );
            move |at, event| {
                if probe.get().is_some_and(|locked| locked()) {
                    under_lock.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                record(at, event);
            }
        };
        // The timer is user code too.
        let sleep = lab.sleep();
        #[cfg(feature = "mutants")]
        let sleep = {
            let (probe, under_lock) = (
                std::sync::Arc::clone(&probe),
                std::sync::Arc::clone(&under_lock),
            );
            move |duration| {
                if probe.get().is_some_and(|locked| locked()) {
                    under_lock.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                tokenflight::Sleep::sleep(&sleep, duration)
            }
        };
        let builder = Handle::builder(script.refresher())
            .config(setup.config.clone())
            .clock(lab.clock())
            .sleep(sleep)
            .observe(record);
        let builder = if setup.spawner {
            builder.spawner(lab.spawner())
        } else {
            builder.without_spawner()
        };
        let handle = adjust(builder).build().expect("the lab's setup is valid");
        #[cfg(feature = "mutants")]
        let _ = probe.set(Box::new(handle.lock_probe()));
        Drive {
            lab,
            script,
            history,
            handle: Some(handle),
            requests: Vec::new(),
            issued: 0,
            steps: Vec::new(),
            abandon_after: setup.config.refresh_abandon_after,
            #[cfg(feature = "mutants")]
            under_lock,
        }
    }

    /// The handle.
    pub fn handle(&self) -> &LabHandle {
        self.handle
            .as_ref()
            .expect("the handle lives until the run ends")
    }

    /// The lab.
    pub fn lab(&mut self) -> &mut Lab {
        &mut self.lab
    }

    /// The scripted endpoint.
    pub fn script(&self) -> &Script<u64, &'static str> {
        &self.script
    }

    /// The handle's history.
    pub fn history(&self) -> &History {
        &self.history
    }

    fn fresh(&mut self, lifetime: Lifetime) -> Fresh<u64> {
        self.issued += 1;
        let fresh = Fresh::new(self.issued);
        match lifetime.duration() {
            Some(d) => fresh.expires_in(d),
            None => fresh,
        }
    }

    /// Runs one step, then everything it woke, and judges.
    ///
    /// # Errors
    ///
    /// The first rule broken so far.
    pub fn step(&mut self, op: Op) -> Result<(), Failure> {
        self.steps.push(op);
        match op {
            Op::Ticket => {
                let handle = self.handle().clone();
                let task = self.lab.spawn(async move {
                    let _ = handle.ticket().await;
                });
                self.requests.push(task);
            }
            Op::Call { rejections } => {
                let handle = self.handle().clone();
                let task = self.lab.spawn(async move {
                    let mut left = rejections;
                    let _ = handle
                        .call(move |_| {
                            let rejected = left > 0;
                            left = left.saturating_sub(1);
                            async move {
                                if rejected {
                                    Answered::Rejected(())
                                } else {
                                    Answered::Done(())
                                }
                            }
                        })
                        .await;
                });
                self.requests.push(task);
            }
            Op::TryTicket => drop(self.handle().try_ticket()),
            Op::Cancel { task } => {
                self.requests.retain(|r| !r.is_done());
                if !self.requests.is_empty() {
                    let index = usize::from(task) % self.requests.len();
                    let request = self.requests.remove(index);
                    self.lab.cancel(request.id());
                }
            }
            Op::Answer {
                call,
                reply,
                delay_ms,
            } => {
                let open: Vec<_> = self
                    .script
                    .pending()
                    .into_iter()
                    .filter(|c| !c.answered)
                    .collect();
                if !open.is_empty() {
                    let id = open[usize::from(call) % open.len()].id;
                    let answer = match reply {
                        Reply::Token(lifetime) => Ok(self.fresh(lifetime)),
                        Reply::Transient => Err(RefreshError::Transient("unavailable")),
                        Reply::Permanent => Err(RefreshError::Permanent("revoked")),
                    };
                    let at = self.lab.now() + Duration::from_millis(u64::from(delay_ms));
                    self.script.answer_at(id, at, answer);
                }
            }
            Op::Advance { ms } => self.lab.advance(Duration::from_millis(u64::from(ms))),
            Op::SetToken { lifetime } => {
                let fresh = self.fresh(lifetime);
                self.handle().set_token(fresh);
            }
            Op::Invalidate => {
                let generation = self.handle().status().generation;
                self.handle().invalidate(generation);
            }
        }
        self.lab.run();
        self.check()
    }

    /// Judges the run so far: no rule broken in the handle's history, and
    /// never two calls live at the endpoint.
    ///
    /// # Errors
    ///
    /// The first rule broken.
    pub fn check(&self) -> Result<(), Failure> {
        if let Some(v) = self.history.violations().first() {
            return Err(self.failure(format!("{v}")));
        }
        let live = self.script.max_live();
        if live > 1 {
            return Err(self.failure(format!(
                "S1 at the endpoint: {live} refresher calls outstanding at once"
            )));
        }
        if self.handle.is_some() {
            let early =
                self.script.drops().into_iter().find(|(_, made, dropped)| {
                    dropped.saturating_since(*made) < self.abandon_after
                });
            if let Some((call, made, dropped)) = early {
                return Err(self.failure(format!(
                    "call {} dropped unanswered at {dropped}, made at {made}: before the hard limit, its answer lost",
                    call.0
                )));
            }
        }
        #[cfg(feature = "mutants")]
        {
            let n = self.under_lock.load(std::sync::atomic::Ordering::SeqCst);
            if n > 0 {
                return Err(self.failure(format!(
                    "user code (the observer, the timer) ran {n} times with the handle's lock held"
                )));
            }
        }
        Ok(())
    }

    /// Heals the world: every call is answered with a long-lived token and
    /// time moves from deadline to deadline, until every request has ended
    /// and no call is outstanding; then judges L1 and ends the history.
    ///
    /// # Errors
    ///
    /// A rule broken while healing, a request still running after
    /// [`HEAL_ROUNDS`] rounds (it would wait forever), or a request the
    /// history never saw end.
    pub fn heal(&mut self) -> Result<(), Failure> {
        for _ in 0..HEAL_ROUNDS {
            for call in self.script.pending() {
                if !call.answered {
                    let fresh = self.fresh(Lifetime::Long);
                    self.script.answer(call.id, Ok(fresh));
                }
            }
            self.lab.run();
            self.check()?;
            self.requests.retain(|r| !r.is_done());
            if self.requests.is_empty() && self.script.live() == 0 {
                break;
            }
            if self.requests.is_empty() {
                // A call no one waits for, on a handle without a spawner, is
                // polled by the next request: send one.
                let handle = self.handle().clone();
                let task = self.lab.spawn(async move {
                    let _ = handle.ticket().await;
                });
                self.requests.push(task);
                self.lab.run();
            }
            let next = self
                .lab
                .next_deadline()
                .filter(|t| *t > self.lab.now())
                .unwrap_or(self.lab.now() + Duration::from_millis(50));
            self.lab.advance_to(next);
            self.check()?;
        }
        self.requests.retain(|r| !r.is_done());
        if !self.requests.is_empty() {
            let n = self.requests.len();
            return Err(self.failure(format!(
                "L1: {n} requests still running after {HEAL_ROUNDS} rounds of healing"
            )));
        }
        // The handle goes: a call it still holds is dropped, and reported.
        self.handle = None;
        self.lab.run();
        let violations: Vec<Violation> = self.history.finish();
        if let Some(v) = violations.first() {
            return Err(self.failure(format!("{v}")));
        }
        self.check()
    }

    fn failure(&self, what: String) -> Failure {
        Failure {
            step: self.steps.len(),
            what,
            steps: self.steps.clone(),
        }
    }

    /// The lab's time now.
    pub fn now(&self) -> Timestamp {
        self.lab.now()
    }
}

/// Runs `ops` on a handle set up as `setup` says, judging after every
/// step, then heals and judges L1.
///
/// # Errors
///
/// The first rule broken, with the steps that led there.
///
/// # Examples
///
/// ```
/// use tokenflight_lab::{drive, Op, Setup};
///
/// for seed in 0..20_u64 {
///     drive::run(&Setup::small(seed.is_multiple_of(2)), &Op::random(seed, 40)).unwrap();
/// }
/// ```
pub fn run(setup: &Setup, ops: &[Op]) -> Result<(), Failure> {
    let mut drive = Drive::new(setup);
    for &op in ops {
        drive.step(op)?;
    }
    drive.heal()
}
