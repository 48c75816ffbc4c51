//! How a blocking [`Handle`] is configured: [`Handle::builder`].

use std::sync::Arc;

use super::{Handle, Refresher, Shared, State};
use crate::front::Setup;
use crate::sync::{Condvar, Mutex, SnapshotCell};
use crate::{BuildError, Clock, Config};

/// Configures a blocking [`Handle`]; made by [`Handle::builder`].
///
/// # Examples
///
/// ```
/// use tokenflight::{blocking, Clock, Fresh, RefreshError, Timestamp};
///
/// let handle = blocking::Handle::builder(|_| Ok::<_, RefreshError<()>>(Fresh::new(1)))
///     .clock(Clock::manual(|| Timestamp::ZERO))
///     .build()
///     .unwrap();
/// # drop(handle);
/// ```
pub struct Builder<T, E> {
    pub(super) refresher: Refresher<T, E>,
    pub(super) setup: Setup,
}

impl<T, E> std::fmt::Debug for Builder<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("blocking::Builder")
            .field("config", &self.setup.config)
            .field("clock", &self.setup.clock)
            .finish_non_exhaustive()
    }
}

impl<T, E> Builder<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
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

    /// A handle whose core has a planted bug, for showing that the
    /// checkers of the handles catch it.
    #[cfg(feature = "mutants")]
    #[doc(hidden)]
    pub fn core_mutant(mut self, mutant: crate::core::Mutant) -> Self {
        self.setup.core_mutant = Some(mutant);
        self
    }

    /// Reports every step of the handle's own run to `observer`, as the
    /// [`check::Event`](crate::check::Event)s that
    /// [`check::Monitor`](crate::check::Monitor) judges, stamped with the
    /// handle's [`Clock`]; see [`Builder::observe`](crate::Builder::observe)
    /// of the async handle. A refresher call is outstanding from the moment
    /// the refresher is called until it returns. Never called with the
    /// handle's lock held. Only with the `observe` feature.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use tokenflight::check::{Event, Monitor};
    /// use tokenflight::{blocking, Config, Fresh, RefreshError, Reply};
    ///
    /// let config = Config::default();
    /// let monitor = Arc::new(Mutex::new(Monitor::of(&config)));
    /// let judge = Arc::clone(&monitor);
    /// let handle = blocking::Handle::builder(|_| Ok::<_, RefreshError<()>>(Fresh::new("tok")))
    ///     .config(config)
    ///     .observe(move |at, event: Event| judge.lock().unwrap().observe(at, event))
    ///     .build()
    ///     .unwrap();
    /// assert!(handle.call(|_| Reply::Done(())).is_ok());
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

    /// The handle.
    ///
    /// # Errors
    ///
    /// [`BuildError::Config`] for a configuration that cannot work.
    pub fn build(self) -> Result<Handle<T, E>, BuildError> {
        let made = self.setup.make()?;
        Ok(Handle {
            shared: Arc::new(Shared {
                snapshot: SnapshotCell::empty(),
                clock: made.clock,
                refresher: self.refresher,
                state: Mutex::new(State {
                    board: made.board,
                    sent: None,
                    worker: None,
                }),
                changed: Condvar::new(),
                #[cfg(feature = "observe")]
                observer: made.observer,
            }),
        })
    }
}
