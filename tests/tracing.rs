//! What the handles report through `tracing`: a small subscriber of our own
//! records every event with its fields, and the tests check that refreshes
//! are reported from start to end, that failures warn, and that no field of
//! any event ever holds the token.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::channel::oneshot;
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use tokenflight::{blocking, Clock, Config, Fresh, Handle, RefreshError, Timestamp};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// A token no event may contain.
const SECRET: &str = "SECRET-tok-4f2a";

/// One recorded event: its level and every field, the message included, as
/// text.
#[derive(Debug, Clone)]
struct Recorded {
    level: Level,
    fields: Vec<(String, String)>,
}

impl Recorded {
    fn message(&self) -> &str {
        self.field("message").unwrap_or("")
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Records every event (at every level) on the thread it is the default
/// subscriber of.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Recorded>>>);

impl Capture {
    fn events(&self) -> Vec<Recorded> {
        self.0.lock().unwrap().clone()
    }

    /// The events whose message starts with `prefix`.
    fn with_message(&self, prefix: &str) -> Vec<Recorded> {
        self.events()
            .into_iter()
            .filter(|e| e.message().starts_with(prefix))
            .collect()
    }

    fn assert_no_token(&self) {
        let events = self.events();
        assert!(!events.is_empty());
        for event in events {
            for (name, value) in &event.fields {
                assert!(!value.contains(SECRET), "field {name} holds the token");
            }
        }
    }
}

struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .push((field.name().to_string(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_string(), value.to_string()));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(Recorded {
            level: *event.metadata().level(),
            fields: fields.0,
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

fn config() -> Config {
    let mut config = Config::default();
    config.backoff_initial = Duration::ZERO;
    config.backoff_max = Duration::ZERO;
    config.max_refresh_attempts = 1;
    config
}

#[test]
fn a_refresh_is_reported_from_start_to_end_without_the_token() {
    let capture = Capture::default();
    let (answer, answered) = oneshot::channel::<()>();
    let answered = Mutex::new(Some(answered));
    let handle = Handle::builder(move |_| {
        let answered = answered.lock().unwrap().take();
        async move {
            if let Some(answered) = answered {
                let _ = answered.await;
            }
            Ok::<_, RefreshError<()>>(Fresh::new(SECRET.to_string()))
        }
    })
    .config(config())
    .without_timer()
    .build()
    .unwrap();
    tracing::subscriber::with_default(capture.clone(), || {
        let mut pool = LocalPool::new();
        // Two requests: the first starts the refresh, the second joins it.
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let handle = handle.clone();
                let ticket = async move { handle.ticket().await.map(|t| t.generation()) };
                pool.spawner().spawn_local_with_handle(ticket).unwrap()
            })
            .collect();
        pool.run_until_stalled();
        answer.send(()).unwrap();
        pool.run_until(futures::future::join_all(waiters));
        // Both tickets of generation 1 rejected: the first refreshes, the
        // second is stale and answered without a refresh.
        pool.run_until(async {
            let first = handle.ticket().await.unwrap();
            let stale = handle.ticket().await.unwrap();
            handle.reject(first).await.unwrap();
            handle.reject(stale).await.unwrap();
        });
    });

    let starts = capture.with_message("refresh attempt starts");
    let replaced: Vec<_> = starts.iter().map(|e| e.field("replacing")).collect();
    assert_eq!(replaced, [Some("0"), Some("1")]);
    assert!(starts.iter().all(|e| e.level == Level::DEBUG));
    let ends = capture.with_message("refresh attempt ends: token adopted");
    let generations: Vec<_> = ends.iter().map(|e| e.field("generation")).collect();
    assert_eq!(generations, [Some("1"), Some("2")]);
    let attempts: Vec<_> = ends.iter().map(|e| e.field("attempt")).collect();
    assert_eq!(attempts, [Some("1"), Some("2")]);
    let joins = capture.with_message("request joins the refresh under way");
    assert_eq!(joins.len(), 1);
    assert_eq!(joins[0].level, Level::TRACE);
    let stale = capture.with_message("stale rejection answered");
    assert_eq!(stale.len(), 1);
    assert_eq!(
        (stale[0].field("rejected"), stale[0].field("generation")),
        (Some("1"), Some("2"))
    );
    assert!(
        capture.with_message("token refresh").is_empty(),
        "no warning"
    );
    capture.assert_no_token();
}

#[test]
fn giving_up_and_a_permanent_failure_warn_once() {
    let capture = Capture::default();
    let calls = Arc::new(Mutex::new(0));
    let c = Arc::clone(&calls);
    let mut config = config();
    config.cooldown = Duration::ZERO;
    let handle = blocking::Handle::new(config, move |_| {
        let mut calls = c.lock().unwrap();
        *calls += 1;
        match *calls {
            1 => Err(RefreshError::Transient("connection reset")),
            2 => Ok(Fresh::new(SECRET.to_string())),
            _ => Err(RefreshError::Permanent("invalid_grant")),
        }
    })
    .unwrap();
    tracing::subscriber::with_default(capture.clone(), || {
        assert!(handle.ticket().is_err(), "the only attempt failed");
        let ticket = handle.ticket().unwrap();
        assert!(handle.reject(ticket).is_err(), "refused for good");
    });

    let ends = capture.with_message("refresh attempt ends without a token");
    let outcomes: Vec<_> = ends.iter().map(|e| e.field("outcome")).collect();
    assert_eq!(outcomes, [Some("transient error"), Some("permanent error")]);
    let warnings: Vec<_> = capture
        .events()
        .into_iter()
        .filter(|e| e.level == Level::WARN)
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].message().starts_with("token refresh gave up"));
    assert_eq!(warnings[0].field("waiters_failed"), Some("1"));
    assert_eq!(
        warnings[0].field("error"),
        Some("token refresh is failing, retry later: the refresher's error")
    );
    assert!(warnings[1]
        .message()
        .starts_with("token refresh refused for good"));
    assert_eq!(
        warnings[1].field("error"),
        Some("token refresh was refused, a new login is needed: the refresher's error")
    );
    capture.assert_no_token();
}

/// A blocking handle on a manual clock whose first refresh blocks until the
/// test answers it (with `late`); later refreshes answer the secret at once.
fn stuck_first_refresh(
    max_refresh_attempts: u32,
) -> (
    blocking::Handle<String, ()>,
    Arc<AtomicU64>,
    mpsc::Receiver<()>,
    mpsc::Sender<String>,
) {
    let now = Arc::new(AtomicU64::new(0));
    let n = Arc::clone(&now);
    let clock = Clock::manual(move || Timestamp::from_nanos(n.load(Ordering::SeqCst)));
    let mut config = config();
    config.max_refresh_attempts = max_refresh_attempts;
    config.refresh_timeout = Duration::from_secs(10);
    config.cooldown = Duration::from_secs(3600);
    let (started_tx, started) = mpsc::channel();
    let (answer, answer_rx) = mpsc::channel::<String>();
    let answer_rx = Mutex::new(answer_rx);
    let calls = AtomicU64::new(0);
    let handle = blocking::Handle::builder(move |_| {
        if calls.fetch_add(1, Ordering::SeqCst) > 0 {
            return Ok(Fresh::new(SECRET.to_string()));
        }
        started_tx.send(()).unwrap();
        Ok(Fresh::new(answer_rx.lock().unwrap().recv().unwrap()))
    })
    .config(config)
    .clock(clock)
    .build()
    .unwrap();
    (handle, now, started, answer)
}

/// Runs `f` on a thread of its own that reports to `capture`.
fn spawn_captured<R: Send + 'static>(
    capture: &Capture,
    f: impl FnOnce() -> R + Send + 'static,
) -> std::thread::JoinHandle<R> {
    let capture = capture.clone();
    std::thread::spawn(move || tracing::subscriber::with_default(capture, f))
}

