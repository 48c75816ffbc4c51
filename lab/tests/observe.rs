//! The handles report their own history (`Builder::observe`), and the
//! checker every other layer uses judges it: a run of each handle through
//! waits, rejections, a cancelled waiter, a login, an invalidation and an
//! expiry breaks no rule, and the same history doctored in the ways the
//! planted bugs would shows the checker bites.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::oneshot;
use futures::FutureExt;
use tokenflight::check::{Event, Monitor, Rule};
use tokenflight::{blocking, Clock, Config, Fresh, Handle, RefreshError, Reply, Timestamp};

type History = Arc<Mutex<Vec<(Timestamp, Event)>>>;

/// A time the tests move by hand, in milliseconds.
fn manual_clock() -> (Arc<AtomicU64>, Clock) {
    let ms = Arc::new(AtomicU64::new(0));
    let read = Arc::clone(&ms);
    let clock = Clock::manual(move || Timestamp::from_millis(read.load(Ordering::SeqCst)));
    (ms, clock)
}

fn config() -> Config {
    Config::default()
        .with_backoff(Duration::ZERO, Duration::ZERO)
        .with_seed(7)
}

fn recorder(history: &History) -> impl Fn(Timestamp, Event) + Send + Sync + 'static {
    let history = Arc::clone(history);
    move |at, event| history.lock().unwrap().push((at, event))
}

fn judge(config: &Config, history: &[(Timestamp, Event)]) -> Monitor {
    let mut monitor = Monitor::of(config);
    for &(at, event) in history {
        monitor.observe(at, event);
    }
    monitor.finish();
    monitor
}

fn count(history: &[(Timestamp, Event)], pick: impl Fn(&Event) -> bool) -> usize {
    history.iter().filter(|(_, e)| pick(e)).count()
}

/// Runs the async handle through every kind of step and returns its
/// history. Tokens are numbered; the server accepts those at or above its
/// cut-off. A refresh can be held at a gate.
fn async_run() -> Vec<(Timestamp, Event)> {
    let history = History::default();
    let (ms, clock) = manual_clock();
    let issued = Arc::new(AtomicU64::new(0));
    let gate: Arc<Mutex<Option<oneshot::Receiver<()>>>> = Arc::default();
    let (refresh_issued, refresh_gate) = (Arc::clone(&issued), Arc::clone(&gate));
    let handle = Handle::builder(move |_| {
        let n = refresh_issued.fetch_add(1, Ordering::SeqCst) + 1;
        let held = refresh_gate.lock().unwrap().take();
        async move {
            if let Some(held) = held {
                let _ = held.await;
            }
            Ok::<_, RefreshError<()>>(Fresh::new(n).expires_in(Duration::from_secs(10)))
        }
    })
    .config(config())
    .clock(clock)
    .without_timer()
    .without_spawner()
    .observe(recorder(&history))
    .build()
    .unwrap();
    let cutoff = Arc::new(AtomicU64::new(0));
    let call = |handle: &Handle<u64, ()>| {
        let cutoff = Arc::clone(&cutoff);
        futures::executor::block_on(handle.call(move |token: &u64| {
            let accepted = *token >= cutoff.load(Ordering::SeqCst);
            async move {
                if accepted {
                    Reply::Done(())
                } else {
                    Reply::Rejected(())
                }
            }
        }))
    };

    // No token: the first call waits for the refresh.
    call(&handle).unwrap();
    // The fast path, and `ticket` on a usable token.
    drop(handle.try_ticket().unwrap());
    drop(futures::executor::block_on(handle.ticket()).unwrap());
    // The server rejects token 1: one refresh, and the call is sent again.
    cutoff.store(2, Ordering::SeqCst);
    call(&handle).unwrap();
    // A waiter that goes away while its refresh is held.
    let (open, held) = oneshot::channel();
    *gate.lock().unwrap() = Some(held);
    handle.invalidate(handle.status().generation);
    assert!(handle.ticket().now_or_never().is_none(), "held at the gate");
    open.send(()).unwrap();
    call(&handle).unwrap();
    // A login, then the token expires.
    handle.set_token(Fresh::new(100).expires_in(Duration::from_secs(10)));
    call(&handle).unwrap();
    ms.fetch_add(20_000, Ordering::SeqCst);
    call(&handle).unwrap();
    drop(handle);
    let history = history.lock().unwrap().clone();
    history
}

