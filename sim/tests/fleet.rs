//! The fleet simulation: deterministic, clean with the guard's protocol,
//! costly without a store, and its checks catch each planted guard bug
//! on a replayable seed.

use tokenflight_sim::fleet::{self, Bug, FleetScenario, Mode};

fn short(seed: u64) -> FleetScenario {
    let mut sc = FleetScenario::default_run(seed);
    sc.duration_ms = 240_000;
    sc
}

#[test]
fn a_fleet_run_replays_exactly_from_its_seed() {
    let a = fleet::run(&short(3), Mode::Store, None);
    let b = fleet::run(&short(3), Mode::Store, None);
    assert_eq!(a, b);
    let c = fleet::run(&short(4), Mode::Store, None);
    assert_ne!(a, c, "another seed, another run");
    let d = fleet::run(&FleetScenario::draw(11), Mode::Store, None);
    assert_eq!(d, fleet::run(&FleetScenario::draw(11), Mode::Store, None));
}

#[test]
fn the_default_fleet_refreshes_once_per_expiry_with_its_store_and_not_without() {
    let sc = FleetScenario::default_run(1);
    let with = fleet::run(&sc, Mode::Store, None);
    assert_eq!(with.violations(), 0, "{:?}", with.findings);
    assert!(with.expiries >= 8, "{with:?}");
    assert!(
        with.pauses + with.crashes[0] + with.crashes[1] > 0,
        "faults were injected"
    );
    assert!(with.restarts_loaded > 0, "a restart needs no login");
    // Every call past one per expiry is a holder that outlived its lease,
    // or a dead credential spent again.
    assert!(
        with.refresh_calls <= with.expiries + with.limit_cases() + with.refused_again,
        "{with:?}"
    );
    assert!(with.reuses <= with.limit_cases());

    let without = fleet::run(&sc, Mode::NoStore, None);
    assert!(without.reuses >= without.expiries / 2, "{without:?}");
    assert!(
        without.logins > with.logins * 4,
        "{} vs {}",
        without.logins,
        with.logins
    );
    assert!(without.refresh_calls > with.refresh_calls * 4);
}

/// Each planted bug, on the seed that shows it (found by the fleet swarm,
/// `--fleet-bug NAME`): caught by the rule it breaks, and the same seed is
/// clean with the correct guard.
#[test]
fn the_fleet_checks_catch_each_planted_guard_bug_on_a_replayable_seed() {
    for (bug, seed, rule) in [
        (Bug::SkipReread, 4, "F1"),
        (Bug::BlindWrite, 5, "F2"),
        (Bug::PublishBeforePersist, 2, "F3"),
    ] {
        let sc = FleetScenario::draw(seed);
        let broken = fleet::run(&sc, Mode::Store, Some(bug));
        let first = broken
            .findings
            .first()
            .unwrap_or_else(|| panic!("{bug:?} not caught"));
        assert_eq!(first.rule, rule, "{bug:?}: {first:?}");
        let fine = fleet::run(&sc, Mode::Store, None);
        assert_eq!(
            fine.violations(),
            0,
            "{bug:?} seed {seed}: {:?}",
            fine.findings
        );
        let replay = fleet::replay(seed, Some(bug));
        assert!(replay.contains(&format!("--fleet-seeds {seed}..")) && replay.contains(bug.name()));
    }
}

#[test]
fn a_small_fleet_swarm_passes_and_a_bugged_one_fails_with_replay_lines() {
    let clean = fleet::swarm(1..25, None);
    assert_eq!(clean.seeds, 24);
    assert!(clean.failures.is_empty(), "{:?}", clean.failures);
    assert!(clean.expiries > 24);
    let bugged = fleet::swarm(1..25, Some(Bug::PublishBeforePersist));
    assert!(!bugged.failures.is_empty());
    assert!(bugged
        .failures
        .iter()
        .all(|(seed, _, r)| r.contains(&seed.to_string())));
}
