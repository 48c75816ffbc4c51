//! The blocking handle on plain threads. A fake in-process server issues
//! numbered tokens and rejects those older than its cut-off; its refresh can
//! be held at a gate so that threads pile up behind it. No test looks at the
//! clock: threads are released by conditions, never by sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use tokenflight::{
    blocking::Handle, Clock, Config, Error, Fault, Fresh, HandleError, RefreshError,
    RefreshFailure, Reply, Timestamp,
};

type Outcome = Result<u64, HandleError<&'static str>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Issue,
    Panic,
    Refuse,
}

struct Server {
    issued: AtomicU64,
    cutoff: AtomicU64,
    refreshes: AtomicU64,
    mode: Mutex<Mode>,
    /// While `true`, refreshes block.
    gate: Mutex<bool>,
    gate_changed: Condvar,
}

impl Server {
    fn new() -> Arc<Self> {
        Arc::new(Server {
            issued: AtomicU64::new(0),
            cutoff: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            mode: Mutex::new(Mode::Issue),
            gate: Mutex::new(false),
            gate_changed: Condvar::new(),
        })
    }

    fn expire(&self) {
        self.cutoff
            .store(self.issued.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
    }

    fn set_gate(&self, closed: bool) {
        *self.gate.lock().unwrap() = closed;
        self.gate_changed.notify_all();
    }

    fn refresh(&self) -> Result<Fresh<u64>, RefreshError<&'static str>> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let mut closed = self.gate.lock().unwrap();
        while *closed {
            closed = self.gate_changed.wait(closed).unwrap();
        }
        drop(closed);
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Issue => Ok(Fresh::new(self.issued.fetch_add(1, Ordering::SeqCst) + 1)),
            Mode::Panic => panic!("refresher exploded"),
            Mode::Refuse => Err(RefreshError::Permanent("invalid_grant")),
        }
    }

    fn serve(&self, token: u64) -> Reply<u64> {
        if token >= self.cutoff.load(Ordering::SeqCst) {
            Reply::Done(token)
        } else {
            Reply::Rejected(token)
        }
    }
}

fn config() -> Config {
    let mut config = Config::default();
    config.backoff_initial = Duration::ZERO;
    config.cooldown = Duration::ZERO;
    config
}

fn handle(server: &Arc<Server>) -> Handle<u64, &'static str> {
    let s = Arc::clone(server);
    Handle::new(config(), move |_| s.refresh()).unwrap()
}

fn call(handle: &Handle<u64, &'static str>, server: &Server) -> Outcome {
    handle.call(|token: &u64| server.serve(*token))
}

/// Starts `n` threads that each make one call, and returns once all of
/// them wait for the (gated) refresh.
fn herd(
    handle: &Handle<u64, &'static str>,
    server: &Arc<Server>,
    n: usize,
) -> Vec<std::thread::JoinHandle<Outcome>> {
    let threads = (0..n)
        .map(|_| {
            let (handle, server) = (handle.clone(), Arc::clone(server));
            std::thread::spawn(move || call(&handle, &server))
        })
        .collect();
    while handle.waiters() < n {
        std::thread::yield_now();
    }
    threads
}

#[test]
fn a_herd_of_threads_on_one_expiry_refreshes_once() {
    let server = Server::new();
    let handle = handle(&server);
    assert_eq!(call(&handle, &server), Ok(1));
    server.expire();
    server.set_gate(true);
    let threads = herd(&handle, &server, 64);
    server.set_gate(false);
    let results: Vec<Outcome> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(results.len(), 64);
    assert!(results.iter().all(|r| *r == Ok(2)));
    assert_eq!(server.refreshes.load(Ordering::SeqCst), 2);
    assert_eq!(handle.waiters(), 0);
}

#[test]
fn a_panicking_refresher_fails_every_thread_and_the_handle_recovers() {
    let server = Server::new();
    let handle = handle(&server);
    assert_eq!(call(&handle, &server), Ok(1));
    server.expire();
    *server.mode.lock().unwrap() = Mode::Panic;
    server.set_gate(true);
    let threads = herd(&handle, &server, 16);
    server.set_gate(false);
    for thread in threads {
        let result = thread.join().unwrap();
        let Err(Error::RefreshUnavailable(RefreshFailure::Refresher(fault))) = &result else {
            panic!("expected a refresher fault, got {result:?}");
        };
        assert!(matches!(&**fault, Fault::Panicked(_)));
    }
    let attempts = u64::from(config().max_refresh_attempts);
    assert_eq!(server.refreshes.load(Ordering::SeqCst), 1 + attempts);
    *server.mode.lock().unwrap() = Mode::Issue;
    assert_eq!(call(&handle, &server), Ok(2));
}

