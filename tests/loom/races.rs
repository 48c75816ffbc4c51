//! The async handle's races without timers: rejections, cancellations and
//! the refresh's completion in every order, and the fast path's read racing
//! a publish. The clock stands still, so time never decides a branch.

use std::sync::Arc;
use std::time::Duration;

use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokenflight::{Clock, Config, Error, Fresh, Generation, Handle, RefreshError, Timestamp};

use crate::common::{model, poll_once_then_drop, token, Gate, Judge};

/// What the refresher does once its gate opens.
#[derive(Clone, Copy)]
enum Answer {
    Token,
    Refuse,
}

struct Setup {
    handle: Handle<u64, &'static str>,
    judge: Judge,
    refreshes: Arc<AtomicU64>,
    gate: Arc<Gate>,
}

/// A handle already holding token 1 (generation 1, from a login), whose
/// refresher counts its calls and answers after `gate` opens.
fn setup(answer: Answer, gate_open: bool, late_publish: bool) -> Setup {
    let refreshes = Arc::new(AtomicU64::new(0));
    let gate = Gate::new(gate_open);
    let (r, g) = (Arc::clone(&refreshes), Arc::clone(&gate));
    let mut config = Config::default();
    config.backoff_initial = Duration::ZERO;
    config.max_refresh_attempts = 1;
    let judge = Judge::new(&config);
    let mut builder = Handle::builder(move |_| {
        let n = r.fetch_add(1, Ordering::SeqCst) + 2;
        let gate = Arc::clone(&g);
        async move {
            gate.wait().await;
            match answer {
                Answer::Token => Ok(Fresh::new(n)),
                Answer::Refuse => Err(RefreshError::Permanent("invalid_grant")),
            }
        }
    })
    .config(config)
    .clock(Clock::manual(|| Timestamp::ZERO))
    .without_timer()
    .without_spawner()
    .observe(judge.observer());
    if late_publish {
        builder = builder.late_publish();
    }
    let handle = builder.build().unwrap();
    handle.set_token(Fresh::new(1));
    Setup {
        handle,
        judge,
        refreshes,
        gate,
    }
}

/// S2: two requests rejected with the same generation race; exactly one
/// refresh runs and both are resent with its token.
#[test]
fn two_rejections_of_one_generation_refresh_once() {
    model(|| {
        let s = setup(Answer::Token, true, false);
        let tickets: Vec<_> = (0..2).map(|_| s.handle.try_ticket().unwrap()).collect();
        let threads: Vec<_> = tickets
            .into_iter()
            .map(|ticket| {
                let handle = s.handle.clone();
                loom::thread::spawn(move || token(loom::future::block_on(handle.reject(ticket))))
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), (2, Generation(2)));
        }
        assert_eq!(s.refreshes.load(Ordering::SeqCst), 1);
        assert_eq!(s.handle.waiters(), 0);
        s.judge.assert_clean();
    });
}

/// S2: a rejection of generation 1 arrives while, or after, the refresh it
/// belongs to completes (the model's main thread opens the gate, racing
/// both). It joins that refresh or is answered with its token; never a
/// second refresh.
#[test]
fn a_stale_rejection_racing_the_refresh_completion_never_refreshes_again() {
    model(|| {
        let s = setup(Answer::Token, false, false);
        let first = s.handle.try_ticket().unwrap();
        let late = s.handle.try_ticket().unwrap();
        let h = s.handle.clone();
        let a = loom::thread::spawn(move || token(loom::future::block_on(h.reject(first))));
        let h = s.handle.clone();
        let b = loom::thread::spawn(move || token(loom::future::block_on(h.reject(late))));
        // The main thread is the server: a thread of its own would add only
        // its spawn and join to the orders explored.
        s.gate.open();
        assert_eq!(a.join().unwrap(), (2, Generation(2)));
        assert_eq!(b.join().unwrap(), (2, Generation(2)));
        assert_eq!(s.refreshes.load(Ordering::SeqCst), 1);
        s.judge.assert_clean();
    });
}

