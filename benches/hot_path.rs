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
//! `TOKENFLIGHT_BENCH_QUICK=1` shortens both; `TOKENFLIGHT_BENCH_SUMMARY_ONLY=1`
//! skips criterion.

// Benches measure wall time: reading the clock is the point here.
#![allow(clippy::disallowed_methods)]

mod common;

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::Criterion;
use tokenflight::{blocking, Config, Fresh, Handle, RefreshError};

use common::{poll_once, Moka, MutexHeld, PlRwLock, SwapMutex, Token, TokioRwLock};

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

fn contenders() -> Vec<Contender> {
    let swap = Arc::new(ArcSwap::from_pointee(Token::new("token", LIFETIME)));
    let swap_full = Arc::clone(&swap);

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
        Contender::new("tokenflight async try_ticket", move || {
            handle.try_ticket().map_or(0, |t| t.token().len())
        }),
        Contender::new("tokenflight async ticket().await", move || {
            poll_once(handle_ticket.ticket()).map_or(0, |t| t.token().len())
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

fn criterion_runs(contenders: &[Contender]) {
    let mut c = if quick() {
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
    .configure_from_args();
    let mut group = c.benchmark_group("hot_path/1_thread");
    for contender in contenders {
        group.bench_function(contender.name, |b| b.iter_custom(|n| (contender.one)(n)));
    }
    group.finish();
    let mut group = c.benchmark_group("hot_path/2_threads_per_thread");
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

fn main() {
    let contenders = contenders();
    let summary_only = std::env::var_os("TOKENFLIGHT_BENCH_SUMMARY_ONLY").is_some_and(|v| v != "0");
    if !summary_only {
        criterion_runs(&contenders);
    }
    summary(&contenders);
}
