//! The async handle under two executors: tokio (multi-threaded) and
//! `futures`' `LocalPool`, which has no tokio at all. A fake in-process
//! server issues numbered tokens and rejects those older than its cut-off;
//! its refresh can be held at a gate so that requests pile up behind it.
//! No test looks at the wall clock: the late-answer tests move a manual
//! clock and its timers by hand.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::channel::oneshot;
use futures::executor::LocalPool;
use futures::future::{FutureExt, RemoteHandle, Shared};
use futures::task::LocalSpawnExt;
use tokenflight::{
    Clock, Config, Error, Fault, Fresh, Generation, Handle, HandleError, RefreshError,
    RefreshFailure, Reply, Timestamp,
};

type Outcome = Result<u64, HandleError<&'static str>>;

/// How the fake server's refresh endpoint behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Issue,
    Panic,
    Refuse,
}

struct Server {
    /// The last token issued (tokens are 1, 2, 3...).
    issued: AtomicU64,
    /// Tokens below this are rejected as expired.
    cutoff: AtomicU64,
    refreshes: AtomicU64,
    mode: Mutex<Mode>,
    gate: Mutex<Gate>,
}

#[derive(Default)]
struct Gate {
    open: Option<oneshot::Sender<()>>,
    wait: Option<Shared<oneshot::Receiver<()>>>,
}

impl Server {
    fn new() -> Arc<Self> {
        Arc::new(Server {
            issued: AtomicU64::new(0),
            cutoff: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            mode: Mutex::new(Mode::Issue),
            gate: Mutex::new(Gate::default()),
        })
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Every token issued so far is expired from now on.
    fn expire(&self) {
        self.cutoff
            .store(self.issued.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
    }

    /// Refreshes wait until `open_gate`.
    fn close_gate(&self) {
        let (tx, rx) = oneshot::channel();
        *self.gate.lock().unwrap() = Gate {
            open: Some(tx),
            wait: Some(rx.shared()),
        };
    }

    fn open_gate(&self) {
        if let Some(tx) = self.gate.lock().unwrap().open.take() {
            let _ = tx.send(());
        }
    }

    async fn refresh(self: Arc<Self>) -> Result<Fresh<u64>, RefreshError<&'static str>> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let wait = self.gate.lock().unwrap().wait.clone();
        if let Some(wait) = wait {
            let _ = wait.await;
        }
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Issue => Ok(Fresh::new(self.issued.fetch_add(1, Ordering::SeqCst) + 1)),
            Mode::Panic => panic!("refresher exploded"),
            Mode::Refuse => Err(RefreshError::Permanent("invalid_grant")),
        }
    }

    /// The API: answers with the token it was called with, or rejects it.
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
    config.max_waiters = 20_000;
    config.backoff_initial = Duration::ZERO;
    config.cooldown = Duration::ZERO;
    config
}

fn handle(server: &Arc<Server>) -> Handle<u64, &'static str> {
    let s = Arc::clone(server);
    Handle::builder(move |_| Arc::clone(&s).refresh())
        .config(config())
        .build()
        .unwrap()
}

async fn call(handle: Handle<u64, &'static str>, server: Arc<Server>) -> Outcome {
    handle
        .call(move |token: &u64| std::future::ready(server.serve(*token)))
        .await
}

/// One token in use, then expired: the next requests all come back
/// rejected.
fn warmed_up(
    pool: &mut LocalPool,
    handle: &Handle<u64, &'static str>,
    server: &Arc<Server>,
) -> u64 {
    let first = pool.run_until(call(handle.clone(), Arc::clone(server)));
    assert_eq!(first, Ok(1));
    server.expire();
    server.refreshes.load(Ordering::SeqCst)
}

fn spawn_calls(
    pool: &LocalPool,
    handle: &Handle<u64, &'static str>,
    server: &Arc<Server>,
    n: usize,
) -> Vec<RemoteHandle<Outcome>> {
    (0..n)
        .map(|_| {
            pool.spawner()
                .spawn_local_with_handle(call(handle.clone(), Arc::clone(server)))
                .unwrap()
        })
        .collect()
}

#[test]
fn ten_thousand_calls_on_one_expiry_refresh_once_local_pool() {
    let server = Server::new();
    let handle = handle(&server);
    let mut pool = LocalPool::new();
    let before = warmed_up(&mut pool, &handle, &server);
    server.close_gate();
    let calls = spawn_calls(&pool, &handle, &server, 10_000);
    pool.run_until_stalled();
    assert_eq!(handle.waiters(), 10_000);
    server.open_gate();
    let results = pool.run_until(futures::future::join_all(calls));
    assert_eq!(results.len(), 10_000);
    assert!(
        results.iter().all(|r| *r == Ok(2)),
        "every call answered with token 2"
    );
    assert_eq!(server.refreshes.load(Ordering::SeqCst), before + 1);
    assert_eq!(handle.waiters(), 0);
}

