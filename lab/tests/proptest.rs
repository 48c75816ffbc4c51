//! proptest drives the real handles: random requests (tickets, calls whose
//! sends the server rejects, the fast path), cancellations of waiting
//! requests, refresher answers (a token, a transient or a permanent error;
//! at once, late after the soft timeout, or never, so that the call is
//! given up for good at the hard limit), time jumps, logins and
//! invalidations. After every step the handle's own history breaks no rule
//! (S1–S7, S5b, judged by `Monitor`) and the endpoint never has two calls
//! outstanding; after healing (every call answered, time moved past every
//! deadline) no request is left running (L1).
//!
//! The async handle runs in the lab (`tokenflight-lab`): one thread, virtual
//! time, so a case replays exactly, from proptest's regressions or from a
//! seed the sweep prints. The blocking handle's calls block a thread, so it
//! gets a smaller property: answers come at once, and time moves only
//! between calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, FileFailurePersistence};
use tokenflight::check::Monitor;
use tokenflight::{blocking, Clock, Config, Fresh, RefreshError, Reply, Timestamp};
use tokenflight_lab::{drive, History, Lifetime, Op, Reply as Answer, Setup};

fn runner(cases: u32) -> RunnerConfig {
    RunnerConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..RunnerConfig::default()
    }
}

fn lifetime() -> impl Strategy<Value = Lifetime> {
    prop_oneof![
        2 => Just(Lifetime::Short),
        1 => Just(Lifetime::Long),
        1 => Just(Lifetime::Forever),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        3 => lifetime().prop_map(Answer::Token),
        2 => Just(Answer::Transient),
        1 => Just(Answer::Permanent),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3_u8).prop_map(|rejections| Op::Call { rejections }),
        2 => Just(Op::Ticket),
        1 => Just(Op::TryTicket),
        1 => any::<u8>().prop_map(|task| Op::Cancel { task }),
        // At once, within the soft timeout (100 ms), after it, or after the
        // hard limit (250 ms).
        4 => (any::<u8>(), answer(), prop_oneof![Just(0_u16), 1..100_u16, 100..400_u16])
            .prop_map(|(call, reply, delay_ms)| Op::Answer { call, reply, delay_ms }),
        4 => prop_oneof![0..30_u16, 30..300_u16].prop_map(|ms| Op::Advance { ms }),
        1 => lifetime().prop_map(|lifetime| Op::SetToken { lifetime }),
        1 => Just(Op::Invalidate),
    ]
}