/// Waits (boundedly) until `capture` has an event whose message starts
/// with `prefix`: the blocking handle's thread reports a late answer on its
/// own time.
fn wait_for(capture: &Capture, prefix: &str) {
    for _ in 0..10_000 {
        if !capture.with_message(prefix).is_empty() {
            return;
        }
        std::thread::park_timeout(Duration::from_millis(1));
    }
}

#[test]
fn a_late_answer_is_reported_adopted_or_ignored() {
    // Adopted: the only attempt times out, the round gives up (a warning
    // naming the timeout), then the stuck refresher answers.
    let capture = Capture::default();
    let (handle, now, started, answer) = stuck_first_refresh(1);
    let h = handle.clone();
    let stuck = spawn_captured(&capture, move || h.ticket().is_err());
    started.recv().unwrap();
    now.store(10_000_000_000, Ordering::SeqCst);
    tracing::subscriber::with_default(capture.clone(), || {
        assert!(handle.ticket().is_err(), "timed out");
    });
    answer.send(format!("{SECRET}-late")).unwrap();
    assert!(stuck.join().unwrap());
    wait_for(&capture, "late refresh answer");
    let timed_out = capture.with_message("refresh attempt ends: timed out");
    assert_eq!(timed_out.len(), 1);
    let warning = capture.with_message("token refresh gave up");
    assert_eq!(warning.len(), 1);
    assert_eq!(
        warning[0].field("error"),
        Some("token refresh is failing, retry later: refresh attempt timed out")
    );
    assert_eq!(warning[0].field("waiters_failed"), Some("2"));
    let adopted = capture.with_message("late refresh answer adopted");
    assert_eq!(adopted.len(), 1);
    assert_eq!(
        (adopted[0].field("attempt"), adopted[0].field("generation")),
        (Some("1"), Some("1"))
    );
    capture.assert_no_token();

    // Ignored: a login replaced the token while the call was out (one call
    // at a time: no attempt starts beside it); its answer, for the older
    // token, only ends the call.
    let capture = Capture::default();
    let (handle, _now, started, answer) = stuck_first_refresh(2);
    let h = handle.clone();
    let stuck = spawn_captured(&capture, move || h.ticket().map(|t| t.generation().0));
    started.recv().unwrap();
    tracing::subscriber::with_default(capture.clone(), || {
        handle.set_token(Fresh::new(format!("{SECRET}-login")));
    });
    assert_eq!(stuck.join().unwrap(), Ok(1));
    answer.send(format!("{SECRET}-late")).unwrap();
    wait_for(&capture, "late refresh answer");
    assert!(capture
        .with_message("refresh attempt ends: token adopted")
        .is_empty());
    let ignored = capture.with_message("late refresh answer ignored");
    assert_eq!(ignored.len(), 1);
    assert_eq!(ignored[0].field("attempt"), Some("1"));
    assert_eq!(handle.try_ticket().unwrap().generation().0, 1);
    capture.assert_no_token();
}

