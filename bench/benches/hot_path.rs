//! The hot path: a request asks for the token while it is valid and no
//! refresh runs. tokenflight's handles against the floors (an `ArcSwap`
//! read plus an `Instant::now()` expiry check) and what users build
//! instead, on 1 thread and on 2 threads hitting the same shared state.
//!
//! Two measurements of the same closures:
//! - criterion, one contender after another (`cargo bench --bench hot_path`);
//! - an interleaved summary: every round takes one sample of every
//!   contender, in a rotating order, so that the machine's load drifts over
//!   all of them alike; it prints medians, spreads and the ratios to the
//!   floor taken round by round. BENCHMARKS.md quotes this table.
//!
//! tokenflight's handles are measured twice: idle, and while a refresh
//! ahead of expiry runs (the token is due but usable, the refresher has not
//! answered, and every request must still take the fast path).
//!
//! `TOKENFLIGHT_BENCH_QUICK=1` shortens both; `TOKENFLIGHT_BENCH_SUMMARY_ONLY=1`
//! skips criterion. `--list` prints the contenders' names and
//! `--count NAME ITERS` runs one contender's loop once, ITERS calls on this
//! thread, for an instruction count under callgrind
//! (`scripts/count-hot-path.sh` runs them all).

// Benches measure wall time: reading the clock is the point here.
#![allow(clippy::disallowed_methods)]

mod common;

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::Criterion;
use tokenflight::{blocking, Config, Fresh, Generation, Handle, Phase, RefreshError};

use common::{poll_once, ready_now, Moka, MutexHeld, PlRwLock, SwapMutex, Token, TokioRwLock};

const LIFETIME: Duration = Duration::from_secs(3600);

/// One contender: its name and its loop, run on one thread or two.
struct Contender {
    name: &'static str,
    /// Runs `iters` calls on this thread; returns the time they took.
    one: Box<dyn Fn(u64) -> Duration>,
    /// Runs `iters` calls on each of two threads started together; returns
    /// the mean time per thread.
    two: Box<dyn Fn(u64) -> Duration>,
}

impl Contender {
    fn new<F>(name: &'static str, op: F) -> Self
    where
        F: Fn() -> usize + Send + Sync + 'static,
    {
        let op = Arc::new(op);
        let op2 = Arc::clone(&op);
        Contender {
            name,
            one: Box::new(move |iters| run(&*op, iters)),
            two: Box::new(move |iters| {
                let barrier = Barrier::new(2);
                let total: Duration = thread::scope(|s| {
                    let threads: Vec<_> = (0..2)
                        .map(|_| {
                            s.spawn(|| {
                                barrier.wait();
                                run(&*op2, iters)
                            })
                        })
                        .collect();
                    threads.into_iter().map(|t| t.join().unwrap()).sum()
                });
                total / 2
            }),
        }
    }
}

/// The measured loop, monomorphised per contender so that no indirect call
/// sits between the iterations.
#[inline(never)]
fn run<F: Fn() -> usize>(op: &F, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(op());
    }
    start.elapsed()
}

/// tokenflight's handles with a refresh ahead of expiry under way: their
/// first token is due for a refresh halfway through its life (the core
/// never refreshes earlier), and the refresher never answers the second
/// call, so from then until the token stops being usable every request
/// finds a usable token while the handle is `Refreshing`.
struct Ahead {
    handle: Handle<String, ()>,
    blocking: blocking::Handle<String, ()>,
    /// When the token is due (the core refreshes at half its life at the
    /// earliest).
    due: Instant,
    /// When the token stops being usable.
    usable_until: Instant,
}