#[test]
fn half_the_waiters_dropped_mid_refresh_local_pool() {
    let server = Server::new();
    let handle = handle(&server);
    let mut pool = LocalPool::new();
    let before = warmed_up(&mut pool, &handle, &server);
    server.close_gate();
    let mut calls = spawn_calls(&pool, &handle, &server, 10_000);
    pool.run_until_stalled();
    assert_eq!(handle.waiters(), 10_000);
    // Dropping a remote handle drops its task's future at the next poll;
    // the first half includes the one that started (and drove) the refresh.
    let kept = calls.split_off(5_000);
    drop(calls);
    pool.run_until_stalled();
    assert_eq!(handle.waiters(), 5_000, "dropped waiters leave at once");
    server.open_gate();
    let results = pool.run_until(futures::future::join_all(kept));
    assert!(results.iter().all(|r| *r == Ok(2)));
    assert_eq!(results.len(), 5_000);
    assert_eq!(server.refreshes.load(Ordering::SeqCst), before + 1);
    assert_eq!(handle.waiters(), 0);
}

#[test]
fn the_refresh_survives_its_driver_local_pool() {
    let server = Server::new();
    let handle = handle(&server);
    let mut pool = LocalPool::new();
    let before = warmed_up(&mut pool, &handle, &server);
    server.close_gate();
    // `a` starts the refresh and polls it; `c`, polled last, is the waiter
    // the handle's waker is appointed to. Both go; `b` must still finish.
    let mut calls = spawn_calls(&pool, &handle, &server, 1);
    pool.run_until_stalled();
    calls.extend(spawn_calls(&pool, &handle, &server, 2));
    pool.run_until_stalled();
    assert_eq!(handle.waiters(), 3);
    let c = calls.pop().unwrap();
    let b = calls.pop().unwrap();
    drop(calls);
    drop(c);
    pool.run_until_stalled();
    assert_eq!(handle.waiters(), 1);
    server.open_gate();
    assert_eq!(pool.run_until(b), Ok(2));
    assert_eq!(server.refreshes.load(Ordering::SeqCst), before + 1);
}

#[test]
fn a_refresh_nobody_waits_for_is_picked_up_by_the_next_caller() {
    let server = Server::new();
    let handle = handle(&server);
    let mut pool = LocalPool::new();
    let before = warmed_up(&mut pool, &handle, &server);
    server.close_gate();
    let calls = spawn_calls(&pool, &handle, &server, 3);
    pool.run_until_stalled();
    drop(calls);
    pool.run_until_stalled();
    assert_eq!(handle.waiters(), 0);
    server.open_gate();
    // The refresh is still the one in flight: the newcomer waits for it and
    // drives it; no second refresh starts.
    assert_eq!(
        pool.run_until(call(handle.clone(), Arc::clone(&server))),
        Ok(2)
    );
    assert_eq!(server.refreshes.load(Ordering::SeqCst), before + 1);
}

#[test]
fn a_panicking_refresher_fails_every_waiter_and_the_handle_recovers() {
    let server = Server::new();
    let handle = handle(&server);
    let mut pool = LocalPool::new();
    let before = warmed_up(&mut pool, &handle, &server);
    server.set_mode(Mode::Panic);
    server.close_gate();
    let calls = spawn_calls(&pool, &handle, &server, 100);
    pool.run_until_stalled();
    server.open_gate();
    let results = pool.run_until(futures::future::join_all(calls));
    for result in &results {
        let Err(Error::RefreshUnavailable(RefreshFailure::Refresher(fault))) = result else {
            panic!("expected a refresher fault, got {result:?}");
        };
        assert!(matches!(&**fault, Fault::Panicked(m) if m == "refresher exploded"));
    }
    // Each of the round's attempts panicked; then everyone was told.
    let attempts = u64::from(config().max_refresh_attempts);
    assert_eq!(server.refreshes.load(Ordering::SeqCst), before + attempts);
    assert_eq!(handle.waiters(), 0);
    server.set_mode(Mode::Issue);
    assert_eq!(
        pool.run_until(call(handle.clone(), Arc::clone(&server))),
        Ok(2)
    );
}