/// A subscriber that, on every event, asks `handle` something that takes
/// its lock: if an event were emitted under the lock, it would deadlock.
struct Reentering {
    handle: Arc<OnceLock<blocking::Handle<String, ()>>>,
    seen: Arc<AtomicU64>,
}

impl Subscriber for Reentering {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {
        if let Some(handle) = self.handle.get() {
            let _ = handle.waiters();
            self.seen.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Runs `f` on a thread of its own and fails if it does not end in time:
/// a deadlock fails the test instead of hanging it.
fn bounded<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("stalled: user code ran under the handle's lock, or a timer stopped")
}

#[test]
fn a_subscriber_may_call_the_handle_back() {
    let seen = bounded(|| {
        let cell = Arc::new(OnceLock::new());
        let seen = Arc::new(AtomicU64::new(0));
        let subscriber = Reentering {
            handle: Arc::clone(&cell),
            seen: Arc::clone(&seen),
        };
        let handle = blocking::Handle::new(config(), |_| {
            Ok::<_, RefreshError<()>>(Fresh::new(SECRET.to_string()))
        })
        .unwrap();
        cell.set(handle.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let ticket = handle.ticket().unwrap();
            handle.reject(ticket).unwrap();
        });
        seen.load(Ordering::SeqCst)
    });
    assert!(
        seen >= 2,
        "the subscriber saw the refreshes ({seen} events)"
    );
}

#[test]
fn a_clock_may_call_the_handle_back() {
    let reads = bounded(|| {
        let cell: Arc<OnceLock<blocking::Handle<String, ()>>> = Arc::new(OnceLock::new());
        let reads = Arc::new(AtomicU64::new(0));
        let (c, r) = (Arc::clone(&cell), Arc::clone(&reads));
        let clock = Clock::manual(move || {
            if let Some(handle) = c.get() {
                let _ = handle.waiters();
                r.fetch_add(1, Ordering::SeqCst);
            }
            Timestamp::ZERO
        });
        let handle = blocking::Handle::builder(|_| {
            Ok::<_, RefreshError<()>>(Fresh::new(SECRET.to_string()))
        })
        .config(config())
        .clock(clock)
        .build()
        .unwrap();
        cell.set(handle.clone()).unwrap();
        let ticket = handle.ticket().unwrap();
        handle.reject(ticket).unwrap();
        reads.load(Ordering::SeqCst)
    });
    assert!(reads >= 2);
}

#[test]
fn a_panicking_timer_warns_once() {
    let capture = Capture::default();
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    let mut config = config();
    config.backoff_initial = Duration::from_millis(1);
    config.backoff_max = Duration::from_millis(1);
    config.max_refresh_attempts = 3;
    let handle = Handle::builder(move |_| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 2 {
                Err(RefreshError::Transient(()))
            } else {
                Ok(Fresh::new(SECRET.to_string()))
            }
        }
    })
    .config(config)
    .sleep(|_d: Duration| -> std::future::Ready<()> { panic!("no timer here") })
    .build()
    .unwrap();
    let c = capture.clone();
    let got = bounded(move || {
        tracing::subscriber::with_default(c, || {
            futures::executor::block_on(handle.ticket()).map(|t| t.generation().0)
        })
    });
    assert_eq!(got, Ok(1));
    let warnings = capture.with_message("the handle's timer panicked");
    assert_eq!(warnings.len(), 1, "two back-offs, one warning");
    assert_eq!(warnings[0].level, Level::WARN);
}