impl Ahead {
    /// Handles whose token lives `lifetime`; the window with a refresh
    /// ahead under way is its second half, less one second of safety
    /// margin.
    fn new(lifetime: Duration) -> Self {
        let mut config = Config::default().with_expiry_skew(lifetime, Duration::ZERO);
        config.safety_margin = Duration::from_secs(1);
        // No timer may fire while measured: a timeout would be work for the
        // next request to pick up.
        config.refresh_timeout = Duration::from_secs(3600);
        config.refresh_abandon_after = Duration::from_secs(3600);
        let fresh = move || Fresh::new("token".to_string()).expires_in(lifetime);
        let start = Instant::now();
        let handle = Handle::builder(move |refresh| async move {
            if refresh.generation() != Generation::NONE {
                std::future::pending::<()>().await;
            }
            Ok::<_, RefreshError<()>>(fresh())
        })
        .config(config.clone())
        .build()
        .unwrap();
        futures::executor::block_on(handle.ticket()).unwrap();
        let hang_until = Instant::now() + lifetime + Duration::from_secs(1);
        let blocking = blocking::Handle::builder(move |refresh| {
            if refresh.generation() != Generation::NONE {
                // The handle's own thread. Past the token's life the call
                // fails, so that a request the window left waiting returns
                // (and `check` fails the run) instead of hanging it.
                while Instant::now() < hang_until {
                    thread::park_timeout(hang_until - Instant::now());
                }
                return Err(RefreshError::Permanent(()));
            }
            Ok::<_, RefreshError<()>>(fresh())
        })
        .config(config)
        .build()
        .unwrap();
        blocking.ticket().unwrap();
        // Both tokens were issued between `start` and now.
        Ahead {
            handle,
            blocking,
            due: Instant::now() + lifetime / 2 + Duration::from_millis(10),
            usable_until: start + lifetime - Duration::from_secs(1),
        }
    }

    /// Waits until the tokens are due, and lets one request each start the
    /// refresh ahead of expiry.
    fn start(&self) {
        let wait = self.due.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            eprintln!("hot path: waiting {wait:.1?} for the refresh ahead of expiry");
            thread::sleep(wait);
        }
        futures::executor::block_on(self.handle.ticket()).unwrap();
        self.blocking.ticket().unwrap();
        self.check();
    }

    /// Asserts that a refresh ahead of expiry is still under way, with the
    /// first token still handed out: what was measured is that state.
    fn check(&self) {
        assert!(
            Instant::now() < self.usable_until,
            "the refresh-ahead window closed during the measurement: make the lifetime longer"
        );
        for status in [self.handle.status(), self.blocking.status()] {
            assert_eq!(status.phase, Phase::Refreshing, "a refresh ahead runs");
            assert_eq!(status.generation, Generation(1), "with the first token");
        }
        assert!(self.handle.try_ticket().is_some() && self.blocking.try_ticket().is_some());
    }

    fn contenders(&self) -> Vec<Contender> {
        let (a, b, c, d) = (
            self.handle.clone(),
            self.handle.clone(),
            self.blocking.clone(),
            self.blocking.clone(),
        );
        vec![
            Contender::new(
                "tokenflight async try_ticket, refresh ahead running",
                move || a.try_ticket().map_or(0, |t| t.token().len()),
            ),
            Contender::new(
                "tokenflight async ticket().await, refresh ahead running",
                move || ready_now(b.ticket()).map_or(0, |t| t.token().len()),
            ),
            Contender::new(
                "tokenflight blocking try_ticket, refresh ahead running",
                move || c.try_ticket().map_or(0, |t| t.token().len()),
            ),
            Contender::new(
                "tokenflight blocking ticket, refresh ahead running",
                move || d.ticket().map_or(0, |t| t.token().len()),
            ),
        ]
    }
}