#[test]
fn a_permanent_failure_reaches_every_waiter_until_a_login() {
    let server = Server::new();
    let handle = handle(&server);
    let mut pool = LocalPool::new();
    let before = warmed_up(&mut pool, &handle, &server);
    server.set_mode(Mode::Refuse);
    server.close_gate();
    let calls = spawn_calls(&pool, &handle, &server, 1_000);
    pool.run_until_stalled();
    server.open_gate();
    let results = pool.run_until(futures::future::join_all(calls));
    assert!(results.iter().all(|r| *r
        == Err(Error::LoginRequired(Arc::new(Fault::Refresher(
            "invalid_grant"
        ))))));
    assert_eq!(server.refreshes.load(Ordering::SeqCst), before + 1);
    // Failing fast now, without asking the refresher again.
    let late = pool.run_until(call(handle.clone(), Arc::clone(&server)));
    assert!(matches!(late, Err(Error::LoginRequired(_))));
    assert_eq!(server.refreshes.load(Ordering::SeqCst), before + 1);
    server.issued.store(7, Ordering::SeqCst);
    handle.set_token(Fresh::new(7));
    assert_eq!(
        pool.run_until(call(handle.clone(), Arc::clone(&server))),
        Ok(7)
    );
}

#[test]
fn a_stale_rejection_never_refreshes_again() {
    let server = Server::new();
    let handle = handle(&server);
    futures::executor::block_on(async {
        let old = handle.ticket().await.unwrap();
        let also_old = handle.ticket().await.unwrap();
        assert_eq!(old.generation(), Generation(1));
        let retry = handle.reject(old).await.unwrap();
        assert_eq!(retry.generation(), Generation(2));
        // The second rejection of generation 1 comes after the refresh.
        let retry = handle.reject(also_old).await.unwrap();
        assert_eq!((retry.generation(), retry.send()), (Generation(2), 2));
    });
    assert_eq!(server.refreshes.load(Ordering::SeqCst), 2);
}

#[test]
fn a_token_rejected_every_time_hands_the_caller_the_last_rejection() {
    let server = Server::new();
    let handle = handle(&server);
    // Each answer names the token it rejected: the caller must get the last.
    let result =
        futures::executor::block_on(handle.call(|token: &u64| {
            std::future::ready(Reply::<Result<(), u64>>::Rejected(Err(*token)))
        }));
    let sends = config().max_sends();
    assert_eq!(result, Ok(Err(u64::from(sends))));
    // The first token, then one refresh per rejection but the last.
    assert_eq!(server.refreshes.load(Ordering::SeqCst), u64::from(sends));
    // The handle still counts the request as rejected on every send.
    assert_eq!(handle.stats().auth_rejected, 1);
    // Driven by hand, the last rejection is the typed error.
    futures::executor::block_on(async {
        let mut ticket = handle.ticket().await.unwrap();
        for _ in 1..sends {
            ticket = handle.reject(ticket).await.unwrap();
        }
        assert_eq!(
            handle.reject(ticket).await.unwrap_err(),
            Error::AuthRejected { sends }
        );
    });
}

#[test]
fn a_refresher_calling_its_own_handle_gets_an_error_not_a_deadlock() {
    let handle_cell: Arc<OnceLock<Handle<u64, &'static str>>> = Arc::new(OnceLock::new());
    let nested_failed = Arc::new(AtomicBool::new(false));
    let (cell, flag) = (Arc::clone(&handle_cell), Arc::clone(&nested_failed));
    let handle = Handle::builder(move |_| {
        let (cell, flag) = (Arc::clone(&cell), Arc::clone(&flag));
        async move {
            let nested = cell.get().unwrap().ticket().await;
            flag.store(matches!(nested, Err(Error::Reentrant)), Ordering::SeqCst);
            Ok(Fresh::new(1))
        }
    })
    .config(config())
    .build()
    .unwrap();
    handle_cell.set(handle.clone()).unwrap();
    let ticket = futures::executor::block_on(handle.ticket()).unwrap();
    assert_eq!(*ticket.token(), 1);
    assert!(nested_failed.load(Ordering::SeqCst));
}

