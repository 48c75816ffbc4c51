//! The handle's own history, as its observer reports it, judged event by
//! event by the checker every other layer uses.

use std::sync::{Arc, Mutex, MutexGuard};

use tokenflight::check::{Event, Monitor, Violation};
use tokenflight::{Config, Timestamp};

/// What the observer of one handle reported, and the [`Monitor`]'s verdict
/// on it so far.
///
/// # Examples
///
/// ```
/// use tokenflight::check::Event;
/// use tokenflight::core::RefreshId;
/// use tokenflight::{Config, Timestamp};
/// use tokenflight_lab::History;
///
/// let history = History::new(&Config::default());
/// let observe = history.observer();
/// observe(Timestamp::ZERO, Event::RefreshStarted { attempt: RefreshId(1) });
/// observe(Timestamp::ZERO, Event::RefreshStarted { attempt: RefreshId(2) });
/// assert_eq!(history.violations().len(), 1);
/// ```
#[derive(Clone)]
pub struct History(Arc<Mutex<Books>>);

struct Books {
    events: Vec<(Timestamp, Event)>,
    monitor: Monitor,
    keep: bool,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let books = self.lock();
        f.debug_struct("History")
            .field("events", &books.events.len())
            .field("violations", &books.monitor.violations().len())
            .finish()
    }
}

impl History {
    /// An empty history, judged with the limits `config` promises.
    pub fn new(config: &Config) -> Self {
        History::with_monitor(Monitor::of(config))
    }

    /// An empty history, judged by `monitor`.
    pub fn with_monitor(monitor: Monitor) -> Self {
        History(Arc::new(Mutex::new(Books {
            events: Vec::new(),
            monitor,
            keep: true,
        })))
    }

    /// Judges the events without keeping them (long runs).
    pub fn forgetful(self) -> Self {
        self.lock().keep = false;
        self
    }

    /// The observer to build the handle with
    /// ([`Builder::observe`](tokenflight::Builder::observe)).
    pub fn observer(&self) -> impl Fn(Timestamp, Event) + Send + Sync + 'static {
        let history = self.clone();
        move |at, event| history.record(at, event)
    }

    /// Records and judges one event.
    pub fn record(&self, at: Timestamp, event: Event) {
        let mut books = self.lock();
        books.monitor.observe(at, event);
        if books.keep {
            books.events.push((at, event));
        }
    }

    /// The events so far (none if [`forgetful`](History::forgetful)).
    pub fn events(&self) -> Vec<(Timestamp, Event)> {
        self.lock().events.clone()
    }

    /// How many events have been kept.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Whether no event has been kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The violations found so far (the first few in detail).
    pub fn violations(&self) -> Vec<Violation> {
        self.lock().monitor.violations().to_vec()
    }

    /// The checker, as it stands.
    pub fn monitor(&self) -> Monitor {
        self.lock().monitor.clone()
    }

    /// Ends the history: judges L1 (every request ended) and returns
    /// every violation. Call it once nothing more can happen.
    pub fn finish(&self) -> Vec<Violation> {
        let mut books = self.lock();
        books.monitor.finish();
        books.monitor.violations().to_vec()
    }

    fn lock(&self) -> MutexGuard<'_, Books> {
        // A panic inside the observer (a failed assertion in a test) must
        // not hide the history from the report that follows.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
