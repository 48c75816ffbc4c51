//! What the models share: gates, the models' clock and timer, the count of
//! refresher calls outstanding, and the loom runner with its bound.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use loom::future::AtomicWaker;
use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use loom::sync::Mutex;
use tokenflight::check::{Event, Monitor, Violation};
use tokenflight::core::Mutant;
use tokenflight::{
    Builder, Clock, Config, Fresh, Generation, Handle, HandleError, Refresh, RefreshError, Sleep,
    SleepFuture, Ticket, Timestamp,
};

pub(crate) type Result<T> = std::result::Result<T, HandleError<&'static str>>;

/// The default preemption bound when `LOOM_MAX_PREEMPTIONS` is not set.
/// Each race below needs at most two preemptions to show (a thread
/// interrupted inside one critical section or between two, and the other
/// thread interrupted once on its way back); three leaves a margin. Every
/// model is bounded: unbounded, even the three-thread ones ran for minutes
/// without finishing. Bound 4 passes too (about ten times slower);
/// `TOKENFLIGHT_LOOM_EXHAUSTIVE=1` lifts the bound for a long run by hand.
pub(crate) const PREEMPTIONS: usize = 3;

/// Builds a model's async handle on the model's time (its clock and its
/// timers), judged by `judge`, with `mutant` planted in its core if any.
pub(crate) fn build_on(
    builder: Builder<u64, &'static str>,
    time: &Time,
    judge: &Judge,
    mutant: Option<Mutant>,
) -> Handle<u64, &'static str> {
    let builder = builder
        .clock(time.clock())
        .sleep(time.timer())
        .observe(judge.observer());
    match mutant {
        Some(mutant) => builder.core_mutant(mutant),
        None => builder,
    }
    .build()
    .unwrap()
}

pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none()
        && std::env::var_os("TOKENFLIGHT_LOOM_EXHAUSTIVE").is_none()
    {
        builder.preemption_bound = Some(PREEMPTIONS);
    }
    builder.check(f);
}

/// Runs `f` as a model that must fail, and returns loom's (or the
/// model's) panic message: the planted bug was caught.
pub(crate) fn caught(f: impl Fn() + Sync + Send + 'static) -> String {
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model(f)));
    let payload = failed.expect_err("loom missed the planted bug");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_default()
}