fn contenders() -> Vec<Contender> {
    let swap = Arc::new(ArcSwap::from_pointee(Token::new("token", LIFETIME)));
    let swap_full = Arc::clone(&swap);
    let swap_awaited = Arc::clone(&swap);
    let swap_awaited_error = Arc::clone(&swap);

    let refresher = |_| async move {
        let fresh = Fresh::new("token".to_string()).expires_in(LIFETIME);
        Ok::<_, RefreshError<()>>(fresh)
    };
    let handle = Handle::new(Config::default(), refresher).unwrap();
    futures::executor::block_on(handle.ticket()).unwrap();
    let handle_ticket = handle.clone();

    let blocking = blocking::Handle::new(Config::default(), |_| {
        let fresh = Fresh::new("token".to_string()).expires_in(LIFETIME);
        Ok::<_, RefreshError<()>>(fresh)
    })
    .unwrap();
    blocking.ticket().unwrap();
    let blocking_ticket = blocking.clone();

    let never = common::never_called;
    let swap_mutex = SwapMutex::new(Token::new("token", LIFETIME), never());
    let pl = PlRwLock::new(Token::new("token", LIFETIME), never());
    let tokio_rw = TokioRwLock::new(Token::new("token", LIFETIME), never());
    let held = MutexHeld::new(Token::new("token", LIFETIME), never());
    let moka = Moka::new(LIFETIME, never());
    let moka_warm = Moka::new(
        LIFETIME,
        Arc::new(|| Box::pin(async { Token::new("token", LIFETIME) })),
    );
    poll_once(moka_warm.get());
    drop(moka);
    let moka = moka_warm;

    vec![
        Contender::new("floor: ArcSwap load + expiry check", move || {
            let token = swap.load();
            if token.is_valid() {
                token.value.len()
            } else {
                0
            }
        }),
        Contender::new("floor: ArcSwap load_full + expiry check", move || {
            let token = swap_full.load_full();
            if token.is_valid() {
                token.value.len()
            } else {
                0
            }
        }),
        // What awaiting costs by itself: the floor's read as a future that is
        // ready at once and answers a `Result`, polled as `ticket()` is.
        Contender::new("floor awaited: the same in a ready future", move || {
            let read = async {
                let token = swap_awaited.load();
                if token.is_valid() {
                    Ok(token)
                } else {
                    Err(())
                }
            };
            ready_now(read).map_or(0, |t| t.value.len())
        }),
        // The same, answering with tokenflight's error type: a `Result` too
        // large for the two registers a small one comes back in.
        Contender::new("floor awaited, with ticket()'s error type", move || {
            let read = async {
                let token = swap_awaited_error.load();
                if token.is_valid() {
                    Ok(token)
                } else {
                    Err(tokenflight::Error::<tokenflight::Fault<()>>::Overloaded)
                }
            };
            ready_now(read).map_or(0, |t| t.value.len())
        }),
        Contender::new("tokenflight async try_ticket", move || {
            handle.try_ticket().map_or(0, |t| t.token().len())
        }),
        Contender::new("tokenflight async ticket().await", move || {
            ready_now(handle_ticket.ticket()).map_or(0, |t| t.token().len())
        }),
        Contender::new("tokenflight blocking try_ticket", move || {
            blocking.try_ticket().map_or(0, |t| t.token().len())
        }),
        Contender::new("tokenflight blocking ticket", move || {
            blocking_ticket.ticket().map_or(0, |t| t.token().len())
        }),
        Contender::new("ArcSwap + tokio Mutex double-check", move || {
            poll_once(swap_mutex.get()).value.len()
        }),
        Contender::new("parking_lot RwLock", move || {
            pl.try_get().map_or(0, |t| t.value.len())
        }),
        Contender::new("tokio RwLock double-check", move || {
            poll_once(tokio_rw.get()).value.len()
        }),
        Contender::new("tokio Mutex held across refresh", move || {
            poll_once(held.get()).value.len()
        }),
        Contender::new("moka get_with", move || poll_once(moka.get()).value.len()),
    ]
}

fn quick() -> bool {
    std::env::var_os("TOKENFLIGHT_BENCH_QUICK").is_some_and(|v| v != "0")
}

fn criterion() -> Criterion {
    if quick() {
        Criterion::default()
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(600))
            .sample_size(10)
    } else {
        Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(50)
    }
    .configure_from_args()
}

fn criterion_runs(c: &mut Criterion, contenders: &[Contender], suffix: &str) {
    let mut group = c.benchmark_group(format!("hot_path{suffix}/1_thread"));
    for contender in contenders {
        group.bench_function(contender.name, |b| b.iter_custom(|n| (contender.one)(n)));
    }
    group.finish();
    let mut group = c.benchmark_group(format!("hot_path{suffix}/2_threads_per_thread"));
    for contender in contenders {
        group.bench_function(contender.name, |b| b.iter_custom(|n| (contender.two)(n)));
    }
    group.finish();
}

fn ns_per_op(elapsed: Duration, iters: u64) -> f64 {
    elapsed.as_nanos() as f64 / iters as f64
}