#[test]
fn without_a_timer_a_back_off_is_refused_at_build_time() {
    let built = Handle::builder(|_| async { Ok::<_, RefreshError<()>>(Fresh::new(1)) })
        .config(Config::default())
        .without_timer()
        .build();
    assert_eq!(built.err(), Some(tokenflight::BuildError::TimerRequired));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_calls_and_half_dropped_under_tokio() {
    let server = Server::new();
    let handle = handle(&server);
    assert_eq!(call(handle.clone(), Arc::clone(&server)).await, Ok(1));
    server.expire();
    server.close_gate();
    let mut tasks: Vec<_> = (0..10_000)
        .map(|_| tokio::spawn(call(handle.clone(), Arc::clone(&server))))
        .collect();
    while handle.waiters() < 10_000 {
        tokio::task::yield_now().await;
    }
    let kept = tasks.split_off(5_000);
    for task in &tasks {
        task.abort();
    }
    while handle.waiters() > 5_000 {
        tokio::task::yield_now().await;
    }
    server.open_gate();
    for task in kept {
        assert_eq!(task.await.unwrap(), Ok(2));
    }
    for task in tasks {
        assert!(task.await.unwrap_err().is_cancelled());
    }
    assert_eq!(server.refreshes.load(Ordering::SeqCst), 2);
    assert_eq!(handle.waiters(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_calls_on_one_expiry_refresh_once_tokio() {
    let server = Server::new();
    let handle = handle(&server);
    assert_eq!(call(handle.clone(), Arc::clone(&server)).await, Ok(1));
    server.expire();
    // No gate: the herd races the refresh as it happens.
    let tasks: Vec<_> = (0..10_000)
        .map(|_| tokio::spawn(call(handle.clone(), Arc::clone(&server))))
        .collect();
    let mut done = 0;
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(2));
        done += 1;
    }
    assert_eq!(done, 10_000);
    assert_eq!(server.refreshes.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_reach_every_waiter_under_tokio() {
    let server = Server::new();
    let handle = handle(&server);
    assert_eq!(call(handle.clone(), Arc::clone(&server)).await, Ok(1));
    server.expire();
    server.set_mode(Mode::Panic);
    server.close_gate();
    let tasks: Vec<_> = (0..1_000)
        .map(|_| tokio::spawn(call(handle.clone(), Arc::clone(&server))))
        .collect();
    while handle.waiters() < 1_000 {
        tokio::task::yield_now().await;
    }
    server.open_gate();
    for task in tasks {
        assert!(matches!(
            task.await.unwrap(),
            Err(Error::RefreshUnavailable(RefreshFailure::Refresher(_)))
        ));
    }
    server.set_mode(Mode::Refuse);
    let refused = call(handle.clone(), Arc::clone(&server)).await;
    assert!(matches!(refused, Err(Error::LoginRequired(_))));
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn the_tokio_timer_ends_a_back_off() {
    let server = Server::new();
    let mut config = config();
    config.backoff_initial = Duration::from_millis(1);
    config.backoff_max = Duration::from_millis(2);
    let s = Arc::clone(&server);
    let handle = Handle::builder(move |_| Arc::clone(&s).refresh())
        .config(config)
        .sleep(tokenflight::TokioSleep)
        .build()
        .unwrap();
    server.set_mode(Mode::Panic);
    let result = call(handle.clone(), Arc::clone(&server)).await;
    assert!(matches!(result, Err(Error::RefreshUnavailable(_))));
    assert_eq!(server.refreshes.load(Ordering::SeqCst), 3);
}

#[test]
fn the_thread_timer_ends_a_back_off_under_any_executor() {
    let server = Server::new();
    let mut config = config();
    config.backoff_initial = Duration::from_millis(1);
    config.backoff_max = Duration::from_millis(2);
    let s = Arc::clone(&server);
    let handle = Handle::builder(move |_| Arc::clone(&s).refresh())
        .config(config)
        .build()
        .unwrap();
    server.set_mode(Mode::Panic);
    let result = futures::executor::block_on(call(handle.clone(), Arc::clone(&server)));
    assert!(matches!(result, Err(Error::RefreshUnavailable(_))));
    assert_eq!(server.refreshes.load(Ordering::SeqCst), 3);
}

/// Time for the late-answer tests: a manual clock, and timers that end when
/// the test moves it past them.
#[derive(Clone, Default)]
struct ManualTime {
    nanos: Arc<AtomicU64>,
    wakers: Arc<Mutex<Vec<std::task::Waker>>>,
    /// Timers that have ended (each was then seen by the handle).
    fired: Arc<AtomicU64>,
}

impl ManualTime {
    fn now(&self) -> Timestamp {
        Timestamp::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    fn clock(&self) -> Clock {
        let time = self.clone();
        Clock::manual(move || time.now())
    }

    fn sleep(&self) -> impl tokenflight::Sleep {
        let time = self.clone();
        move |duration: Duration| {
            let (time, until) = (time.clone(), time.now() + duration);
            std::future::poll_fn(move |cx| {
                if time.now() >= until {
                    time.fired.fetch_add(1, Ordering::SeqCst);
                    return std::task::Poll::Ready(());
                }
                time.wakers.lock().unwrap().push(cx.waker().clone());
                std::task::Poll::Pending
            })
        }
    }

    fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap();
        self.nanos.fetch_add(by, Ordering::SeqCst);
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap());
        wakers.into_iter().for_each(std::task::Waker::wake);
    }
}

/// A refresher whose n-th call answers with what the test sends on the
/// n-th sender (an error if that sender is dropped).
struct Script {
    calls: AtomicU64,
    answers: Mutex<std::collections::VecDeque<oneshot::Receiver<u64>>>,
}

impl Script {
    fn new(n: usize) -> (Arc<Self>, Vec<oneshot::Sender<u64>>) {
        let (senders, receivers) = (0..n).map(|_| oneshot::channel()).unzip();
        let script = Script {
            calls: AtomicU64::new(0),
            answers: Mutex::new(receivers),
        };
        (Arc::new(script), senders)
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF: Duration = Duration::from_secs(1);

/// A handle on manual time whose attempts time out after [`TIMEOUT`] and
/// back off for at most [`BACKOFF`], answering as `script` says.
fn scripted(
    time: &ManualTime,
    script: &Arc<Script>,
    max_refresh_attempts: u32,
) -> Handle<u64, &'static str> {
    let mut config = Config::default();
    config.refresh_timeout = TIMEOUT;
    config.backoff_initial = BACKOFF;
    config.backoff_max = BACKOFF;
    config.max_refresh_attempts = max_refresh_attempts;
    config.cooldown = Duration::from_secs(3600);
    let script = Arc::clone(script);
    Handle::builder(move |_| {
        script.calls.fetch_add(1, Ordering::SeqCst);
        let answer = script.answers.lock().unwrap().pop_front();
        async move {
            match answer
                .expect("the script has an answer for every call")
                .await
            {
                Ok(token) => Ok(Fresh::new(token)),
                Err(_) => Err(RefreshError::Transient("no answer")),
            }
        }
    })
    .config(config)
    .clock(time.clock())
    .sleep(time.sleep())
    .build()
    .unwrap()
}

/// A token and its generation, or why there is none.
type Leased = Result<(u64, Generation), HandleError<&'static str>>;

async fn ticket(handle: Handle<u64, &'static str>) -> Leased {
    let ticket = handle.ticket().await?;
    Ok((*ticket.token(), ticket.generation()))
}

/// One waiter whose first attempt timed out and whose back-off has ended:
/// the second attempt is queued behind the first call, whose future is kept
/// for its late answer.
fn past_timeout_and_back_off(
    time: &ManualTime,
    handle: &Handle<u64, &'static str>,
) -> (LocalPool, RemoteHandle<Leased>) {
    let mut pool = LocalPool::new();
    let waiter = pool
        .spawner()
        .spawn_local_with_handle(ticket(handle.clone()))
        .unwrap();
    pool.run_until_stalled();
    time.advance(TIMEOUT);
    pool.run_until_stalled();
    time.advance(BACKOFF);
    pool.run_until_stalled();
    (pool, waiter)
}

#[test]
fn a_late_answer_during_the_back_off_is_adopted_local_pool() {
    let time = ManualTime::default();
    let (script, mut answers) = Script::new(1);
    let handle = scripted(&time, &script, 3);
    let mut pool = LocalPool::new();
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            pool.spawner()
                .spawn_local_with_handle(ticket(handle.clone()))
                .unwrap()
        })
        .collect();
    pool.run_until_stalled();
    assert_eq!((handle.waiters(), script.calls()), (2, 1));
    // The attempt times out: the round backs off (for at least half of
    // BACKOFF), and the waiters keep waiting.
    time.advance(TIMEOUT);
    pool.run_until_stalled();
    assert_eq!(time.fired.load(Ordering::SeqCst), 1, "the timeout was seen");
    assert_eq!((handle.waiters(), script.calls()), (2, 1));
    // Its answer comes during the back-off: it is still listened to.
    answers
        .remove(0)
        .send(7)
        .expect("the timed-out attempt is kept");
    let results = pool.run_until(futures::future::join_all(waiters));
    assert_eq!(results, [Ok((7, Generation(1))), Ok((7, Generation(1)))]);
    assert_eq!(handle.try_ticket().map(|t| *t.token()), Some(7));
    // The back-off timer is gone with the round: nothing else starts.
    time.advance(BACKOFF);
    pool.run_until_stalled();
    assert_eq!(script.calls(), 1, "the refresher was called once");
    let stats = handle.stats();
    assert_eq!(
        (
            stats.refreshes_started,
            stats.attempts_timed_out,
            stats.joins
        ),
        (1, 1, 1)
    );
    assert_eq!((stats.tokens_adopted, stats.late_results_adopted), (1, 1));
}

#[tokio::test]
async fn a_late_answer_during_the_back_off_is_adopted_tokio() {
    // Single-threaded: a waiter's poll (fire the timer, time the attempt
    // out) runs whole while this task is suspended, so the checks between
    // steps see each step done.
    let time = ManualTime::default();
    let (script, mut answers) = Script::new(1);
    let handle = scripted(&time, &script, 3);
    let waiters: Vec<_> = (0..2)
        .map(|_| tokio::spawn(ticket(handle.clone())))
        .collect();
    while handle.waiters() < 2 {
        tokio::task::yield_now().await;
    }
    time.advance(TIMEOUT);
    while time.fired.load(Ordering::SeqCst) < 1 {
        tokio::task::yield_now().await;
    }
    assert_eq!((handle.waiters(), script.calls()), (2, 1));
    answers
        .remove(0)
        .send(7)
        .expect("the timed-out attempt is kept");
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), Ok((7, Generation(1))));
    }
    assert_eq!(script.calls(), 1);
}

