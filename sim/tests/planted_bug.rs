//! The simulator catches planted bugs: a core with a deliberate flaw breaks
//! a rule on some seed, the failure names the seed and a replay command,
//! and replaying that seed fails the same way.

use std::path::PathBuf;

use tokenflight::core::{Core, Mutant};
use tokenflight::Config;
use tokenflight_sim::swarm::{self, first_failure};
use tokenflight_sim::{oracle, vectors};
use tokenflight_sim::{run_tokenflight_with, RunOptions, Scenario, SimCore};

/// Planted bugs no simulated run can reach, and why. The explorer and
/// proptest catch them (`tests/explore.rs`, `tests/proptest.rs`), and so
/// do the conformance vectors, which give the core any answer (checked
/// below).
const UNREACHABLE: [(Mutant, &str); 1] = [(
    Mutant::AdoptEveryLateResult,
    "with one call at a time, only a login while a call is out makes an answer's base \
     older than the current generation; the simulated user logs in only after the \
     session was revoked, when every call still out fails",
)];

#[test]
fn the_bugs_no_run_can_show_are_caught_by_the_vectors() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let traces: Vec<serde_json::Value> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".itf.json"))
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect();
    for (m, _) in UNREACHABLE {
        let caught = traces.iter().any(|t| {
            let script = vectors::script_of(t).unwrap();
            let mut buf = String::new();
            let core = Core::with_mutant(script.config.clone(), m).unwrap();
            oracle::write_trace_of(core, &script, "", &mut buf);
            let got: serde_json::Value = serde_json::from_str(&buf).unwrap();
            got["states"] != t["states"]
        });
        assert!(caught, "no vector catches {m:?}");
    }
}

const MAX_REQUESTS: u64 = 2_000;

fn maker(m: Mutant) -> impl Fn(Config) -> SimCore {
    move |c| SimCore::with_mutant(c, m).unwrap()
}

/// The first seed in `0..seeds` on which the mutant breaks a rule.
fn caught(m: Mutant, seeds: u64) -> Option<(u64, String, String)> {
    let make = maker(m);
    let name = format!("{m:?}");
    let out = swarm::run(0..seeds, MAX_REQUESTS, &make, Some(&name), false);
    out.failures
        .first()
        .map(|f| (f.seed, f.rule.clone(), f.replay.clone()))
}

#[test]
fn every_planted_bug_is_caught_with_a_replayable_seed() {
    for m in Mutant::ALL {
        if let Some((_, why)) = UNREACHABLE.iter().find(|(u, _)| *u == m) {
            eprintln!("{m:?}: not reachable by the simulator: {why}");
            continue;
        }
        let (seed, rule, replay) =
            caught(m, 200).unwrap_or_else(|| panic!("{m:?} was not caught in 200 seeds"));
        assert!(
            replay.contains(&format!("--seed {seed}"))
                && replay.contains(&format!("--mutant {m:?}")),
            "{replay}"
        );
        // Replaying the seed fails the same way.
        let sc = Scenario::draw(seed, MAX_REQUESTS);
        let again = run_tokenflight_with(&sc, RunOptions::default(), maker(m));
        assert_eq!(
            first_failure(&again).map(|(r, _)| r),
            Some(rule.clone()),
            "{m:?}"
        );
        // And the real core passes the very same scenario.
        let real = tokenflight_sim::run_tokenflight(&sc, RunOptions::default());
        assert_eq!(
            first_failure(&real),
            None,
            "real core on {m:?}'s seed {seed}"
        );
        eprintln!("{m:?}: seed {seed} breaks {rule}; replay: {replay}");
    }
}

#[test]
fn shrinking_keeps_the_failure_and_does_not_grow() {
    let m = Mutant::KeepWaitersOnFailure;
    let (seed, rule, _) = caught(m, 60).expect("caught");
    let sc = Scenario::draw(seed, MAX_REQUESTS);
    let make = maker(m);
    let (small, shrunk_rule) = swarm::shrink(&sc, &make).expect("it fails");
    assert_eq!(shrunk_rule, rule);
    assert!(small.requests <= sc.requests);
    let r = run_tokenflight_with(&small, RunOptions::default(), maker(m));
    assert!(r.rule_counts.iter().any(|(k, n)| *k == rule && *n > 0));
}