proptest! {
    #![proptest_config(runner(2_000))]

    /// The async handle with the lab's spawner (refreshes nobody waits for
    /// run on a driver task) and without (requests drive every call).
    #[test]
    fn the_async_handle_keeps_every_rule(
        spawner in any::<bool>(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        if let Err(failure) = drive::run(&Setup::small(spawner), &ops) {
            prop_assert!(false, "spawner {spawner}: {failure}");
        }
    }
}

/// Seeded runs beside proptest's: longer, and each named by a seed that
/// replays it (`Op::random(seed, 120)`).
#[test]
fn the_async_handle_keeps_every_rule_over_seeded_runs() {
    for seed in 0..3_000_u64 {
        let setup = Setup::small(seed.is_multiple_of(2));
        if let Err(failure) = drive::run(&setup, &Op::random(seed, 120)) {
            panic!("seed {seed} (spawner {}): {failure}", setup.spawner);
        }
    }
}

/// One thing done to the blocking handle.
#[derive(Debug, Clone)]
enum BlockingOp {
    Call { rejections: u8 },
    TryTicket,
    Advance { ms: u16 },
    SetToken { lifetime: Lifetime },
    Invalidate,
}

fn blocking_op() -> impl Strategy<Value = BlockingOp> {
    prop_oneof![
        4 => (0..3_u8).prop_map(|rejections| BlockingOp::Call { rejections }),
        1 => Just(BlockingOp::TryTicket),
        3 => (0..300_u16).prop_map(|ms| BlockingOp::Advance { ms }),
        1 => lifetime().prop_map(|lifetime| BlockingOp::SetToken { lifetime }),
        1 => Just(BlockingOp::Invalidate),
    ]
}

fn fresh(n: u64, lifetime: Lifetime) -> Fresh<u64> {
    match lifetime.duration() {
        Some(d) => Fresh::new(n).expires_in(d),
        None => Fresh::new(n),
    }
}

/// The blocking handle with a refresher that answers at once, from a
/// script (a token when the script runs out). No back-off: its calls would
/// wait for time that only moves between them.
fn blocking_run(answers: Vec<Answer>, ops: Vec<BlockingOp>) -> Result<(), String> {
    let mut config = Setup::small(false)
        .config
        .with_backoff(Duration::ZERO, Duration::ZERO);
    config.seed = 3;
    let history = History::new(&config);
    let ms = Arc::new(AtomicU64::new(0));
    let read = Arc::clone(&ms);
    let clock = Clock::manual(move || Timestamp::from_millis(read.load(Ordering::SeqCst)));
    let issued = Arc::new(AtomicU64::new(0));
    let script = Mutex::new(answers.into_iter());
    let refresh_issued = Arc::clone(&issued);
    let handle = blocking::Handle::builder(move |_| {
        let n = refresh_issued.fetch_add(1, Ordering::SeqCst) + 1;
        match script.lock().unwrap().next() {
            None => Ok(fresh(n, Lifetime::Long)),
            Some(Answer::Token(lifetime)) => Ok(fresh(n, lifetime)),
            Some(Answer::Transient) => Err(RefreshError::Transient("unavailable")),
            Some(Answer::Permanent) => Err(RefreshError::Permanent("revoked")),
        }
    })
    .config(config.clone())
    .clock(clock)
    .observe(history.observer())
    .build()
    .unwrap();
    for (step, op) in ops.iter().enumerate() {
        match *op {
            BlockingOp::Call { rejections } => {
                let mut left = rejections;
                let _ = handle.call(|_| {
                    let rejected = left > 0;
                    left = left.saturating_sub(1);
                    if rejected {
                        Reply::Rejected(())
                    } else {
                        Reply::Done(())
                    }
                });
            }
            BlockingOp::TryTicket => drop(handle.try_ticket()),
            BlockingOp::Advance { ms: by } => {
                ms.fetch_add(u64::from(by), Ordering::SeqCst);
            }
            BlockingOp::SetToken { lifetime } => {
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                handle.set_token(fresh(n, lifetime));
            }
            BlockingOp::Invalidate => handle.invalidate(handle.status().generation),
        }
        if let Some(v) = history.violations().first() {
            return Err(format!("at step {step} ({op:?}): {v}"));
        }
    }
    // The refresher's thread may still be reporting the last steps when the
    // calls have returned: wait, boundedly, for every request to end.
    let settled = |m: &Monitor| m.live_requests() == 0;
    for _ in 0..1_000_000 {
        if settled(&history.monitor()) {
            break;
        }
        std::thread::yield_now();
    }
    match history.finish().first() {
        Some(v) => Err(format!("after {} steps: {v}", ops.len())),
        None => Ok(()),
    }
}

proptest! {
    #![proptest_config(runner(300))]

    #[test]
    fn the_blocking_handle_keeps_every_rule(
        answers in prop::collection::vec(answer(), 0..8),
        ops in prop::collection::vec(blocking_op(), 1..30),
    ) {
        if let Err(failure) = blocking_run(answers, ops) {
            prop_assert!(false, "{failure}");
        }
    }
}

/// The configuration the blocking property runs: the lab's, without
/// back-off. Checked here so that a change to the lab's setup that the
/// blocking handle cannot run without a timer shows up by name.
#[test]
fn the_blocking_setup_is_valid() {
    let config: Config = Setup::small(false)
        .config
        .with_backoff(Duration::ZERO, Duration::ZERO);
    assert!(tokenflight::core::Core::<u64, ()>::new(config).is_ok());
}
/// The blocking handle's thread makes a call only if its attempt is still
/// in flight: a login that supersedes the attempt before the thread gets to
/// it means the call is never made. Made anyway, it asked for a token no
/// one needed, threw the answer away (with a rotating refresh token, the
/// only valid one) and counted as an attempt of the next round (S7). The
/// race is the handle's thread against the caller's, so it is run often.
#[test]
fn a_blocking_call_superseded_before_it_was_made_is_never_made() {
    for _ in 0..50 {
        let answers = vec![
            Answer::Token(Lifetime::Short),
            Answer::Token(Lifetime::Short),
            Answer::Token(Lifetime::Short),
            Answer::Transient,
        ];
        let ops = vec![
            BlockingOp::Call { rejections: 0 },
            BlockingOp::Call { rejections: 1 },
            BlockingOp::Invalidate,
            BlockingOp::SetToken {
                lifetime: Lifetime::Short,
            },
            BlockingOp::Call { rejections: 1 },
        ];
        blocking_run(answers, ops).unwrap();
    }
}

/// The seeded runs are not vacuous: between them they reach every kind of
/// step the rules are about (witnesses, as the explorer has).
#[test]
fn the_seeded_runs_reach_every_kind_of_step() {
    use tokenflight::check::Event;
    use tokenflight::Phase;
    let mut seen = std::collections::BTreeMap::<&str, u64>::new();
    for seed in 0..300_u64 {
        let mut drive = tokenflight_lab::Drive::new(&Setup::small(seed.is_multiple_of(2)));
        for op in Op::random(seed, 120) {
            drive.step(op).unwrap();
        }
        let events = drive.history().events();
        let mut count = |name, hit: bool| *seen.entry(name).or_default() += u64::from(hit);
        for (_, event) in &events {
            count("a request waits", matches!(event, Event::Waiting { .. }));
            count("a rejection", matches!(event, Event::Rejected { .. }));
            count(
                "a waiter cancelled",
                matches!(event, Event::Cancelled { .. }),
            );
            count("a request failed", matches!(event, Event::Failed { .. }));
            count(
                "an attempt timed out",
                matches!(event, Event::RefreshAbandoned { .. }),
            );
            count(
                "a call dropped at the hard limit",
                matches!(event, Event::RefreshDropped { .. }),
            );
            count(
                "a call answered without a token",
                matches!(event, Event::RefreshEnded { ok: false, .. }),
            );
            count(
                "a refreshed token",
                matches!(event, Event::NewGeneration { from: Some(_), .. }),
            );
            count(
                "a login",
                matches!(event, Event::NewGeneration { from: None, .. }),
            );
            count(
                "an invalidation",
                matches!(event, Event::Invalidated { .. }),
            );
            count(
                "a round gave up",
                matches!(
                    event,
                    Event::PhaseChanged {
                        phase: Phase::Failed
                    }
                ),
            );
        }
        // A late answer adopted: a token from an attempt that had been
        // given up.
        let late = events.iter().enumerate().any(|(i, (_, e))| match e {
            Event::NewGeneration { from: Some(a), .. } => events[..i]
                .iter()
                .any(|(_, e)| matches!(e, Event::RefreshAbandoned { attempt } if attempt == a)),
            _ => false,
        });
        count("a late answer adopted", late);
        drive.heal().unwrap();
    }
    let missing: Vec<_> = seen
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(w, _)| *w)
        .collect();
    assert!(missing.is_empty(), "never reached: {missing:?} ({seen:?})");
    assert_eq!(seen.len(), 12);
}
