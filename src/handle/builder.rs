//! How an async [`Handle`] is configured: [`Handle::builder`].

use std::sync::{Arc, Weak};

use super::shared::{Refresher, Shared, State};
use super::sleep::Sleep;
use super::spawn::Spawn;
use super::waiter::{Beacon, Withhold};
use super::Handle;
use crate::front::{self, Setup};
use crate::sync::{Mutex, SnapshotCell};
use crate::{BuildError, Clock, Config};

/// Configures an async [`Handle`]; made by [`Handle::builder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::{Clock, Config, Fresh, Handle, RefreshError, Timestamp};
///
/// let handle = Handle::builder(|_| async {
///     Ok::<_, RefreshError<()>>(Fresh::new("tok").expires_in(Duration::from_secs(3600)))
/// })
/// .config(Config::default().with_backoff(Duration::ZERO, Duration::ZERO))
/// .clock(Clock::manual(|| Timestamp::ZERO))
/// .without_timer()
/// .build()
/// .unwrap();
/// # drop(handle);
/// ```
pub struct Builder<T, E> {
    refresher: Refresher<T, E>,
    setup: Setup,
    sleep: Option<Option<Arc<dyn Sleep>>>,
    spawner: Option<Option<Arc<dyn Spawn>>>,
    #[cfg(feature = "mutants")]
    mutant: Option<super::Mutant>,
    #[cfg(tokenflight_loom)]
    late_publish: bool,
}

impl<T, E> std::fmt::Debug for Builder<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.setup.config)
            .field("clock", &self.setup.clock)
            .field("timer", &!matches!(self.sleep, Some(None)))
            .field("spawner", &!matches!(self.spawner, Some(None)))
            .finish_non_exhaustive()
    }
}