#[test]
fn the_next_attempt_waits_for_the_timed_out_call_to_answer_local_pool() {
    let time = ManualTime::default();
    let (script, mut answers) = Script::new(2);
    let handle = scripted(&time, &script, 3);
    let (mut pool, waiter) = past_timeout_and_back_off(&time, &handle);
    assert_eq!(
        script.calls(),
        1,
        "the back-off ended, but the first call is still out: one call at a time"
    );
    // The first call fails late: the call is over, the next one starts.
    let (late, current) = (answers.remove(0), answers.remove(0));
    drop(late);
    pool.run_until_stalled();
    assert_eq!(script.calls(), 2);
    current.send(8).unwrap();
    assert_eq!(pool.run_until(waiter), Ok((8, Generation(1))));
    let stats = handle.stats();
    assert_eq!((stats.tokens_adopted, stats.late_results_adopted), (1, 0));
}

#[test]
fn a_call_unanswered_by_the_hard_limit_is_dropped_before_the_next_starts() {
    let time = ManualTime::default();
    let (script, mut answers) = Script::new(2);
    let handle = scripted(&time, &script, 3);
    let (mut pool, waiter) = past_timeout_and_back_off(&time, &handle);
    let (late, current) = (answers.remove(0), answers.remove(0));
    assert_eq!(script.calls(), 1);
    // `refresh_abandon_after` (60 s by default) after the first call began.
    time.advance(Duration::from_secs(60) - TIMEOUT - BACKOFF);
    pool.run_until_stalled();
    assert!(
        late.is_canceled(),
        "the abandoned call's future was dropped"
    );
    assert_eq!(late.send(7), Err(7));
    assert_eq!(script.calls(), 2, "then the next attempt started");
    current.send(8).unwrap();
    assert_eq!(pool.run_until(waiter), Ok((8, Generation(1))));
    assert_eq!(handle.stats().calls_abandoned, 1);
}