/// S3/S7: a waiter dropped during the refresh leaves the core at once;
/// the other still gets the new token.
#[test]
fn a_waiter_cancelled_during_the_refresh_leaves_at_once() {
    model(|| {
        let s = setup(Answer::Token, false, false);
        let stays = s.handle.try_ticket().unwrap();
        let leaves = s.handle.try_ticket().unwrap();
        let h = s.handle.clone();
        let a = loom::thread::spawn(move || token(loom::future::block_on(h.reject(stays))));
        let h = s.handle.clone();
        let b = loom::thread::spawn(move || poll_once_then_drop(h.reject(leaves)));
        b.join().unwrap();
        s.gate.open();
        assert_eq!(a.join().unwrap(), (2, Generation(2)));
        assert_eq!(s.handle.waiters(), 0);
        assert_eq!(s.refreshes.load(Ordering::SeqCst), 1);
        s.judge.assert_clean();
    });
}

/// L1: the future that started (or was appointed to drive) the refresh is
/// dropped mid-refresh; the remaining waiter drives it to the end.
#[test]
fn the_refresh_driving_future_dropped_mid_refresh() {
    model(|| {
        let s = setup(Answer::Token, false, false);
        let driver = s.handle.try_ticket().unwrap();
        let other = s.handle.try_ticket().unwrap();
        // The driver goes first: it starts the refresh and polls it.
        poll_once_then_drop(s.handle.reject(driver));
        let h = s.handle.clone();
        let a = loom::thread::spawn(move || token(loom::future::block_on(h.reject(other))));
        let gate = Arc::clone(&s.gate);
        let server = loom::thread::spawn(move || gate.open());
        server.join().unwrap();
        assert_eq!(a.join().unwrap(), (2, Generation(2)));
        assert_eq!(s.refreshes.load(Ordering::SeqCst), 1);
        s.judge.assert_clean();
    });
}

/// L1 for the appointment hand-over: two waiters, one of them dropped
/// while the gate opens concurrently; whoever is left is woken.
#[test]
fn the_appointed_waiter_dropped_while_the_refresh_wakes() {
    model(|| {
        let s = setup(Answer::Token, false, false);
        let stays = s.handle.try_ticket().unwrap();
        let leaves = s.handle.try_ticket().unwrap();
        let h = s.handle.clone();
        let a = loom::thread::spawn(move || token(loom::future::block_on(h.reject(stays))));
        let h = s.handle.clone();
        let gate = Arc::clone(&s.gate);
        let b = loom::thread::spawn(move || {
            poll_once_then_drop(h.reject(leaves));
            gate.open();
        });
        b.join().unwrap();
        assert_eq!(a.join().unwrap(), (2, Generation(2)));
        assert_eq!(s.refreshes.load(Ordering::SeqCst), 1);
        s.judge.assert_clean();
    });
}

/// S6: the refresh fails for good; every waiter gets the error.
#[test]
fn refresh_failure_reaches_every_waiter() {
    model(|| {
        let s = setup(Answer::Refuse, false, false);
        let tickets: Vec<_> = (0..2).map(|_| s.handle.try_ticket().unwrap()).collect();
        let threads: Vec<_> = tickets
            .into_iter()
            .map(|ticket| {
                let handle = s.handle.clone();
                loom::thread::spawn(move || loom::future::block_on(handle.reject(ticket)))
            })
            .collect();
        s.gate.open();
        for t in threads {
            assert!(matches!(t.join().unwrap(), Err(Error::LoginRequired(_))));
        }
        assert_eq!(s.refreshes.load(Ordering::SeqCst), 1);
        assert_eq!(s.handle.waiters(), 0);
        s.judge.assert_clean();
    });
}

