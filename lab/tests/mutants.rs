//! Each planted bug of the async handle is caught by the lab: seeded runs
//! of random steps (the same the proptest suite takes) find it, and the
//! failure names the seed that replays it. The correct handle passes the
//! same runs.

use tokenflight::check::HandleMutant;
use tokenflight_lab::{Drive, Failure, Op, Setup};

/// Steps per run, and how many seeds a mutant gets to be found in.
const STEPS: usize = 120;
const SEEDS: u64 = 400;

fn run(seed: u64, mutant: Option<HandleMutant>) -> Result<(), Failure> {
    let setup = Setup::small(seed.is_multiple_of(2));
    let mut drive = Drive::with_builder(&setup, |builder| match mutant {
        Some(mutant) => builder.mutant(mutant),
        None => builder,
    });
    for op in Op::random(seed, STEPS) {
        drive.step(op)?;
    }
    drive.heal()
}

/// The first seed whose run the mutant fails, and how.
fn caught(mutant: HandleMutant) -> Option<(u64, Failure)> {
    (0..SEEDS).find_map(|seed| run(seed, Some(mutant)).err().map(|f| (seed, f)))
}

#[test]
fn every_planted_handle_bug_is_caught_with_a_replayable_seed() {
    for mutant in HandleMutant::ALL {
        let Some((seed, failure)) = caught(mutant) else {
            panic!("{mutant:?} survived {SEEDS} seeded runs");
        };
        // Shown so a run can be replayed: `Op::random(seed, STEPS)`, with a
        // spawner when the seed is even.
        println!(
            "{mutant:?}: caught by seed {seed} at step {}: {}",
            failure.step, failure.what
        );
        run(seed, None).unwrap_or_else(|f| panic!("the correct handle fails seed {seed}: {f}"));
    }
}

#[test]
fn each_planted_handle_bug_is_caught_for_what_it_breaks() {
    let expect = |mutant, what: &str| {
        let (seed, failure) = caught(mutant).expect("caught");
        assert!(
            failure.what.contains(what),
            "{mutant:?} (seed {seed}) caught as {:?}, not {what:?}",
            failure.what
        );
    };
    expect(HandleMutant::DropTimedOutCall, "before the hard limit");
    expect(HandleMutant::StartBesideOutstandingCall, "S1");
    expect(HandleMutant::ForgetToWakeRound, "L1");
    expect(HandleMutant::ReportUnderLock, "lock held");
}
