//! The simulator's readers under arbitrary text: a scenario file (a bare
//! scenario or a regression trace), a regression trace as the regression
//! test loads it, and a conformance vector as the replay reads it. The
//! first byte picks the reader; the rest is the file.
//!
//! Judged: nothing panics; malformed text gets a typed error; a scenario
//! the reader accepts runs (a few requests of it, both algorithms) without
//! a panic.

use tokenflight_sim::swarm::{parse_regression, parse_scenario};
use tokenflight_sim::{vectors, RunOptions};

/// Requests of an accepted scenario that are run, at most.
const RUN_REQUESTS: u64 = 12;
/// Streams of an accepted scenario that are run, at most (each stream is
/// an event at the start, so a million of them would make one input slow).
const RUN_STREAMS: u32 = 8;

/// The target: panics on a panic of a reader or of an accepted run.
pub fn run(data: &[u8]) {
    if let Err(e) = check(data) {
        panic!("{e}");
    }
}

/// Feeds `data` to the reader its first byte names.
///
/// # Errors
///
/// A reader's promise broken (none today: the readers' errors are typed
/// and a broken promise is a panic).
pub fn check(data: &[u8]) -> Result<(), String> {
    let Some((&which, rest)) = data.split_first() else {
        return Ok(());
    };
    // The readers read files as UTF-8, refusing anything else first.
    let Ok(text) = std::str::from_utf8(rest) else {
        return Ok(());
    };
    match which % 3 {
        0 => {
            if let Ok(mut sc) = parse_scenario(text) {
                sc.requests = sc.requests.min(RUN_REQUESTS);
                sc.streams = sc.streams.min(RUN_STREAMS);
                let _ = tokenflight_sim::run_tokenflight(&sc, RunOptions::default());
                let _ = tokenflight_sim::run_recipe(&sc, RunOptions::default());
            }
        }
        1 => {
            let _ = parse_regression(text);
        }
        _ => {
            let _ = vectors::replay(text);
        }
    }
    Ok(())
}