/// S1 and S2 with a late answer: attempt 1 times out and its back-off ends
/// at once, but the next attempt is queued behind the call still out;
/// another thread then lets attempt 1 answer late, racing the waiter. The
/// late answer makes the one new generation, and no second call is ever
/// made.
#[test]
fn a_late_answer_racing_the_next_attempt_makes_one_generation() {
    model(|| {
        let refreshes = Arc::new(AtomicU64::new(0));
        let gates = [Gate::new(false), Gate::new(false)];
        let nanos = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (r, g, n) = (Arc::clone(&refreshes), gates.clone(), Arc::clone(&nanos));
        let mut config = Config::default();
        config.backoff_initial = Duration::ZERO;
        config.max_refresh_attempts = 2;
        let judge = Judge::new(&config);
        let handle = Handle::builder(move |_| {
            // Attempt k answers token k + 1 once its gate opens.
            let attempt = r.fetch_add(1, Ordering::SeqCst);
            let gate = Arc::clone(&g[usize::try_from(attempt).unwrap()]);
            async move {
                gate.wait().await;
                Ok::<_, RefreshError<&'static str>>(Fresh::new(attempt + 2))
            }
        })
        .config(config.clone())
        .clock(Clock::manual(move || {
            Timestamp::from_nanos(n.load(std::sync::atomic::Ordering::SeqCst))
        }))
        .without_timer()
        .without_spawner()
        .observe(judge.observer())
        .build()
        .unwrap();
        handle.set_token(Fresh::new(1));
        // A rejected request starts attempt 1, polls it (it waits at the
        // gate) and leaves; the attempt stays in flight.
        poll_once_then_drop(handle.reject(handle.try_ticket().unwrap()));
        assert_eq!(refreshes.load(Ordering::SeqCst), 1);
        // Its deadline passes; the next input times it out, and the next
        // attempt queues behind the call.
        let deadline = config.refresh_timeout.as_nanos();
        nanos.store(
            u64::try_from(deadline).unwrap(),
            std::sync::atomic::Ordering::SeqCst,
        );
        handle.invalidate(Generation(0));
        let server = loom::thread::spawn(move || gates.iter().for_each(|gate| gate.open()));
        let (token, generation) = token(loom::future::block_on(handle.ticket()));
        assert_eq!(generation, Generation(2), "one new generation");
        assert_eq!(token, 2, "the late answer of the one call");
        server.join().unwrap();
        let now = handle.try_ticket().expect("a token");
        assert_eq!((*now.token(), now.generation()), (token, generation));
        drop(now);
        assert_eq!(refreshes.load(Ordering::SeqCst), 1, "one call at a time");
        assert_eq!(handle.waiters(), 0);
        judge.assert_clean();
    });
}

/// S5 on the fast path: once a thread has seen that generation 1 was
/// declared bad, the lock-free read never hands it out, whatever other
/// publishes race with it.
fn hot_path_read_racing_a_publish(late_publish: bool) {
    let s = setup(Answer::Token, true, late_publish);
    let known_bad = Arc::new(AtomicBool::new(false));
    let (h, flag) = (s.handle.clone(), Arc::clone(&known_bad));
    let a = loom::thread::spawn(move || {
        h.invalidate(Generation(1));
        flag.store(true, Ordering::SeqCst);
    });
    // A transition that changes nothing, but settles and publishes.
    let h = s.handle.clone();
    let b = loom::thread::spawn(move || h.invalidate(Generation(0)));
    let seen = known_bad.load(Ordering::SeqCst);
    let read = s.handle.try_ticket().map(|t| t.generation());
    if seen {
        assert_ne!(read, Some(Generation(1)), "handed out a known-bad token");
    }
    a.join().unwrap();
    b.join().unwrap();
    let read = s.handle.try_ticket().map(|t| t.generation());
    assert_ne!(read, Some(Generation(1)), "published a known-bad token");
    s.judge.assert_clean();
}

#[test]
fn a_hot_path_read_racing_a_publish_never_sees_a_known_bad_generation() {
    model(|| hot_path_read_racing_a_publish(false));
}

/// The suite bites: with the snapshot stored after the lock is released, a
/// stale store lands after the newer one and loom finds the interleaving.
#[test]
fn loom_catches_a_publish_outside_the_critical_section() {
    let caught = std::panic::catch_unwind(|| model(|| hot_path_read_racing_a_publish(true)));
    let payload = caught.expect_err("loom missed the late publish");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("known-bad"),
        "failed for another reason: {message}"
    );
}
