//! Every committed corpus file and regression input of the core, token
//! server and simulator targets, replayed through the target's own body on
//! stable: what the fuzzers found stays fixed without a nightly toolchain.
//! (The HTTP target's replay counts the heap, so it has a test binary of
//! its own: `replay_http.rs`.)

mod common;

use tokenflight::Core;

#[test]
fn the_core_corpus_replays() {
    let n = common::replay("core", |data| fuzz_bodies::core::check(data, Core::new));
    assert!(n > 0);
}

#[test]
fn the_tokenserver_corpus_replays() {
    common::replay("tokenserver", fuzz_bodies::tokenserver::check);
}

#[test]
fn the_sim_corpus_replays() {
    common::replay("sim", fuzz_bodies::sim::check);
}

#[test]
fn every_target_has_a_corpus() {
    for (name, _) in fuzz_bodies::TARGETS {
        assert!(!common::corpus(name).is_empty(), "{name}");
    }
}
