//! The herd: N requests find the token expired at once, on a 2-worker
//! tokio runtime, and the refresh takes 1 ms. For tokenflight and for what
//! users build instead, this measures
//! - how many refresh calls were made (tokenflight: exactly one);
//! - the time from the refresh's return until the last waiter resumed,
//!   with all N parked before the refresh returns (the refresher waits
//!   until they are);
//! - the size of the future a waiting request awaits, the heap each parked
//!   waiter adds (a counting allocator), and the peak RSS of the process.
//!
//! Every (contender, N) run happens in a fresh child process (this binary
//! with `--child`), so that one run's heap and peak RSS never leak into the
//! next; the parent interleaves contenders over repetitions and prints
//! medians. `TOKENFLIGHT_BENCH_QUICK=1` runs fewer repetitions.

// Benches measure wall time: reading the clock is the point here.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use tokenflight::{Clock, Config, Fresh, Handle, RefreshError, Timestamp};

use common::{Moka, MutexHeld, PlRwLock, RefreshFn, SwapMutex, Token, TokioRwLock};

/// Counts every allocation, for the heap each parked waiter adds.
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const LIFETIME: Duration = Duration::from_secs(3600);
const REFRESH: Duration = Duration::from_millis(1);
const SIZES: [usize; 3] = [10, 1_000, 100_000];

/// Bytes live on the heap now. `stats_alloc` already counts a `realloc`'s
/// growth in `bytes_allocated` (and its shrinking in `bytes_deallocated`);
/// `bytes_reallocated` is the same change again, so it is not added.
fn live_heap() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// The contenders, by the name the parent passes to a child.
const CONTENDERS: [(&str, &str); 6] = [
    ("tokenflight", "tokenflight async Handle::ticket"),
    ("swap_mutex", "ArcSwap + tokio Mutex double-check"),
    ("pl_rwlock", "parking_lot RwLock (refresh outside the lock)"),
    ("tokio_rwlock", "tokio RwLock double-check"),
    ("mutex_held", "tokio Mutex held across refresh"),
    ("moka", "moka get_with"),
];

/// One run's shared bookkeeping; the refresher and the requests report here.
struct Herd {
    n: usize,
    base: Instant,
    /// Requests that asked for the token (then awaited it, without yielding
    /// in between).
    arrived: AtomicUsize,
    /// How many requests are parked, as the contender can tell; defaults to
    /// `arrived`.
    parked: OnceLock<Box<dyn Fn() -> usize + Send + Sync>>,
    /// The refresher counts only once the herd is released (tokenflight's
    /// first token comes from its refresher too).
    armed: AtomicBool,
    calls: AtomicUsize,
    /// Nanoseconds since `base`.
    first_return: AtomicU64,
    last_return: AtomicU64,
    last_resume: AtomicU64,
    /// Parked requests seen by the first refresh call to return.
    parked_at_return: AtomicUsize,
    /// Live heap when all requests were parked at the gate, and when all
    /// were parked in the contender (the first refresh call's reading).
    heap_at_gate: AtomicU64,
    heap_parked: AtomicU64,
    fresh: AtomicUsize,
    done: AtomicUsize,
    all_done: tokio::sync::Notify,
}

