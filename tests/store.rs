//! The stores against their real backends: the file store in a temp
//! directory and the Redis store on a real `redis-server` started here.
//! Compare-and-swap, leases (expiry, takeover, release by owner only), a
//! Redis killed and restarted, and the guard between handles that share a
//! store as processes would.

// Real servers keep real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::{chain, TempDir};
use tokenflight::store::{
    FileStore, GuardError, GuardOptions, Owner, Record, RedisStore, Renewal, Scope, Secret, Store,
    StoreError, StoredToken, Swap,
};
use tokenflight::{Clock, Config, Fault, Fresh, Generation, Handle, RefreshError};

fn record(generation: u64, access: &str) -> Record {
    Record::new(
        Generation(generation),
        Owner::unique(),
        Some(StoredToken::new(
            access,
            Some(format!("rt-{access}").into()),
            None,
        )),
    )
}

fn with_backends(test: impl Fn(Arc<dyn Store>)) {
    let dir = TempDir::new("store-file");
    test(Arc::new(FileStore::open(&dir.0).unwrap()));
    let redis_dir = TempDir::new("store-redis");
    let server = RedisServer::start(redis_dir.0.clone());
    test(Arc::new(RedisStore::open(&server.url()).unwrap()));
}

#[test]
fn compare_and_swap_lets_exactly_one_racer_win_and_never_goes_back() {
    with_backends(|store| {
        let scope = Scope::new("cas");
        assert_eq!(
            store.swap(&scope, Generation(0), &record(1, "a")).unwrap(),
            Swap::Done
        );
        let wins: usize = std::thread::scope(|s| {
            let racers: Vec<_> = (0..8)
                .map(|i| {
                    let (store, scope) = (&store, &scope);
                    s.spawn(move || {
                        store
                            .swap(scope, Generation(1), &record(2, &format!("r{i}")))
                            .unwrap()
                            == Swap::Done
                    })
                })
                .collect();
            racers
                .into_iter()
                .map(|r| usize::from(r.join().unwrap()))
                .sum()
        });
        assert_eq!(wins, 1);
        assert_eq!(
            store
                .swap(&scope, Generation(2), &record(2, "same"))
                .unwrap(),
            Swap::Conflict {
                current: Generation(2)
            },
            "a write must be newer than what it replaces"
        );
        assert_eq!(
            store.load(&scope).unwrap().unwrap().generation(),
            Generation(2)
        );
        // Scopes are apart.
        assert!(store.load(&Scope::new("other")).unwrap().is_none());
    });
}

#[test]
fn a_lease_expires_and_is_taken_over_and_only_its_owner_releases_it() {
    with_backends(|store| {
        let scope = Scope::new("lease");
        let (dead, alive) = (Owner::unique(), Owner::unique());
        let ttl = Duration::from_millis(150);
        assert!(store.try_lease(&scope, &dead, ttl).unwrap().is_some());
        assert!(store.try_lease(&scope, &alive, ttl).unwrap().is_none());
        std::thread::sleep(Duration::from_millis(200));
        // The holder died (never released): taken over once it ran out.
        assert!(store.try_lease(&scope, &alive, ttl).unwrap().is_some());
        assert!(
            !store.release(&scope, &dead).unwrap(),
            "a late holder frees nothing"
        );
        assert!(store.try_lease(&scope, &dead, ttl).unwrap().is_none());
        assert!(store.release(&scope, &alive).unwrap());
        assert!(store.try_lease(&scope, &dead, ttl).unwrap().is_some());
    });
}

#[test]
fn redis_down_is_a_quick_typed_error_and_a_restart_keeps_the_record() {
    let dir = TempDir::new("redis-restart");
    let mut server = RedisServer::start(dir.0.clone());
    let store = RedisStore::open(&server.url())
        .unwrap()
        .with_timeout(Duration::from_millis(200));
    let scope = Scope::new("restart");
    assert_eq!(
        store.swap(&scope, Generation(0), &record(1, "a")).unwrap(),
        Swap::Done
    );

    server.kill();
    let started = Instant::now();
    let e = store.load(&scope).unwrap_err();
    assert!(matches!(e, StoreError::Redis { .. }), "{e:?}");
    let e = store
        .swap(&scope, Generation(1), &record(2, "b"))
        .unwrap_err();
    assert!(std::error::Error::source(&e).is_some());
    assert!(started.elapsed() < Duration::from_secs(3), "never a hang");

    server.restart();
    let got = store.load(&scope).unwrap().unwrap();
    assert_eq!(got.generation(), Generation(1), "the AOF kept the record");
    assert_eq!(got.token().unwrap().access_token().expose(), "a");
    assert_eq!(
        store.swap(&scope, Generation(1), &record(2, "b")).unwrap(),
        Swap::Done
    );
}