#[test]
fn a_permanent_failure_reaches_every_thread() {
    let server = Server::new();
    let handle = handle(&server);
    assert_eq!(call(&handle, &server), Ok(1));
    server.expire();
    *server.mode.lock().unwrap() = Mode::Refuse;
    server.set_gate(true);
    let threads = herd(&handle, &server, 16);
    server.set_gate(false);
    for thread in threads {
        assert!(matches!(
            thread.join().unwrap(),
            Err(Error::LoginRequired(_))
        ));
    }
    assert_eq!(server.refreshes.load(Ordering::SeqCst), 2);
}

#[test]
fn a_refresh_timeout_reaches_every_thread() {
    // Time is a manual clock the test moves. The refresher blocks at the
    // gate; the waiting threads time each attempt out as the clock passes
    // its deadline; after the last attempt every waiter fails with a
    // timeout. The handle makes one call at a time: the attempts that timed
    // out behind the stuck call never reach the endpoint (S1). Nothing
    // asserts how long anything took.
    let server = Server::new();
    let now = Arc::new(AtomicU64::new(0));
    let n = Arc::clone(&now);
    let clock = Clock::manual(move || Timestamp::from_nanos(n.load(Ordering::SeqCst)));
    let mut config = config();
    config.refresh_timeout = Duration::from_millis(10);
    // A thread blocked in the refresher cannot be dropped: each call is
    // given up for good at its timeout, so that the next attempt starts.
    config.refresh_abandon_after = config.refresh_timeout;
    config.cooldown = Duration::from_secs(3600);
    let s = Arc::clone(&server);
    let handle = Handle::builder(move |_| s.refresh())
        .config(config.clone())
        .clock(clock)
        .build()
        .unwrap();
    server.set_gate(true);
    let (tx, rx) = mpsc::channel();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (handle, server, tx) = (handle.clone(), Arc::clone(&server), tx.clone());
            std::thread::spawn(move || tx.send(call(&handle, &server)).unwrap())
        })
        .collect();
    while handle.waiters() < 4 {
        std::thread::yield_now();
    }
    let first = loop {
        now.fetch_add(1_000_000_000, Ordering::SeqCst);
        if let Ok(result) = rx.recv_timeout(Duration::from_millis(10)) {
            break result;
        }
    };
    // Release the refreshers still blocked in their (abandoned) attempts.
    server.set_gate(false);
    let mut results = vec![first];
    results.extend((1..4).map(|_| rx.recv().unwrap()));
    threads.into_iter().for_each(|t| t.join().unwrap());
    for result in results {
        assert_eq!(
            result,
            Err(Error::RefreshUnavailable(RefreshFailure::TimedOut))
        );
    }
    assert!(config.max_refresh_attempts > 1);
    assert_eq!(
        server.refreshes.load(Ordering::SeqCst),
        1,
        "one call at the endpoint, however many attempts timed out"
    );
}

#[test]
fn a_token_rejected_every_time_hands_the_thread_the_last_rejection() {
    let server = Server::new();
    let handle = handle(&server);
    let result = handle.call(|token: &u64| Reply::<Result<(), u64>>::Rejected(Err(*token)));
    let sends = config().max_sends();
    assert_eq!(result, Ok(Err(u64::from(sends))), "the last send's answer");
    assert_eq!(handle.stats().auth_rejected, 1);
}

#[test]
fn a_refresher_calling_its_own_handle_gets_an_error_not_a_deadlock() {
    let cell: Arc<OnceLock<Handle<u64, &'static str>>> = Arc::new(OnceLock::new());
    let nested = Arc::new(Mutex::new(None));
    let (c, n) = (Arc::clone(&cell), Arc::clone(&nested));
    let handle = Handle::new(config(), move |_| {
        *n.lock().unwrap() = Some(c.get().unwrap().ticket().map(|t| *t.token()));
        Ok(Fresh::new(1))
    })
    .unwrap();
    cell.set(handle.clone()).unwrap();
    assert_eq!(*handle.ticket().unwrap().token(), 1);
    let nested = nested.lock().unwrap().take().unwrap();
    assert_eq!(nested.unwrap_err(), Error::Reentrant);
    assert!(!Error::<Fault<&str>>::Reentrant.is_retryable());
}