/// The `q` quantile (0..=1) of `samples`, by linear interpolation.
fn quantile(samples: &[f64], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn summary(contenders: &[Contender]) {
    let (rounds, sample_time) = if quick() {
        (15, Duration::from_millis(4))
    } else {
        (61, Duration::from_millis(15))
    };
    // Calibrate: how many calls fill one sample.
    let iters: Vec<u64> = contenders
        .iter()
        .map(|c| {
            (c.one)(10_000);
            let per_op = ns_per_op((c.one)(100_000), 100_000).max(0.1);
            (sample_time.as_nanos() as f64 / per_op).max(1_000.0) as u64
        })
        .collect();
    let n = contenders.len();
    let mut one = vec![Vec::new(); n];
    let mut two = vec![Vec::new(); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (k + round) % n;
            one[i].push(ns_per_op((contenders[i].one)(iters[i]), iters[i]));
            two[i].push(ns_per_op((contenders[i].two)(iters[i]), iters[i]));
        }
    }
    // Ratios are taken within a round, then their median across rounds.
    let ratio =
        |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x / y).collect() };
    println!("\nhot path, interleaved: {rounds} rounds, ns per call per thread, median [p25–p75]");
    println!("| contender | 1 thread | 2 threads | 2T/1T | 1T ÷ floor 1T | 2T ÷ floor 2T |");
    println!("|---|---:|---:|---:|---:|---:|");
    for i in 0..n {
        let cell = |s: &[f64]| {
            format!(
                "{:.1} [{:.1}–{:.1}]",
                quantile(s, 0.5),
                quantile(s, 0.25),
                quantile(s, 0.75)
            )
        };
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            contenders[i].name,
            cell(&one[i]),
            cell(&two[i]),
            quantile(&ratio(&two[i], &one[i]), 0.5),
            quantile(&ratio(&one[i], &one[0]), 0.5),
            quantile(&ratio(&two[i], &two[0]), 0.5),
        );
    }
}

/// How long the refresh-ahead handles' token lives: its second half must
/// cover every measurement of them.
fn ahead_lifetime(count: bool, summary_only: bool) -> Duration {
    // Generous: a loaded machine stretches every measurement.
    Duration::from_secs(match (count, quick(), summary_only) {
        // One loop under callgrind.
        (true, _, _) => 20,
        (false, true, true) => 150,
        // Their criterion runs, then the summary.
        (false, true, false) => 210,
        (false, false, _) => 480,
    })
}

/// `--count NAME ITERS`: one contender's loop, once, on this thread.
fn count(name: &str, iters: u64) {
    let ahead = name
        .contains("refresh ahead")
        .then(|| Ahead::new(ahead_lifetime(true, false)));
    let mut all = contenders();
    if let Some(ahead) = &ahead {
        ahead.start();
        all.extend(ahead.contenders());
    }
    let contender = all
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no contender {name:?} (see --list)"));
    let elapsed = (contender.one)(iters);
    if let Some(ahead) = &ahead {
        ahead.check();
    }
    println!(
        "{name}: {iters} calls, {:.1} ns per call",
        ns_per_op(elapsed, iters)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        let ahead = Ahead::new(Duration::from_secs(20));
        for c in contenders().iter().chain(&ahead.contenders()) {
            println!("{}", c.name);
        }
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--count") {
        count(
            &args[i + 1],
            args[i + 2].parse().expect("ITERS is a number"),
        );
        return;
    }
    let summary_only = std::env::var_os("TOKENFLIGHT_BENCH_SUMMARY_ONLY").is_some_and(|v| v != "0");
    // First, so that its token is due by the time the others are measured.
    let ahead = Ahead::new(ahead_lifetime(false, summary_only));
    let mut contenders = contenders();
    let mut c = (!summary_only).then(criterion);
    if let Some(c) = &mut c {
        criterion_runs(c, &contenders, "");
    }
    ahead.start();
    let during = ahead.contenders();
    if let Some(c) = &mut c {
        criterion_runs(c, &during, "_refresh_ahead");
    }
    contenders.extend(during);
    summary(&contenders);
    ahead.check();
}