/// Runs the ignored model `test` (a planted bug that makes a waiter hang)
/// in a process of its own, since a deadlock unwinds through loom's
/// threads and aborts, and returns what it printed; it must have failed.
pub(crate) fn fails_alone(test: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "loom missed the planted bug in {test}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

pub(crate) fn token(ticket: Result<Ticket<u64>>) -> (u64, Generation) {
    let ticket = ticket.expect("a token");
    (*ticket.token(), ticket.generation())
}

/// Polls `fut` once: its output if it was ready, `None` (and the future
/// dropped) if it would have waited.
pub(crate) fn first_poll<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let waker = futures::task::noop_waker();
    match fut.as_mut().poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// Polls `fut` once and drops it: a caller that gives up mid-wait.
pub(crate) fn poll_once_then_drop<F: Future>(fut: F) {
    let mut fut = pin!(fut);
    let waker = futures::task::noop_waker();
    let _ = fut.as_mut().poll(&mut Context::from_waker(&waker));
}

/// Holds a refresh until a thread opens it.
pub(crate) struct Gate {
    open: AtomicBool,
    waker: AtomicWaker,
}

impl Gate {
    pub(crate) fn new(open: bool) -> Arc<Self> {
        Arc::new(Gate {
            open: AtomicBool::new(open),
            waker: AtomicWaker::new(),
        })
    }

    pub(crate) fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    pub(crate) fn wait(self: Arc<Self>) -> impl Future<Output = ()> {
        std::future::poll_fn(move |cx| {
            if self.open.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            self.waker.register_by_ref(cx.waker());
            if self.open.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

/// The models' time: it moves only when a model moves it, and the sleeps
/// of [`Timer`] end when it passes their deadlines.
#[derive(Clone)]
pub(crate) struct Time {
    inner: Arc<TimeInner>,
}

struct TimeInner {
    nanos: AtomicU64,
    sleeps: Mutex<Vec<(u64, Waker)>>,
}

impl Time {
    pub(crate) fn new() -> Self {
        Time {
            inner: Arc::new(TimeInner {
                nanos: AtomicU64::new(0),
                sleeps: Mutex::new(Vec::new()),
            }),
        }
    }

    pub(crate) fn clock(&self) -> Clock {
        let inner = Arc::clone(&self.inner);
        Clock::manual(move || {
            let now = inner.nanos.load(Ordering::SeqCst);
            LAST_READ.with(|last| last.set(now));
            Timestamp::from_nanos(now)
        })
    }

    pub(crate) fn timer(&self) -> Timer {
        Timer(self.clone())
    }

    fn now(&self) -> u64 {
        self.inner.nanos.load(Ordering::SeqCst)
    }

    /// Plays the part of real time until `done`: moves time on to the
    /// earliest sleep asked for, again and again, so that every sleep
    /// started ends, however late it was started.
    pub(crate) fn run_until(&self, done: &AtomicBool) {
        while !done.load(Ordering::SeqCst) {
            let next = {
                let sleeps = self.inner.sleeps.lock().unwrap();
                sleeps.iter().map(|(at, _)| *at).min()
            };
            match next {
                Some(at) => self.advance_to(Duration::from_nanos(at)),
                None => loom::thread::yield_now(),
            }
        }
    }

    /// Moves time on to `to` and wakes every sleep that has ended.
    pub(crate) fn advance_to(&self, to: Duration) {
        let to = u64::try_from(to.as_nanos()).unwrap();
        self.inner.nanos.fetch_max(to, Ordering::SeqCst);
        let ended: Vec<Waker> = {
            let mut sleeps = self.inner.sleeps.lock().unwrap();
            let (ended, pending) = sleeps.drain(..).partition(|(at, _)| *at <= to);
            *sleeps = pending;
            ended.into_iter().map(|(_, w)| w).collect()
        };
        ended.into_iter().for_each(Waker::wake);
    }
}

/// A [`Sleep`] on the models' time.
pub(crate) struct Timer(Time);

loom::thread_local! {
    /// The time this thread's handle code last read. A sleep is asked for
    /// as a duration from the handle's `now`; were it counted from the
    /// time of the `sleep` call, a model's tick between the two would push
    /// its end past the model's last tick, where real time would still
    /// come, and the model would hang on a timer no real one would miss.
    static LAST_READ: std::cell::Cell<u64> = std::cell::Cell::new(0);
}

impl Sleep for Timer {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        let time = self.0.clone();
        let until = LAST_READ
            .with(std::cell::Cell::get)
            .saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
        Box::pin(std::future::poll_fn(move |cx| {
            if time.now() >= until {
                return Poll::Ready(());
            }
            time.inner
                .sleeps
                .lock()
                .unwrap()
                .push((until, cx.waker().clone()));
            // Time may have moved on between the check and the push.
            if time.now() >= until {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }))
    }
}

/// Counts the refresher's calls, and how many of them were outstanding at
/// once: a call is out from the moment the refresher is called until its
/// future completes or is dropped, as the token endpoint would see it.
#[derive(Clone, Default)]
pub(crate) struct Calls {
    inner: Arc<CallsInner>,
}

#[derive(Default)]
struct CallsInner {
    made: AtomicU64,
    out: AtomicU64,
    most: AtomicU64,
}

impl Calls {
    pub(crate) fn new() -> Self {
        Calls::default()
    }

    /// Counts a call made now; returns its number (0 for the first) and
    /// the mark that ends it when dropped.
    pub(crate) fn start(&self) -> (u64, Outstanding) {
        let n = self.inner.made.fetch_add(1, Ordering::SeqCst);
        let out = self.inner.out.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.most.fetch_max(out, Ordering::SeqCst);
        (n, Outstanding(Arc::clone(&self.inner)))
    }

    pub(crate) fn made(&self) -> u64 {
        self.inner.made.load(Ordering::SeqCst)
    }

    /// The most calls outstanding at one moment so far.
    pub(crate) fn most_at_once(&self) -> u64 {
        self.inner.most.load(Ordering::SeqCst)
    }
}

/// The answer a model's refresher gives its call number `n` (0 first).
pub(crate) type Answer = fn(u64) -> std::result::Result<Fresh<u64>, RefreshError<&'static str>>;

/// A refresh future of the models' refreshers.
pub(crate) type Call = Pin<
    Box<dyn Future<Output = std::result::Result<Fresh<u64>, RefreshError<&'static str>>> + Send>,
>;

impl Calls {
    /// A refresher whose calls these count, each outstanding until its
    /// future ends: the first waits at `gate` (if any) before it answers,
    /// and call `n` answers `answer(n)`.
    pub(crate) fn refresher(
        &self,
        gate: Option<Arc<Gate>>,
        answer: Answer,
    ) -> impl Fn(Refresh<u64>) -> Call + Send + Sync + 'static {
        let calls = self.clone();
        move |_| {
            let (n, out) = calls.start();
            let gate = gate.clone().filter(|_| n == 0);
            Box::pin(async move {
                let _out = out;
                if let Some(gate) = gate {
                    gate.wait().await;
                }
                answer(n)
            })
        }
    }
}

/// A call's mark: the call is over when this is dropped.
pub(crate) struct Outstanding(Arc<CallsInner>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.out.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A spawner that runs each task on a thread of the model.
pub(crate) fn loom_spawner(task: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) {
    drop(loom::thread::spawn(move || loom::future::block_on(task)));
}

/// The handle's own report of its run (its observer), judged at the end of
/// a model by `check::Monitor`: every safety rule over the whole run, and
/// L1 (every request that arrived has ended). A plain mutex: the report is
/// the test's, not the handle's, and its order is the handle's own.
#[derive(Clone)]
pub(crate) struct Judge {
    events: Arc<std::sync::Mutex<Vec<(Timestamp, Event)>>>,
    config: Config,
}

impl Judge {
    pub(crate) fn new(config: &Config) -> Self {
        Judge {
            events: Arc::default(),
            config: config.clone(),
        }
    }

    pub(crate) fn observer(&self) -> impl Fn(Timestamp, Event) + Send + Sync + 'static {
        let events = Arc::clone(&self.events);
        move |at, event| events.lock().unwrap().push((at, event))
    }

    /// The violations of the run so far, judged as a finished one.
    pub(crate) fn verdict(&self) -> Vec<Violation> {
        let mut monitor = Monitor::of(&self.config);
        for (at, event) in self.events.lock().unwrap().iter() {
            monitor.observe(*at, *event);
        }
        monitor.finish();
        monitor.violations().to_vec()
    }

    /// Waits until every request that arrived has been reported ended. A
    /// handle reports one event at a time: an event queued while another
    /// thread is reporting is reported by that thread, which may still be
    /// at it when the model's own threads are done (the blocking handle's
    /// refresher thread, a driver task). A request that never ends keeps
    /// this waiting, and loom stops the model at its branch limit.
    fn wait_for_reports(&self) {
        loop {
            let open = {
                let events = self.events.lock().unwrap();
                let mut open = std::collections::BTreeSet::new();
                for (_, event) in events.iter() {
                    match event {
                        Event::Arrived { id } => {
                            open.insert(*id);
                        }
                        Event::Completed { id }
                        | Event::Failed { id }
                        | Event::Cancelled { id } => {
                            open.remove(id);
                        }
                        _ => {}
                    }
                }
                open.len()
            };
            if open == 0 {
                return;
            }
            loom::thread::yield_now();
        }
    }

    /// Fails the model, with the handle's history, if the run broke a rule.
    pub(crate) fn assert_clean(&self) {
        self.wait_for_reports();
        let violations = self.verdict();
        if !violations.is_empty() {
            let history: Vec<String> = self
                .events
                .lock()
                .unwrap()
                .iter()
                .map(|(at, event)| format!("{at:?} {event:?}"))
                .collect();
            panic!("{violations:?}\nhistory:\n{}", history.join("\n"));
        }
    }
}