impl Herd {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Herd {
            n,
            base: Instant::now(),
            arrived: AtomicUsize::new(0),
            parked: OnceLock::new(),
            armed: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
            first_return: AtomicU64::new(u64::MAX),
            last_return: AtomicU64::new(0),
            last_resume: AtomicU64::new(0),
            parked_at_return: AtomicUsize::new(usize::MAX),
            heap_at_gate: AtomicU64::new(0),
            heap_parked: AtomicU64::new(u64::MAX),
            fresh: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            all_done: tokio::sync::Notify::new(),
        })
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn parked(&self) -> usize {
        match self.parked.get() {
            Some(parked) => parked(),
            None => self.arrived.load(Ordering::SeqCst),
        }
    }

    /// The refresh: waits until every request is parked, then takes 1 ms.
    /// Returns whether this call counted (false: the warm-up token).
    async fn refresh(&self) -> bool {
        if !self.armed.load(Ordering::SeqCst) {
            return false;
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        while self.parked() < self.n {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        tokio::time::sleep(REFRESH).await;
        let _ = self.heap_parked.compare_exchange(
            u64::MAX,
            live_heap() as u64,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        let _ = self.parked_at_return.compare_exchange(
            usize::MAX,
            self.parked(),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        let now = self.now();
        self.first_return.fetch_min(now, Ordering::SeqCst);
        self.last_return.fetch_max(now, Ordering::SeqCst);
        true
    }

    /// A refresher for the alternatives.
    fn refresher(self: &Arc<Self>) -> RefreshFn {
        let herd = Arc::clone(self);
        Arc::new(move || {
            let herd = Arc::clone(&herd);
            Box::pin(async move {
                let value = if herd.refresh().await { "fresh" } else { "old" };
                Token::new(value, LIFETIME)
            })
        })
    }

    /// One request resumed with `fresh` (the new token, or not).
    fn resumed(&self, fresh: bool) {
        self.last_resume.fetch_max(self.now(), Ordering::SeqCst);
        if fresh {
            self.fresh.fetch_add(1, Ordering::SeqCst);
        }
        if self.done.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            self.all_done.notify_one();
        }
    }
}

/// What the herd needs of a contender.
trait Subject: Send + Sync + 'static {
    /// Makes the current token expired.
    fn expire(&self) -> impl Future<Output = ()> + Send;
    /// A request: gets the token, and tells whether it is the new one.
    fn get(&self) -> impl Future<Output = bool> + Send;
    /// The size of the future a waiting request awaits.
    fn future_size(&self) -> usize;
}

/// tokenflight's async handle, with a clock that can jump past the expiry.
struct Flight {
    handle: Handle<String, ()>,
    skip: Arc<AtomicU64>,
}

impl Flight {
    fn new(herd: &Arc<Herd>) -> Self {
        let origin = Instant::now();
        let skip = Arc::new(AtomicU64::new(0));
        let clock_skip = Arc::clone(&skip);
        let clock = Clock::manual(move || {
            Timestamp::from_elapsed(origin.elapsed())
                + Duration::from_nanos(clock_skip.load(Ordering::SeqCst))
        });
        let refresh_herd = Arc::clone(herd);
        let handle = Handle::builder(move |_| {
            let herd = Arc::clone(&refresh_herd);
            async move {
                let value = if herd.refresh().await { "fresh" } else { "old" };
                let fresh = Fresh::new(value.to_string()).expires_in(LIFETIME);
                Ok::<_, RefreshError<()>>(fresh)
            }
        })
        .config(Config::default())
        .clock(clock)
        .sleep(tokio::time::sleep)
        .build()
        .unwrap();
        let counted = handle.clone();
        let _ = herd.parked.set(Box::new(move || counted.waiters()));
        Flight { handle, skip }
    }
}

impl Subject for Flight {
    async fn expire(&self) {
        // The first token, then a clock two lifetimes later.
        self.handle.ticket().await.unwrap();
        self.skip
            .store(2 * LIFETIME.as_nanos() as u64, Ordering::SeqCst);
        assert!(self.handle.try_ticket().is_none());
    }

    async fn get(&self) -> bool {
        let ticket = self.handle.ticket().await.unwrap();
        ticket.token() == "fresh"
    }

    fn future_size(&self) -> usize {
        std::mem::size_of_val(&self.handle.ticket())
    }
}

macro_rules! subject {
    ($ty:ty, $($awaited:tt)?) => {
        impl Subject for $ty {
            async fn expire(&self) {
                <$ty>::expire(self)$(.$awaited)?
            }

            async fn get(&self) -> bool {
                <$ty>::get(self).await.value == "fresh"
            }

            fn future_size(&self) -> usize {
                std::mem::size_of_val(&<$ty>::get(self))
            }
        }
    };
}

subject!(SwapMutex,);
subject!(PlRwLock,);
subject!(TokioRwLock,);
subject!(MutexHeld,);
subject!(Moka, await);

/// Only the harness: requests that pass the gate and end at once. Its peak
/// RSS and heap are what the harness itself costs.
struct Baseline;

impl Subject for Baseline {
    async fn expire(&self) {}

    async fn get(&self) -> bool {
        true
    }

    fn future_size(&self) -> usize {
        0
    }
}

/// One run in this process: prints `key=value` pairs on one line.
fn child(name: &str, n: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let herd = Herd::new(n);
    let report = runtime.block_on(async {
        match name {
            "tokenflight" => run(Flight::new(&herd), &herd).await,
            "swap_mutex" => run(SwapMutex::new(old(), herd.refresher()), &herd).await,
            "pl_rwlock" => run(PlRwLock::new(old(), herd.refresher()), &herd).await,
            "tokio_rwlock" => run(TokioRwLock::new(old(), herd.refresher()), &herd).await,
            "mutex_held" => run(MutexHeld::new(old(), herd.refresher()), &herd).await,
            "moka" => run(Moka::new(LIFETIME, herd.refresher()), &herd).await,
            "baseline" => run(Baseline, &herd).await,
            other => panic!("no contender {other}"),
        }
    });
    println!("{report} vmhwm_kb={}", vm_hwm_kb());
}

fn old() -> Token {
    Token::new("old", LIFETIME)
}

async fn run<S: Subject>(subject: S, herd: &Arc<Herd>) -> String {
    let subject = Arc::new(subject);
    subject.expire().await;
    let future_size = subject.future_size();
    herd.armed.store(true, Ordering::SeqCst);
    let before_spawn = live_heap();
    let (open, gate) = tokio::sync::watch::channel(false);
    let at_gate = Arc::new(AtomicUsize::new(0));
    for _ in 0..herd.n {
        let (subject, herd, mut gate, at_gate) = (
            Arc::clone(&subject),
            Arc::clone(herd),
            gate.clone(),
            Arc::clone(&at_gate),
        );
        // Detached: joining each handle would wake this thread per request.
        drop(tokio::spawn(async move {
            at_gate.fetch_add(1, Ordering::SeqCst);
            gate.changed().await.unwrap();
            herd.arrived.fetch_add(1, Ordering::SeqCst);
            let fresh = subject.get().await;
            herd.resumed(fresh);
        }));
    }
    while at_gate.load(Ordering::SeqCst) < herd.n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    let at_gate_heap = live_heap();
    herd.heap_at_gate
        .store(at_gate_heap as u64, Ordering::SeqCst);
    let done = herd.all_done.notified();
    open.send(true).unwrap();
    done.await;

    let n = herd.n as f64;
    let task_heap = (at_gate_heap - before_spawn) as f64 / n;
    let heap_parked = herd.heap_parked.load(Ordering::SeqCst);
    let (extra_heap, resume_ns, return_spread_ns) = if heap_parked == u64::MAX {
        (0.0, 0, 0)
    } else {
        let first = herd.first_return.load(Ordering::SeqCst);
        (
            (heap_parked as i64 - at_gate_heap) as f64 / n,
            herd.last_resume.load(Ordering::SeqCst) - first,
            herd.last_return.load(Ordering::SeqCst) - first,
        )
    };
    format!(
        "n={} refreshes={} parked_at_return={} fresh={} resume_ns={resume_ns} \
         return_spread_ns={return_spread_ns} future_b={future_size} \
         task_heap_b={task_heap:.1} extra_heap_b={extra_heap:.1}",
        herd.n,
        herd.calls.load(Ordering::SeqCst),
        match herd.parked_at_return.load(Ordering::SeqCst) {
            usize::MAX => 0,
            p => p,
        },
        herd.fresh.load(Ordering::SeqCst),
    )
}

/// This process's peak resident set, from /proc (0 where there is none).
fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Runs one child and parses its line.
fn spawn_child(name: &str, n: usize) -> BTreeMap<String, f64> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--child", name, &n.to_string()])
        .output()
        .expect("the bench can run itself");
    assert!(
        out.status.success(),
        "{name} N={n} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

fn parent() {
    let quick = std::env::var_os("TOKENFLIGHT_BENCH_QUICK").is_some_and(|v| v != "0");
    let reps = if quick { 3 } else { 11 };
    let mut runs: BTreeMap<(usize, usize), Vec<BTreeMap<String, f64>>> = BTreeMap::new();
    for rep in 0..reps {
        eprintln!("herd: repetition {} of {reps}", rep + 1);
        for &n in &SIZES {
            for k in 0..CONTENDERS.len() {
                let c = (k + rep) % CONTENDERS.len();
                runs.entry((n, c))
                    .or_default()
                    .push(spawn_child(CONTENDERS[c].0, n));
            }
        }
    }
    let baseline = spawn_child("baseline", 100_000);

    let values = |n: usize, c: usize, key: &str| -> Vec<f64> {
        runs[&(n, c)].iter().map(|r| r[key]).collect()
    };
    println!(
        "\nherd, {reps} runs per cell (each a fresh process), 2 tokio workers, refresh = 1 ms"
    );
    println!("refresh calls (every run) | time from the refresh's return to the last waiter resumed: median [min–max]\n");
    println!(
        "| contender | N | refresh calls | all parked before return | resume time | per waiter | ÷ best other |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|");
    for &n in &SIZES {
        for (c, (_, label)) in CONTENDERS.iter().enumerate() {
            let calls = values(n, c, "refreshes");
            let (lo, hi) = calls
                .iter()
                .fold((f64::MAX, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            let calls = if lo == hi {
                format!("{lo}")
            } else {
                format!("{lo}–{hi}")
            };
            let parked = values(n, c, "parked_at_return")
                .iter()
                .all(|&p| p >= n as f64);
            let fresh = values(n, c, "fresh").iter().all(|&f| f == n as f64);
            assert!(
                fresh,
                "{label} N={n}: a request resumed without the new token"
            );
            let mut resume: Vec<f64> = values(n, c, "resume_ns").iter().map(|x| x / 1e6).collect();
            let (min, max) = (
                resume.iter().copied().fold(f64::MAX, f64::min),
                resume.iter().copied().fold(0.0, f64::max),
            );
            let med = median(&mut resume);
            // Within each repetition: this contender's resume time over the
            // fastest of the others in the same repetition; then the median.
            let mut ratios: Vec<f64> = (0..reps)
                .map(|rep| {
                    let own = runs[&(n, c)][rep]["resume_ns"];
                    let best = (0..CONTENDERS.len())
                        .filter(|&o| o != c)
                        .map(|o| runs[&(n, o)][rep]["resume_ns"])
                        .fold(f64::MAX, f64::min);
                    own / best
                })
                .collect();
            println!(
                "| {label} | {n} | {calls} | {} | {med:.2} ms [{min:.2}–{max:.2}] | {:.0} ns | {:.2} |",
                if parked { "yes" } else { "no" },
                med * 1e6 / n as f64,
                median(&mut ratios),
            );
        }
    }
    println!("\nmemory per waiter at N = 100000 (medians over the runs above)\n");
    println!("| contender | waiting future | extra heap per parked waiter | peak RSS |");
    println!("|---|---:|---:|---:|");
    for (c, (_, label)) in CONTENDERS.iter().enumerate() {
        let future = values(100_000, c, "future_b")[0];
        let heap = median(&mut values(100_000, c, "extra_heap_b"));
        let rss = median(&mut values(100_000, c, "vmhwm_kb"));
        println!(
            "| {label} | {future:.0} B | {heap:.1} B | {:.1} MiB |",
            rss / 1024.0
        );
    }
    println!(
        "| harness alone (tokio task per request, parked at the gate) | – | {:.1} B (the task itself) | {:.1} MiB |",
        baseline["task_heap_b"],
        baseline["vmhwm_kb"] / 1024.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--child") {
        Some(i) => child(&args[i + 1], args[i + 2].parse().unwrap()),
        None => parent(),
    }
}