impl<T, E> Builder<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    pub(super) fn new(refresher: Refresher<T, E>) -> Self {
        Builder {
            refresher,
            setup: Setup::default(),
            sleep: None,
            spawner: None,
            #[cfg(feature = "mutants")]
            mutant: None,
            #[cfg(tokenflight_loom)]
            late_publish: false,
        }
    }

    /// The core's configuration ([`Config::default`] if not set).
    pub fn config(mut self, config: Config) -> Self {
        self.setup.config = config;
        self
    }

    /// Where time comes from ([`Clock::system`] if not set).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.setup.clock = Some(clock);
        self
    }

    /// Where timers come from: by default `TokioSleep`
    /// under the `tokio` feature, [`ThreadSleep`](crate::ThreadSleep)
    /// otherwise. A timer that panics is replaced by `ThreadSleep` (and a
    /// warning logged once).
    pub fn sleep(mut self, sleep: impl Sleep) -> Self {
        self.sleep = Some(Some(Arc::new(sleep)));
        self
    }

    /// No timers at all: the refresh timeout is then not enforced (the
    /// refresher must bound its own time), and the configuration must not
    /// back off (`backoff_initial` zero), or [`build`](Builder::build) fails
    /// with [`BuildError::TimerRequired`] rather than let waiters hang.
    pub fn without_timer(mut self) -> Self {
        self.sleep = Some(None);
        self
    }

    /// Where a refresher call no request waits for runs (a refresh ahead
    /// of expiry, an `invalidate`): on a task of this executor. By default,
    /// under the `tokio` feature, `TokioSpawn` (the
    /// runtime the handle is used in, if any); otherwise none, and the
    /// request that starts such a call makes it and the next request polls
    /// it on (see the module docs).
    pub fn spawner(mut self, spawner: impl Spawn) -> Self {
        self.spawner = Some(Some(Arc::new(spawner)));
        self
    }

    /// No driver task, even under tokio: requests drive every call.
    pub fn without_spawner(mut self) -> Self {
        self.spawner = Some(None);
        self
    }

    /// Reports every step of the handle's own run to `observer`, as the
    /// [`check::Event`](crate::check::Event)s that
    /// [`check::Monitor`](crate::check::Monitor) judges: requests arriving,
    /// sent, waiting, rejected and ending (a ticket that goes without being
    /// rejected counts as completed), each refresher call from the moment
    /// the refresher is called until its future completes or is dropped,
    /// new tokens, invalidations, phase changes. Each is stamped with the
    /// handle's [`Clock`].
    ///
    /// The observer is never called with the handle's lock held: a step's
    /// events are reported once the lock is released, in the order they
    /// happened, one at a time, and the observer may call the handle.
    /// Only with the `observe` feature; without it none of this is
    /// compiled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use tokenflight::check::{Event, Monitor};
    /// use tokenflight::{Config, Fresh, Handle, RefreshError, Reply};
    ///
    /// let config = Config::default();
    /// let monitor = Arc::new(Mutex::new(Monitor::of(&config)));
    /// let judge = Arc::clone(&monitor);
    /// let handle = Handle::builder(|_| async { Ok::<_, RefreshError<()>>(Fresh::new("tok")) })
    ///     .config(config)
    ///     .observe(move |at, event: Event| judge.lock().unwrap().observe(at, event))
    ///     .build()
    ///     .unwrap();
    /// let answer = futures::executor::block_on(handle.call(|_| async { Reply::Done(()) }));
    /// assert!(answer.is_ok());
    /// let mut monitor = monitor.lock().unwrap();
    /// monitor.finish();
    /// assert_eq!(monitor.violations(), &[]);
    /// ```
    #[cfg(feature = "observe")]
    pub fn observe(
        mut self,
        observer: impl Fn(crate::Timestamp, crate::check::Event) + Send + Sync + 'static,
    ) -> Self {
        self.setup.observer = Some(Arc::new(observer));
        self
    }

    /// A deliberately broken variant of the handle, for the checkers that
    /// must catch it.
    #[cfg(feature = "mutants")]
    #[doc(hidden)]
    pub fn mutant(mut self, mutant: super::Mutant) -> Self {
        self.mutant = Some(mutant);
        self
    }

    /// The deliberately broken variant the loom suite must catch: the
    /// snapshot is stored after the lock is released.
    #[cfg(tokenflight_loom)]
    #[doc(hidden)]
    pub fn late_publish(mut self) -> Self {
        self.late_publish = true;
        self
    }

    /// A handle whose core has a planted bug, for showing that the
    /// checkers of the handles catch it.
    #[cfg(feature = "mutants")]
    #[doc(hidden)]
    pub fn core_mutant(mut self, mutant: crate::core::Mutant) -> Self {
        self.setup.core_mutant = Some(mutant);
        self
    }

    /// The handle.
    ///
    /// # Errors
    ///
    /// [`BuildError::Config`] for a configuration that cannot work;
    /// [`BuildError::TimerRequired`] for one that backs off without a timer.
    pub fn build(self) -> Result<Handle<T, E>, BuildError> {
        let sleep = match self.sleep {
            None => Some(default_sleep()),
            Some(sleep) => sleep,
        };
        if sleep.is_none() && front::needs_timer(&self.setup.config) {
            return Err(BuildError::TimerRequired);
        }
        let spawner = self.spawner.unwrap_or_else(default_spawner);
        #[allow(unused_mut)]
        let mut made = self.setup.make()?;
        #[cfg(tokenflight_loom)]
        if self.late_publish {
            made.board.late_publish = Some(None);
        }
        let refresher = self.refresher;
        let shared = Arc::new_cyclic(|this: &Weak<Shared<T, E>>| Shared {
            snapshot: SnapshotCell::empty(),
            clock: made.clock,
            refresher,
            sleep,
            spawner,
            beacon: Arc::new(Beacon::new(this.clone() as Weak<dyn Withhold>)),
            state: Mutex::new(State::new(made.board)),
            this: this.clone(),
            #[cfg(feature = "observe")]
            observer: made.observer,
            #[cfg(feature = "mutants")]
            mutant: self.mutant,
        });
        Ok(Handle { shared })
    }
}

/// The timer a handle gets when none is chosen.
fn default_sleep() -> Arc<dyn Sleep> {
    #[cfg(feature = "tokio")]
    return Arc::new(super::sleep::TokioSleep);
    #[cfg(not(feature = "tokio"))]
    Arc::new(super::sleep::ThreadSleep)
}

/// The spawner a handle gets when none is chosen.
fn default_spawner() -> Option<Arc<dyn Spawn>> {
    #[cfg(feature = "tokio")]
    return Some(Arc::new(crate::TokioSpawn));
    #[cfg(not(feature = "tokio"))]
    None
}