#[test]
fn an_observed_async_handle_breaks_no_rule() {
    let history = async_run();
    let monitor = judge(&config(), &history);
    assert_eq!(monitor.violations(), &[], "{history:#?}");
    let started = count(&history, |e| matches!(e, Event::RefreshStarted { .. }));
    let ended = count(&history, |e| {
        matches!(e, Event::RefreshEnded { ok: true, .. })
    });
    assert_eq!((started, ended), (4, 4), "{history:#?}");
    for (what, pick) in [
        (
            "a wait",
            (|e: &Event| matches!(e, Event::Waiting { .. })) as fn(&Event) -> bool,
        ),
        ("a rejection", |e| matches!(e, Event::Rejected { .. })),
        ("a cancelled waiter", |e| {
            matches!(e, Event::Cancelled { .. })
        }),
        ("an invalidation", |e| {
            matches!(e, Event::Invalidated { .. })
        }),
        ("a login", |e| {
            matches!(e, Event::NewGeneration { from: None, .. })
        }),
        ("a phase change", |e| {
            matches!(e, Event::PhaseChanged { .. })
        }),
    ] {
        assert!(count(&history, pick) > 0, "no {what} in {history:#?}");
    }
    let arrived = count(&history, |e| matches!(e, Event::Arrived { .. }));
    let ended = count(&history, |e| {
        matches!(
            e,
            Event::Completed { .. } | Event::Failed { .. } | Event::Cancelled { .. }
        )
    });
    assert_eq!((arrived, ended), (8, 8), "one outcome per request");
}

#[test]
fn the_checker_bites_on_a_doctored_handle_history() {
    let history = async_run();
    let started = history
        .iter()
        .position(|(_, e)| matches!(e, Event::RefreshStarted { .. }))
        .unwrap();

    // A second call while the first is outstanding (S1).
    let mut twice = history.clone();
    let (at, _) = twice[started];
    twice.insert(
        started + 1,
        (
            at,
            Event::RefreshStarted {
                attempt: tokenflight::core::RefreshId(99),
            },
        ),
    );
    assert_eq!(
        judge(&config(), &twice).first_violation().map(|v| v.rule),
        Some(Rule::S1)
    );

    // A request that never ends (L1).
    let mut hung = history.clone();
    let last = hung
        .iter()
        .rposition(|(_, e)| matches!(e, Event::Completed { .. }))
        .unwrap();
    hung.remove(last);
    let monitor = judge(&config(), &hung);
    assert_eq!(monitor.count(Rule::L1), 1, "{:?}", monitor.violations());

    // A request sent before the token it carries exists (S5).
    let mut early = history.clone();
    let sent = early
        .iter()
        .position(|(_, e)| matches!(e, Event::Sent { .. }))
        .unwrap();
    let send = early.remove(sent);
    early.insert(started, send);
    assert!(judge(&config(), &early).count(Rule::S5) > 0);
}

#[test]
fn an_observed_blocking_handle_breaks_no_rule() {
    let history = History::default();
    let (ms, clock) = manual_clock();
    let issued = AtomicU64::new(0);
    let handle = blocking::Handle::builder(move |_| {
        let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
        Ok::<_, RefreshError<()>>(Fresh::new(n).expires_in(Duration::from_secs(10)))
    })
    .config(config())
    .clock(clock)
    .observe(recorder(&history))
    .build()
    .unwrap();
    let cutoff = AtomicU64::new(0);
    let call = |handle: &blocking::Handle<u64, ()>| {
        handle.call(|token: &u64| {
            if *token >= cutoff.load(Ordering::SeqCst) {
                Reply::Done(())
            } else {
                Reply::Rejected(())
            }
        })
    };
    call(&handle).unwrap();
    drop(handle.try_ticket().unwrap());
    cutoff.store(2, Ordering::SeqCst);
    call(&handle).unwrap();
    handle.invalidate(handle.status().generation);
    call(&handle).unwrap();
    handle.set_token(Fresh::new(100).expires_in(Duration::from_secs(10)));
    call(&handle).unwrap();
    ms.fetch_add(20_000, Ordering::SeqCst);
    call(&handle).unwrap();

    // The refresher's thread may still be reporting the last step's events
    // when the call returns: wait (boundedly) until every request ended.
    let mut monitor = Monitor::of(&config());
    let mut seen = 0;
    for _ in 0..1_000_000 {
        let log = history.lock().unwrap();
        for &(at, event) in &log[seen..] {
            monitor.observe(at, event);
        }
        seen = log.len();
        drop(log);
        if monitor.live_requests() == 0 && monitor.waiting() == 0 {
            break;
        }
        std::thread::yield_now();
    }
    monitor.finish();
    let history = history.lock().unwrap().clone();
    assert_eq!(monitor.violations(), &[], "{history:#?}");
    let started = count(&history, |e| matches!(e, Event::RefreshStarted { .. }));
    assert_eq!(started, 4, "{history:#?}");
}