#[test]
fn a_late_answer_from_an_abandoned_thread_is_adopted() {
    // The handle's thread running the only attempt is stuck in the
    // refresher while the clock passes the attempt's deadline: the round
    // gives up. When the refresher finally answers, that thread still
    // reports the answer, and the core adopts it (no newer generation
    // exists).
    let now = Arc::new(AtomicU64::new(0));
    let n = Arc::clone(&now);
    let clock = Clock::manual(move || Timestamp::from_nanos(n.load(Ordering::SeqCst)));
    let mut config = config();
    config.max_refresh_attempts = 1;
    config.refresh_timeout = Duration::from_secs(10);
    config.cooldown = Duration::from_secs(3600);
    let (started_tx, started) = mpsc::channel();
    let (answer, answer_rx) = mpsc::channel::<u64>();
    let answer_rx = Mutex::new(answer_rx);
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    let handle: Handle<u64, &str> = Handle::builder(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        started_tx.send(()).unwrap();
        Ok(Fresh::new(answer_rx.lock().unwrap().recv().unwrap()))
    })
    .config(config)
    .clock(clock)
    .build()
    .unwrap();
    let h = handle.clone();
    let stuck = std::thread::spawn(move || h.ticket().map(|t| *t.token()));
    started.recv().unwrap();
    now.store(10_000_000_000, Ordering::SeqCst);
    let timed_out = Err(Error::RefreshUnavailable(RefreshFailure::TimedOut));
    assert_eq!(handle.ticket().map(|t| *t.token()), timed_out);
    answer.send(7).unwrap();
    assert_eq!(
        stuck.join().unwrap(),
        timed_out,
        "its own request had failed"
    );
    // The answer is reported by the handle's thread, on its own time.
    for _ in 0..10_000 {
        if handle.stats().late_results_adopted > 0 {
            break;
        }
        std::thread::park_timeout(Duration::from_millis(1));
    }
    let ticket = handle.try_ticket().expect("the late token was adopted");
    assert_eq!((*ticket.token(), ticket.generation().0), (7, 1));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stats = handle.stats();
    assert_eq!((stats.attempts_timed_out, stats.rounds_given_up), (1, 1));
    assert_eq!(stats.late_results_adopted, 1);
}

#[test]
fn a_call_nobody_waits_for_is_made_on_the_handles_thread() {
    let server = Server::new();
    let handle = handle(&server);
    assert_eq!(call(&handle, &server), Ok(1));
    handle.invalidate(tokenflight::Generation(1));
    for _ in 0..10_000 {
        if handle.try_ticket().is_some() {
            break;
        }
        std::thread::park_timeout(Duration::from_millis(1));
    }
    let ticket = handle
        .try_ticket()
        .expect("the refresh ran with no one waiting");
    assert_eq!(*ticket.token(), 2);
    assert_eq!(server.refreshes.load(Ordering::SeqCst), 2);
}

/// When the fast path stops handing out the token of `handle` (its refresh
/// is due), found by bisection on the manual clock at `now`.
fn refresh_due_at(handle: &Handle<u64, &'static str>, now: &AtomicU64, expiry: u64) -> u64 {
    let (mut valid, mut due) = (0, expiry);
    while due - valid > 1 {
        let mid = valid + (due - valid) / 2;
        now.store(mid, Ordering::SeqCst);
        if handle.try_ticket().is_some() {
            valid = mid;
        } else {
            due = mid;
        }
    }
    now.store(0, Ordering::SeqCst);
    due
}

#[test]
fn handles_on_the_default_config_jitter_apart() {
    // Two handles, same defaults, same token from the same moment: each
    // draws its own seed, so they refresh at different times (the skew's
    // jitter is up to 5 s, in nanoseconds).
    let now = Arc::new(AtomicU64::new(0));
    let expiry = Duration::from_secs(3600).as_nanos() as u64;
    let handles: Vec<Handle<u64, &'static str>> = (0..2)
        .map(|_| {
            let n = Arc::clone(&now);
            let clock = Clock::manual(move || Timestamp::from_nanos(n.load(Ordering::SeqCst)));
            Handle::builder(move |_| Ok(Fresh::new(1).expiring_at(Timestamp::from_nanos(expiry))))
                .config(Config::default())
                .clock(clock)
                .build()
                .unwrap()
        })
        .collect();
    let due: Vec<u64> = handles
        .iter()
        .map(|h| {
            h.ticket().unwrap();
            refresh_due_at(h, &now, expiry)
        })
        .collect();
    assert!(due.iter().all(|d| *d < expiry));
    assert_ne!(due[0], due[1], "the two handles drew the same jitter");
}