#[test]
fn a_late_answer_after_the_round_gave_up_reaches_the_next_request() {
    let time = ManualTime::default();
    let (script, mut answers) = Script::new(1);
    let handle = scripted(&time, &script, 1);
    let mut pool = LocalPool::new();
    let waiter = pool
        .spawner()
        .spawn_local_with_handle(ticket(handle.clone()))
        .unwrap();
    pool.run_until_stalled();
    time.advance(TIMEOUT);
    assert_eq!(
        pool.run_until(waiter),
        Err(Error::RefreshUnavailable(RefreshFailure::TimedOut)),
        "the only attempt timed out: the round gave up"
    );
    // No one waits now, and requests fail fast during the cool-down. The
    // late answer comes: the next request finds it and gets its token.
    answers
        .remove(0)
        .send(7)
        .expect("the timed-out attempt is kept");
    pool.run_until_stalled();
    assert!(handle.try_ticket().is_none());
    assert_eq!(
        pool.run_until(ticket(handle.clone())),
        Ok((7, Generation(1)))
    );
    assert_eq!(script.calls(), 1);
}

/// A waker that counts its wakes.
struct Counted(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Counted {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_waiter_dropped_from_a_round_is_never_woken_and_the_others_are() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    let server = Server::new();
    let handle = handle(&server);
    server.close_gate();
    let counts: Vec<Arc<Counted>> = (0..3)
        .map(|_| Arc::new(Counted(std::sync::atomic::AtomicUsize::new(0))))
        .collect();
    let wakers: Vec<Waker> = counts.iter().map(|c| Waker::from(Arc::clone(c))).collect();
    let mut futures: Vec<_> = (0..3).map(|_| Box::pin(handle.ticket())).collect();
    for (future, waker) in futures.iter_mut().zip(&wakers) {
        let mut cx = Context::from_waker(waker);
        assert!(future.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(handle.waiters(), 3);
    // The middle one goes: it leaves the round at once, and the handle
    // keeps no clone of its waker.
    let mut third = futures.pop().unwrap();
    drop(futures.pop().unwrap());
    let mut first = futures.pop().unwrap();
    drop(wakers);
    assert_eq!(handle.waiters(), 2);
    assert_eq!(Arc::strong_count(&counts[1]), 1, "its waker was let go");
    // The gate opens: the appointed waiter (the last polled) is woken to
    // drive the refresh, which answers the whole round.
    server.open_gate();
    assert!(counts[2].0.load(Ordering::SeqCst) >= 1);
    let waker = Waker::from(Arc::clone(&counts[2]));
    let polled = third.as_mut().poll(&mut Context::from_waker(&waker));
    drop(waker);
    let Poll::Ready(ticket) = polled else {
        panic!("the driver gets its token in the poll that ends the refresh");
    };
    let ticket = ticket.unwrap();
    assert_eq!(
        (*ticket.token(), ticket.generation(), ticket.send()),
        (1, Generation(1), 1)
    );
    assert_eq!(
        counts[0].0.load(Ordering::SeqCst),
        1,
        "the other waiter is woken once"
    );
    assert_eq!(
        counts[1].0.load(Ordering::SeqCst),
        0,
        "the dropped one never"
    );
    assert_eq!(handle.waiters(), 0);
    let waker = Waker::from(Arc::clone(&counts[0]));
    let polled = first.as_mut().poll(&mut Context::from_waker(&waker));
    drop(waker);
    let Poll::Ready(ticket) = polled else {
        panic!("a woken waiter finds its outcome");
    };
    let ticket = ticket.unwrap();
    assert_eq!(
        (*ticket.token(), ticket.generation(), ticket.send()),
        (1, Generation(1), 1)
    );
    assert_eq!(server.refreshes.load(Ordering::SeqCst), 1);
    drop((first, third));
    assert_eq!(Arc::strong_count(&counts[0]), 1);
    assert_eq!(Arc::strong_count(&counts[2]), 1);
}

#[test]
fn an_answered_round_goes_with_its_last_waiter_read_or_dropped() {
    use std::future::Future;
    use std::sync::Weak;
    use std::task::{Context, Poll, Waker};

    // The refresher answers token 2 once the gate's sender fires; the
    // test keeps a weak reference to it, to see when the last holder goes.
    let (open, gate) = oneshot::channel::<()>();
    let gate = Arc::new(Mutex::new(Some(gate)));
    let handle = Handle::builder(move |_| {
        let gate = gate.lock().unwrap().take();
        async move {
            if let Some(gate) = gate {
                gate.await.unwrap();
            }
            Ok::<_, RefreshError<&'static str>>(Fresh::new(Arc::new(2_u64)))
        }
    })
    .config(config())
    .without_timer()
    .without_spawner()
    .build()
    .unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut reader = Box::pin(handle.ticket());
    let mut dropped = Box::pin(handle.ticket());
    assert!(reader.as_mut().poll(&mut cx).is_pending());
    assert!(dropped.as_mut().poll(&mut cx).is_pending());
    assert_eq!(handle.waiters(), 2);
    open.send(()).unwrap();
    // The reader drives the refresh, which answers both, and reads its
    // outcome; the other is dropped without reading it.
    let Poll::Ready(ticket) = reader.as_mut().poll(&mut cx) else {
        panic!("the reader ends the refresh and reads its answer");
    };
    let ticket = ticket.unwrap();
    let token: Weak<u64> = Arc::downgrade(ticket.token());
    assert_eq!(
        (*ticket.token().as_ref(), ticket.generation()),
        (2, Generation(1))
    );
    assert_eq!(handle.waiters(), 0);
    drop(dropped);
    drop((ticket, reader));
    // A login replaces token 2: the handle no longer holds it, and the
    // round's outcome went with the waiters that held it.
    handle.set_token(Fresh::new(Arc::new(3)));
    assert!(
        token.upgrade().is_none(),
        "an answered round outlived its waiters"
    );
    let ticket = handle.try_ticket().unwrap();
    assert_eq!(**ticket.token(), 3);
}

#[test]
fn a_call_nobody_waits_for_is_made_at_once_and_its_answer_outlives_the_timeout() {
    // With one attempt per round: an invalidation with no request waiting
    // starts a call; it must be made now, not when the next request comes,
    // and its answer, which arrives while no one waits, must reach the core
    // before that request times the attempt out.
    let time = ManualTime::default();
    let (script, mut answers) = Script::new(2);
    let handle = scripted(&time, &script, 1);
    let mut pool = LocalPool::new();
    answers.remove(0).send(7).unwrap();
    assert_eq!(
        pool.run_until(ticket(handle.clone())),
        Ok((7, Generation(1)))
    );
    handle.invalidate(Generation(1));
    assert_eq!(
        script.calls(),
        2,
        "the call was made when the core started it"
    );
    answers.remove(0).send(8).unwrap();
    time.advance(TIMEOUT * 2);
    pool.run_until_stalled();
    assert_eq!(
        pool.run_until(ticket(handle.clone())),
        Ok((8, Generation(2))),
        "the answer that came while no one waited is the token"
    );
    assert_eq!(script.calls(), 2);
    assert_eq!(handle.stats().attempts_timed_out, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_nobody_waits_for_runs_on_the_runtime() {
    // Under tokio the handle spawns the call no request waits for: it is
    // made and its token adopted without any request coming by.
    let server = Server::new();
    let handle = handle(&server);
    assert_eq!(call(handle.clone(), Arc::clone(&server)).await, Ok(1));
    handle.invalidate(Generation(1));
    for _ in 0..2_000 {
        if handle.try_ticket().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ticket = handle.try_ticket().expect("the refresh ran on its own");
    assert_eq!((*ticket.token(), ticket.generation()), (2, Generation(2)));
    assert_eq!(server.refreshes.load(Ordering::SeqCst), 2);
}

#[test]
fn a_panicking_timer_is_replaced_by_the_thread_timer() {
    // The user's Sleep panics (like a tokio timer polled outside a
    // runtime). The back-off between the two attempts must still end.
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    let mut config = Config::default();
    config.backoff_initial = Duration::from_millis(1);
    config.backoff_max = Duration::from_millis(1);
    let handle: Handle<u64, &'static str> = Handle::builder(move |_| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                Err(RefreshError::Transient("busy"))
            } else {
                Ok(Fresh::new(n))
            }
        }
    })
    .config(config)
    .sleep(|_d: Duration| -> std::future::Ready<()> { panic!("no timer here") })
    .build()
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = handle.clone();
    std::thread::spawn(move || {
        let _ = tx.send(futures::executor::block_on(ticket(h)));
    });
    let outcome = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the back-off ended: no silent stall");
    assert_eq!(outcome, Ok((1, Generation(1))));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// Counts the refresher calls outstanding (made, not yet answered or
/// dropped) and the most there ever were at once.
#[derive(Default)]
struct Outstanding {
    now: AtomicU64,
    most: AtomicU64,
    calls: AtomicU64,
}

/// One call: counted from its making until it ends or is dropped.
struct CallGuard(Arc<Outstanding>);

impl CallGuard {
    fn new(counts: &Arc<Outstanding>) -> Self {
        counts.calls.fetch_add(1, Ordering::SeqCst);
        let now = counts.now.fetch_add(1, Ordering::SeqCst) + 1;
        counts.most.fetch_max(now, Ordering::SeqCst);
        CallGuard(Arc::clone(counts))
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn a_slow_refresher_never_has_two_calls_out() {
    // refresh_timeout 100 ms, every call takes 250 ms (on the manual
    // clock): the first attempt times out, but the next one waits for the
    // call to end; its late answer is the token.
    let time = ManualTime::default();
    let counts = Arc::new(Outstanding::default());
    let mut config = Config::default();
    config.refresh_timeout = Duration::from_millis(100);
    config.refresh_abandon_after = Duration::from_secs(1);
    config.backoff_initial = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(10);
    let (c, t) = (Arc::clone(&counts), time.clone());
    let handle: Handle<u64, &'static str> = Handle::builder(move |_| {
        let guard = CallGuard::new(&c);
        let (time, until) = (t.clone(), t.now() + Duration::from_millis(250));
        std::future::poll_fn(move |cx| {
            let _held = &guard;
            if time.now() >= until {
                return std::task::Poll::Ready(Ok(Fresh::new(7)));
            }
            time.wakers.lock().unwrap().push(cx.waker().clone());
            std::task::Poll::Pending
        })
    })
    .config(config)
    .clock(time.clock())
    .sleep(time.sleep())
    .build()
    .unwrap();
    let mut pool = LocalPool::new();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            pool.spawner()
                .spawn_local_with_handle(ticket(handle.clone()))
                .unwrap()
        })
        .collect();
    for _ in 0..100 {
        pool.run_until_stalled();
        assert!(counts.now.load(Ordering::SeqCst) <= 1);
        time.advance(Duration::from_millis(10));
    }
    let results = pool.run_until(futures::future::join_all(waiters));
    assert_eq!(counts.most.load(Ordering::SeqCst), 1, "never two calls out");
    assert_eq!(counts.calls.load(Ordering::SeqCst), 1);
    assert!(
        results.iter().all(|r| *r == Ok((7, Generation(1)))),
        "{results:?}"
    );
}