#[test]
fn redis_announces_changes_to_waiters() {
    let dir = TempDir::new("redis-changes");
    let server = RedisServer::start(dir.0.clone());
    let store = RedisStore::open(&server.url()).unwrap();
    let scope = Scope::new("changes");
    let changes = store.changes(&scope).unwrap();
    // The subscriber connects in the background; a write before that would
    // go unheard (the poll covers it), so wait for its first announcement.
    let deadline = Instant::now() + Duration::from_secs(5);
    while changes.count() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let seen = changes.count();
    let writer = RedisStore::open(&server.url()).unwrap();
    assert_eq!(
        writer.swap(&scope, Generation(0), &record(1, "a")).unwrap(),
        Swap::Done
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while changes.count() == seen && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(changes.count() > seen, "the swap was announced");
}

/// A user refresher that counts its calls and rotates a credential:
/// `rt-N` buys `at-N+1` and `rt-N+1`.
type Calls = Arc<AtomicU32>;

type TestError = std::io::Error;

type Answer = std::future::Ready<Result<Renewal, RefreshError<TestError>>>;
type Rotating = Box<dyn Fn(Clock, Option<Secret>) -> Answer + Send + Sync + 'static>;
type Member<S> = (
    Handle<String, GuardError<TestError>>,
    Clock,
    tokenflight::store::Guard<S, Rotating>,
);

fn rotating(calls: Calls) -> Rotating {
    Box::new(move |clock: Clock, credential: Option<Secret>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let n: u32 = credential
            .as_ref()
            .and_then(|c| c.expose().strip_prefix("rt-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let token =
            Fresh::new(format!("at-{}", n + 1)).expiring_at(clock.after(Duration::from_secs(600)));
        std::future::ready(Ok(Renewal::new(token).rotating(format!("rt-{}", n + 1))))
    })
}

fn options(lease: Duration) -> GuardOptions {
    let mut o = GuardOptions::default();
    o.lease_ttl = lease;
    o.min_call_window = lease / 4;
    o.wait_limit = lease * 4;
    o
}

/// A handle on a guard: one "process" of the fleet.
fn member<S: Store + Clone>(store: &S, calls: &Calls, lease: Duration) -> Member<S> {
    let guard = store
        .clone()
        .guard(Scope::new("fleet"), rotating(Arc::clone(calls)))
        .with_options(options(lease));
    let clock = Clock::system();
    let handle = Handle::builder(guard.refresher())
        .config(Config::default())
        .clock(clock.clone())
        .build()
        .unwrap();
    (handle, clock, guard)
}

fn guard_suite<S: Store + Clone>(store: S) {
    let calls = Calls::default();
    let lease = Duration::from_millis(300);
    let (a, a_clock, a_guard) = member(&store, &calls, lease);
    let (b, b_clock, b_guard) = member(&store, &calls, lease);

    // Log in once, in a; b loads it: no refresh.
    let login = Fresh::new("at-0".to_string()).expiring_at(a_clock.after(Duration::from_secs(600)));
    a.set_token(a_guard.login(&a_clock, login, Some("rt-0".into())).unwrap());
    b.set_token(b_guard.load(&b_clock).unwrap().unwrap());
    assert_eq!(*b.try_ticket().unwrap().token(), "at-0");
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // One expiry seen by both: one refresh between them.
    futures::executor::block_on(async {
        let (ta, tb) = (a.ticket().await.unwrap(), b.ticket().await.unwrap());
        let ra = a.reject(ta).await.unwrap();
        let rb = b.reject(tb).await.unwrap();
        assert_eq!(ra.token(), "at-1");
        assert_eq!(rb.token(), "at-1", "b adopted a's token from the store");
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(a_guard.held(), b_guard.held());

    // A holder that died with the lease: b takes over once it runs out.
    let scope = Scope::new("fleet");
    assert!(store
        .try_lease(&scope, &Owner::unique(), lease)
        .unwrap()
        .is_some());
    let started = Instant::now();
    futures::executor::block_on(async {
        let t = b.ticket().await.unwrap();
        assert_eq!(b.reject(t).await.unwrap().token(), "at-2");
    });
    assert!(started.elapsed() >= lease - Duration::from_millis(50));
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // a still holds at-1: its rejection is answered from the store.
    futures::executor::block_on(async {
        let t = a.ticket().await.unwrap();
        assert_eq!(t.token(), "at-1");
        assert_eq!(a.reject(t).await.unwrap().token(), "at-2");
    });
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A restart needs no login.
    let (c, c_clock, c_guard) = member(&store, &calls, lease);
    c.set_token(c_guard.load(&c_clock).unwrap().unwrap());
    assert_eq!(*c.try_ticket().unwrap().token(), "at-2");

    // A logout reaches every process at its next refresh.
    a_guard.logout().unwrap();
    futures::executor::block_on(async {
        let t = c.ticket().await.unwrap();
        match c.reject(t).await {
            Err(tokenflight::Error::LoginRequired(e)) => {
                assert!(
                    matches!(&*e, Fault::Refresher(GuardError::LoggedOut)),
                    "{e:?}"
                );
            }
            other => panic!("expected a logout, got {other:?}"),
        }
    });
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(c_guard.load(&c_clock).unwrap().is_none());
}

#[test]
fn guarded_handles_share_one_refresh_take_over_a_dead_holder_and_log_out_together() {
    let dir = TempDir::new("guard-file");
    guard_suite(FileStore::open(&dir.0).unwrap());
    let redis_dir = TempDir::new("guard-redis");
    let server = RedisServer::start(redis_dir.0.clone());
    guard_suite(RedisStore::open(&server.url()).unwrap());
}

#[test]
fn a_fenced_holder_publishes_the_newer_token_not_its_own() {
    let dir = TempDir::new("fenced");
    let store = FileStore::open(&dir.0).unwrap();
    let scope = Scope::new("fleet");
    let calls = Calls::default();
    let inner = rotating(Arc::clone(&calls));
    let writer = store.clone();
    let scope2 = scope.clone();
    // While this holder's call is out, another process stores generation 9.
    let guard = store
        .clone()
        .guard(scope.clone(), move |clock: Clock, credential| {
            let current = writer
                .load(&scope2)
                .unwrap()
                .map_or(Generation(0), |r| r.generation());
            let stored = StoredToken::new(
                "at-newer",
                Some("rt-newer".into()),
                Some(
                    tokenflight::store::UnixMillis::now().saturating_add(Duration::from_secs(600)),
                ),
            );
            let r = Record::new(Generation(9), Owner::unique(), Some(stored));
            assert_eq!(writer.swap(&scope2, current, &r).unwrap(), Swap::Done);
            inner(clock, credential)
        });
    let clock = Clock::system();
    let handle = Handle::builder(guard.refresher())
        .clock(clock.clone())
        .build()
        .unwrap();
    let login = Fresh::new("at-0".to_string());
    handle.set_token(guard.login(&clock, login, Some("rt-0".into())).unwrap());
    futures::executor::block_on(async {
        let t = handle.ticket().await.unwrap();
        let retry = handle.reject(t).await.unwrap();
        assert_eq!(
            retry.token(),
            "at-newer",
            "never its own older write over a newer one"
        );
    });
    let stored = store.load(&scope).unwrap().unwrap();
    assert_eq!(stored.generation(), Generation(9));
    assert_eq!(stored.token().unwrap().access_token().expose(), "at-newer");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_renewal_the_store_could_not_take_is_stored_next_time_without_a_second_refresh() {
    let dir = TempDir::new("pending");
    let server = Arc::new(parking_lot::Mutex::new(RedisServer::start(dir.0.clone())));
    let url = server.lock().url();
    let store = RedisStore::open(&url)
        .unwrap()
        .with_timeout(Duration::from_millis(200));
    let calls = Calls::default();
    let inner = rotating(Arc::clone(&calls));
    // The refresher's answer arrives while Redis is down: the first call
    // SIGKILLs it before answering.
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (kill, killer) = (Arc::clone(&armed), Arc::clone(&server));
    let guard = store
        .clone()
        .guard(Scope::new("fleet"), move |clock: Clock, credential| {
            if kill.swap(false, Ordering::SeqCst) {
                killer.lock().kill();
            }
            inner(clock, credential)
        })
        // The lease outlives the outage (Redis kept it): the retry waits it out.
        .with_options(options(Duration::from_millis(400)));
    let clock = Clock::system();
    let mut config = Config::default();
    config.max_refresh_attempts = 1;
    config.cooldown = Duration::from_millis(1);
    let handle = Handle::builder(guard.refresher())
        .config(config)
        .clock(clock.clone())
        .build()
        .unwrap();
    let login = guard.login(&clock, Fresh::new("at-0".to_string()), Some("rt-0".into()));
    handle.set_token(login.unwrap());
    futures::executor::block_on(async {
        let t = handle.ticket().await.unwrap();
        let e = handle.reject(t).await.unwrap_err();
        let chain = chain(&e);
        assert_eq!(chain[1], "token store failed", "{chain:?}");
        assert!(chain[2].starts_with("redis store: cannot"), "{chain:?}");
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Redis back: the next refresh stores the remembered renewal instead of
    // spending rt-0 a second time.
    server.lock().restart();
    std::thread::sleep(Duration::from_millis(5));
    futures::executor::block_on(async {
        assert_eq!(handle.ticket().await.unwrap().token(), "at-1");
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1, "rt-0 was spent once");
    let stored = store.load(&Scope::new("fleet")).unwrap().unwrap();
    assert_eq!(
        stored.token().unwrap().credential().unwrap().expose(),
        "rt-1"
    );
}

#[test]
fn a_refresh_dropped_mid_call_gives_the_lease_back_at_once() {
    let dir = TempDir::new("dropped");
    let store = FileStore::open(&dir.0).unwrap();
    let scope = Scope::new("fleet");
    let guard = store
        .clone()
        .guard(scope.clone(), |_clock: Clock, _credential| {
            std::future::pending::<Result<Renewal, RefreshError<TestError>>>()
        });
    let refresher = guard.refresher();
    let mut call = refresher(tokenflight::Refresh::new(Clock::system()));
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(call.as_mut().poll(&mut cx).is_pending());
    // The call is out and holds the lease...
    assert!(store
        .try_lease(&scope, &Owner::unique(), Duration::from_secs(1))
        .unwrap()
        .is_none());
    // ...until the handle drops it (abandoned, or a login superseded it).
    drop(call);
    assert!(store
        .try_lease(&scope, &Owner::unique(), Duration::from_secs(1))
        .unwrap()
        .is_some());
}

#[test]
fn a_refused_refresh_rereads_the_store_before_declaring_the_session_dead() {
    let dir = TempDir::new("refused");
    let store = FileStore::open(&dir.0).unwrap();
    let scope = Scope::new("fleet");
    let (writer, at) = (store.clone(), scope.clone());
    // Our lease ran out mid-call and another process rotated the credential
    // meanwhile: the server refuses ours, the store has theirs.
    let guard = store
        .clone()
        .guard(scope.clone(), move |_clock: Clock, _credential| {
            let current = writer.load(&at).unwrap().unwrap().generation();
            let expires =
                tokenflight::store::UnixMillis::now().saturating_add(Duration::from_secs(600));
            let theirs = StoredToken::new("at-theirs", Some("rt-theirs".into()), Some(expires));
            let record = Record::new(Generation(current.0 + 1), Owner::unique(), Some(theirs));
            assert_eq!(writer.swap(&at, current, &record).unwrap(), Swap::Done);
            std::future::ready(Err::<Renewal, _>(RefreshError::Permanent(
                std::io::Error::other("invalid_grant"),
            )))
        });
    let clock = Clock::system();
    let handle = Handle::builder(guard.refresher())
        .clock(clock.clone())
        .build()
        .unwrap();
    handle.set_token(
        guard
            .login(&clock, Fresh::new("at-0".to_string()), Some("rt-0".into()))
            .unwrap(),
    );
    futures::executor::block_on(async {
        let t = handle.ticket().await.unwrap();
        assert_eq!(handle.reject(t).await.unwrap().token(), "at-theirs");
    });
    // Had the store held nothing newer, the refusal would end the session
    // for every process: a tombstone, so none spends the refused credential.
    let guard = store
        .clone()
        .guard(scope.clone(), |_clock: Clock, _credential| {
            std::future::ready(Err::<Renewal, _>(RefreshError::Permanent(
                std::io::Error::other("invalid_grant"),
            )))
        });
    let handle = Handle::builder(guard.refresher())
        .clock(clock.clone())
        .build()
        .unwrap();
    handle.set_token(guard.load(&clock).unwrap().unwrap());
    futures::executor::block_on(async {
        let t = handle.ticket().await.unwrap();
        assert!(matches!(
            handle.reject(t).await,
            Err(tokenflight::Error::LoginRequired(_))
        ));
    });
    let stored = store.load(&scope).unwrap().unwrap();
    assert!(
        stored.token().is_none(),
        "the session ended in the store: {stored:?}"
    );
}

/// A store whose next `failing` writes fail, as a flaky disk or network
/// would, after which it writes again.
#[derive(Clone)]
struct FlakyWrites<S> {
    store: S,
    failing: Arc<AtomicU32>,
    failed: Arc<AtomicU32>,
}

impl<S: Store> Store for FlakyWrites<S> {
    fn load(&self, scope: &Scope) -> Result<Option<Record>, StoreError> {
        self.store.load(scope)
    }

    fn swap(
        &self,
        scope: &Scope,
        expected: Generation,
        record: &Record,
    ) -> Result<Swap, StoreError> {
        let fail = self
            .failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Io {
                op: "write",
                path: "flaky".into(),
                source: std::io::Error::other("disk full"),
            });
        }
        self.store.swap(scope, expected, record)
    }

    fn try_lease(
        &self,
        scope: &Scope,
        owner: &Owner,
        ttl: Duration,
    ) -> Result<Option<tokenflight::store::LeaseGrant>, StoreError> {
        self.store.try_lease(scope, owner, ttl)
    }

    fn release(&self, scope: &Scope, owner: &Owner) -> Result<bool, StoreError> {
        self.store.release(scope, owner)
    }
}

/// A token endpoint with single-use rotating credentials: `rt-N` buys
/// `at-N+1` and `rt-N+1` once; spending it again is a reuse, which revokes
/// the login (as the token server does).
#[derive(Default)]
struct SingleUse {
    live: parking_lot::Mutex<Option<u32>>,
    calls: AtomicU32,
    reuses: AtomicU32,
}

fn single_use(server: Arc<SingleUse>) -> Rotating {
    Box::new(move |clock: Clock, credential: Option<Secret>| {
        server.calls.fetch_add(1, Ordering::SeqCst);
        let n: Option<u32> = credential
            .as_ref()
            .and_then(|c| c.expose().strip_prefix("rt-"))
            .and_then(|n| n.parse().ok());
        let mut live = server.live.lock();
        if n.is_none() || n != *live {
            if live.take().is_some() {
                server.reuses.fetch_add(1, Ordering::SeqCst);
            }
            return std::future::ready(Err(RefreshError::Permanent(std::io::Error::other(
                "invalid_grant",
            ))));
        }
        let n = n.expect("checked") + 1;
        *live = Some(n);
        let token =
            Fresh::new(format!("at-{n}")).expiring_at(clock.after(Duration::from_secs(600)));
        std::future::ready(Ok(Renewal::new(token).rotating(format!("rt-{n}"))))
    })
}

#[test]
fn a_failed_write_of_a_rotated_credential_is_retried_under_the_lease() {
    let dir = TempDir::new("flaky-writes");
    let store = FlakyWrites {
        store: FileStore::open(&dir.0).unwrap(),
        failing: Arc::default(),
        failed: Arc::default(),
    };
    let server = Arc::new(SingleUse::default());
    *server.live.lock() = Some(0);
    // One attempt per rejection: a handle that gave up on a failed write
    // leaves the next refresh to the other process, as a fleet does.
    let mut config = Config::default();
    config.max_refresh_attempts = 1;
    let member = || {
        let guard = store
            .clone()
            .guard(Scope::new("fleet"), single_use(Arc::clone(&server)))
            .with_options(options(Duration::from_secs(2)));
        let clock = Clock::system();
        let handle = Handle::builder(guard.refresher())
            .config(config.clone())
            .clock(clock.clone())
            .build()
            .unwrap();
        (handle, clock, guard)
    };
    let (a, a_clock, a_guard) = member();
    let (b, b_clock, b_guard) = member();
    let login = Fresh::new("at-0".to_string()).expiring_at(a_clock.after(Duration::from_secs(600)));
    a.set_token(a_guard.login(&a_clock, login, Some("rt-0".into())).unwrap());
    b.set_token(b_guard.load(&b_clock).unwrap().unwrap());

    // The server rotates rt-0 for a, then the store fails a's first writes.
    store.failing.store(3, Ordering::SeqCst);
    let (renewed, adopted) = futures::executor::block_on(async {
        let t = a.ticket().await.unwrap();
        let renewed = a.reject(t).await.map(|t| t.token().clone());
        let t = b.ticket().await.unwrap();
        (renewed, b.reject(t).await.map(|t| t.token().clone()))
    });
    assert_eq!(server.reuses.load(Ordering::SeqCst), 0, "rt-0 spent once");
    assert_eq!(server.calls.load(Ordering::SeqCst), 1, "one refresh");
    assert_eq!(store.failed.load(Ordering::SeqCst), 3);
    assert_eq!(renewed.unwrap(), "at-1", "stored on a later try");
    assert_eq!(adopted.unwrap(), "at-1", "adopted from the store");
    let stored = store.load(&Scope::new("fleet")).unwrap().unwrap();
    assert_eq!(
        stored.token().unwrap().credential().unwrap().expose(),
        "rt-1"
    );
}

#[test]
fn a_store_failure_under_a_guard_under_a_handle_is_found_down_the_source_chain() {
    let dir = TempDir::new("store-chain");
    let store = FileStore::open(&dir.0).unwrap();
    let calls = Calls::default();
    let guard = store
        .guard(Scope::new("chain"), rotating(Arc::clone(&calls)))
        .with_options(options(Duration::from_millis(200)));
    let clock = Clock::system();
    let mut config = Config::default();
    config.max_refresh_attempts = 1;
    config.cooldown = Duration::from_millis(1);
    let handle = Handle::builder(guard.refresher())
        .config(config)
        .clock(clock.clone())
        .build()
        .unwrap();
    let login = guard.login(&clock, Fresh::new("at-0".to_string()), Some("rt-0".into()));
    handle.set_token(login.unwrap());
    // The store's directory is replaced by a file: every file operation of
    // the next refresh fails.
    std::fs::remove_dir_all(&dir.0).unwrap();
    std::fs::write(&dir.0, b"not a directory").unwrap();
    let e = futures::executor::block_on(async {
        let t = handle.ticket().await.unwrap();
        handle.reject(t).await.unwrap_err()
    });
    assert!(e.is_retryable(), "{e:?}");
    let chain = chain(&e);
    assert_eq!(chain.len(), 4, "{chain:?}");
    assert_eq!(chain[0], "token refresh is failing, retry later");
    assert_eq!(chain[1], "token store failed");
    assert!(
        chain[2].starts_with("cannot ") && chain[2].contains(&*dir.0.to_string_lossy()),
        "{chain:?}"
    );
    // Each link is the typed error, not a string: the store's error, then
    // the system's, at the end.
    let mut links = Vec::new();
    let mut link: Option<&dyn std::error::Error> = Some(&e);
    while let Some(l) = link {
        links.push(l);
        link = l.source();
    }
    assert!(
        matches!(links[2].downcast_ref(), Some(StoreError::Io { .. })),
        "{chain:?}"
    );
    assert!(
        links[3].downcast_ref::<std::io::Error>().is_some(),
        "{chain:?}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no refresh without the store"
    );
    std::fs::remove_file(&dir.0).unwrap();
}
