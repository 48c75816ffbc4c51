//! A call nobody waits for (an `invalidate` in `Idle`) runs on the
//! spawner's task at once; a request that comes meanwhile waits for it, and
//! one that leaves meanwhile costs the others nothing.

use std::sync::Arc;

use tokenflight::core::Mutant;
use tokenflight::{Config, Fresh, Generation, Handle};

use crate::common::{
    build_on, fails_alone, loom_spawner, model, poll_once_then_drop, token, Calls, Gate, Judge,
    Time,
};

fn a_call_on_the_spawner(mutant: Option<Mutant>) {
    let time = Time::new();
    let calls = Calls::new();
    let gate = Gate::new(false);
    let config = Config::default();
    let judge = Judge::new(&config);
    let builder =
        Handle::builder(calls.refresher(Some(Arc::clone(&gate)), |n| Ok(Fresh::new(n + 2))))
            .config(config)
            .spawner(loom_spawner);
    let handle = build_on(builder, &time, &judge, mutant);
    handle.set_token(Fresh::new(1));
    handle.invalidate(Generation(1));
    let h = handle.clone();
    let waiter = loom::thread::spawn(move || token(loom::future::block_on(h.ticket())));
    // A request that gives up while the call is out.
    poll_once_then_drop(handle.ticket());
    gate.open();
    assert_eq!(waiter.join().unwrap(), (2, Generation(2)));
    assert_eq!(calls.made(), 1, "one call");
    assert!(calls.most_at_once() <= 1);
    judge.assert_clean();
}

#[test]
fn a_call_nobody_waits_for_runs_on_the_spawner_and_answers_every_waiter() {
    model(|| a_call_on_the_spawner(None));
}

#[test]
#[ignore = "a planted bug: run by loom_catches_a_waiter_lost_when_another_leaves"]
fn planted_lost_waiter() {
    model(|| a_call_on_the_spawner(Some(Mutant::LoseWaiterOnCancel)));
}

#[test]
fn loom_catches_a_waiter_lost_when_another_leaves() {
    let printed = fails_alone("spawner::planted_lost_waiter");
    assert!(
        printed.contains("deadlock"),
        "failed for another reason: {printed}"
    );
}
