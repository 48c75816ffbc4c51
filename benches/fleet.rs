//! The fleet herd: N processes × 1 000 waiters each meet one expiry at the
//! same moment (every waiter's token is rejected at an agreed wall-clock
//! instant), and the token endpoint takes 50 ms. Per store backend, and for
//! the lock-around-read/write-only cache that MSAL-style libraries use (the
//! file is locked to read it and to write it, not across the refresh), this
//! measures
//! - the refresh calls made across the fleet (the guard: exactly one);
//! - the time from the (first) refresher's return until each waiter, in any
//!   process, resumed: p50, p99 and max (the last waiter).
//!
//! The bench binary re-runs itself as the fleet's processes. It needs
//! `redis-server` on the `PATH` for the Redis rows.
//! `TOKENFLIGHT_BENCH_QUICK=1` runs one repetition instead of three.

// Benches measure wall time, and the processes agree on wall-clock instants.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokenflight::store::{
    FileStore, GuardOptions, Owner, Record, RedisStore, Renewal, Scope, Secret, Store, StoredToken,
    Swap,
};
use tokenflight::{Clock, Config, Fresh, Generation, Handle, RefreshError};

const WAITERS: usize = 1_000;
const ENDPOINT: Duration = Duration::from_millis(50);
const SCOPE: &str = "bench";

fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn main() {
    if std::env::var("TF_FLEET_CHILD").is_ok() {
        child();
        return;
    }
    // `cargo bench` passes `--bench`; nothing else is understood.
    let reps = if std::env::var("TOKENFLIGHT_BENCH_QUICK").is_ok() {
        1
    } else {
        3
    };
    let root = std::env::temp_dir().join(format!("tf-fleet-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).unwrap();
    let redis = Redis::start(&root.join("redis"));
    println!(
        "fleet herd: {WAITERS} waiters per process, endpoint {} ms, {reps} repetition(s)",
        ENDPOINT.as_millis()
    );
    println!(
        "{:<34} {:>5} {:>14} {:>10} {:>10} {:>10}",
        "contender", "procs", "refresh calls", "p50 ms", "p99 ms", "max ms"
    );
    let mut run = 0;
    for processes in [8, 32] {
        for _ in 0..reps {
            for (mode, label) in [
                ("file", "guard, file store"),
                ("redis", "guard, Redis store"),
                ("msal", "lock around read/write only (file)"),
            ] {
                run += 1;
                let dir = root.join(format!("run-{run}"));
                fs::create_dir_all(&dir).unwrap();
                let figures = one_run(&dir, mode, processes, &redis.url(), run);
                println!(
                    "{:<34} {:>5} {:>14} {:>10.2} {:>10.2} {:>10.2}",
                    label, processes, figures.calls, figures.p50, figures.p99, figures.max,
                );
                let _ = fs::remove_dir_all(&dir);
            }
        }
    }
    drop(redis);
    let _ = fs::remove_dir_all(&root);
}

struct Figures {
    calls: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

fn one_run(dir: &Path, mode: &str, processes: usize, redis_url: &str, run: usize) -> Figures {
    let prefix = format!("bench{run}:");
    let store_dir = dir.join("store");
    // The login every process starts from.
    let record = Record::new(
        Generation(1),
        Owner::unique(),
        Some(StoredToken::new("at-1", Some("rt-1".into()), None)),
    );
    let swap = if mode == "redis" {
        RedisStore::open(redis_url)
            .unwrap()
            .with_prefix(prefix.clone())
            .swap(&Scope::new(SCOPE), Generation(0), &record)
    } else {
        FileStore::open(&store_dir)
            .unwrap()
            .swap(&Scope::new(SCOPE), Generation(0), &record)
    };
    assert_eq!(swap.unwrap(), Swap::Done);
    // Late enough for every process to start and park its waiters.
    let go = wall_us() + 1_500_000 + processes as u64 * 60_000;
    let children: Vec<Child> = (0..processes)
        .map(|i| {
            Command::new(std::env::current_exe().unwrap())
                .env("TF_FLEET_CHILD", "1")
                .env("TF_MODE", mode)
                .env("TF_DIR", dir)
                .env("TF_STORE_DIR", &store_dir)
                .env("TF_REDIS", redis_url)
                .env("TF_PREFIX", &prefix)
                .env("TF_INDEX", i.to_string())
                .env("TF_GO", go.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let calls = fs::read_to_string(dir.join("calls")).unwrap_or_default();
    let returned: Vec<u64> = calls.lines().map(|l| l.parse().unwrap()).collect();
    let first_return = *returned.iter().min().expect("a refresh was made");
    let mut latencies: Vec<f64> = Vec::with_capacity(processes * WAITERS);
    for i in 0..processes {
        let text = fs::read_to_string(dir.join(format!("resumed-{i}"))).unwrap();
        latencies.extend(
            text.lines()
                .map(|l| l.parse::<u64>().unwrap().saturating_sub(first_return) as f64 / 1000.0),
        );
    }
    assert_eq!(latencies.len(), processes * WAITERS, "every waiter resumed");
    latencies.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Figures {
        calls: returned.len(),
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} unset"))
}

/// One process of the fleet.
fn child() {
    let mode = env("TF_MODE");
    let dir = PathBuf::from(env("TF_DIR"));
    let go: u64 = env("TF_GO").parse().unwrap();
    let index = env("TF_INDEX");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let calls_file = dir.join("calls");
    let endpoint = move || {
        let calls_file = calls_file.clone();
        async move {
            tokio::time::sleep(ENDPOINT).await;
            let returned = wall_us();
            let mut f = fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&calls_file)
                .unwrap();
            f.write_all(format!("{returned}\n").as_bytes()).unwrap();
            Fresh::new(format!("at-new-{}", std::process::id()))
        }
    };
    let resumed: Vec<u64> = match mode.as_str() {
        "file" => {
            let store = FileStore::open(env("TF_STORE_DIR")).unwrap();
            runtime.block_on(guarded(store, endpoint, go))
        }
        "redis" => {
            let store = RedisStore::open(&env("TF_REDIS"))
                .unwrap()
                .with_prefix(env("TF_PREFIX"));
            runtime.block_on(guarded(store, endpoint, go))
        }
        "msal" => {
            let store = FileStore::open(env("TF_STORE_DIR")).unwrap();
            runtime.block_on(lock_around_read_write(store, endpoint, go))
        }
        other => panic!("unknown mode {other}"),
    };
    let text: String = resumed.iter().map(|t| format!("{t}\n")).collect();
    fs::write(dir.join(format!("resumed-{index}")), text).unwrap();
}

/// Parks `WAITERS` requests on `handle` and rejects all their tokens at the
/// wall-clock instant `go`; returns when each resumed.
async fn herd<E: Send + Sync + std::fmt::Debug + 'static>(
    handle: tokenflight::Handle<String, E>,
    go: u64,
) -> Vec<u64> {
    let tasks: Vec<_> = (0..WAITERS)
        .map(|_| {
            let handle = handle.clone();
            tokio::spawn(async move {
                let ticket = handle.ticket().await.unwrap();
                let wait = go.saturating_sub(wall_us());
                tokio::time::sleep(Duration::from_micros(wait)).await;
                let retry = handle.reject(ticket).await.unwrap();
                let at = wall_us();
                assert_ne!(retry.token(), "at-1");
                at
            })
        })
        .collect();
    let mut resumed = Vec::with_capacity(WAITERS);
    for task in tasks {
        resumed.push(task.await.unwrap());
    }
    resumed
}

async fn guarded<S, F, Fut>(store: S, endpoint: F, go: u64) -> Vec<u64>
where
    S: Store,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Fresh<String>> + Send + 'static,
{
    let guard = store
        .guard(
            Scope::new(SCOPE),
            move |_clock: Clock, _credential: Option<Secret>| {
                let answer = endpoint();
                async move {
                    Ok::<_, RefreshError<std::io::Error>>(
                        Renewal::new(answer.await).rotating("rt-2"),
                    )
                }
            },
        )
        .with_options(GuardOptions::default());
    let clock = Clock::system();
    let handle = Handle::builder(guard.refresher())
        .config(Config::default())
        .clock(clock.clone())
        .build()
        .unwrap();
    handle.set_token(guard.load(&clock).unwrap().unwrap());
    herd(handle, go).await
}

/// What MSAL-style caches do: the cache file is locked to read it and to
/// write it, not across the refresh. A process whose read finds nothing
/// newer refreshes itself.
async fn lock_around_read_write<F, Fut>(store: FileStore, endpoint: F, go: u64) -> Vec<u64>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Fresh<String>> + Send + 'static,
{
    let scope = Scope::new(SCOPE);
    let held = Arc::new(AtomicU64::new(1));
    let refresher = move |_| {
        let (store, scope, held, answer) =
            (store.clone(), scope.clone(), Arc::clone(&held), endpoint());
        async move {
            let read = store.load(&scope).unwrap().unwrap();
            if read.generation().0 > held.load(Ordering::SeqCst) {
                held.store(read.generation().0, Ordering::SeqCst);
                let token = read.token().unwrap().access_token().expose().to_string();
                return Ok::<_, RefreshError<std::io::Error>>(Fresh::new(token));
            }
            let fresh = answer.await;
            // Last writer wins: read the current generation, write over it.
            loop {
                let current = store.load(&scope).unwrap().map_or(0, |r| r.generation().0);
                let token = StoredToken::new(fresh.token().clone(), Some("rt".into()), None);
                let record = Record::new(Generation(current + 1), Owner::unique(), Some(token));
                if store.swap(&scope, Generation(current), &record).unwrap() == Swap::Done {
                    held.store(current + 1, Ordering::SeqCst);
                    break;
                }
            }
            Ok(fresh)
        }
    };
    let handle = Handle::builder(refresher)
        .config(Config::default())
        .build()
        .unwrap();
    handle.set_token(Fresh::new("at-1".to_string()));
    herd(handle, go).await
}

/// A `redis-server` on 127.0.0.1 for the Redis rows, stopped on drop.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start(dir: &Path) -> Self {
        fs::create_dir_all(dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the fleet bench");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Redis { port, child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
