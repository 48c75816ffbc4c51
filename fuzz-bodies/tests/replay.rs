//! Every committed corpus file and regression input of the core, token
//! server, simulator, oracle, judge and store targets, replayed through
//! the target's own body on stable: what the fuzzers found stays fixed
//! without a nightly toolchain.
//! (The HTTP target's replay counts the heap, so it has a test binary of
//! its own: `replay_http.rs`.)

mod common;

use tokenflight::core::Core;

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
fn the_oracle_corpus_replays() {
    common::replay("oracle", fuzz_bodies::oracle::check);
}

#[test]
fn the_judge_corpus_replays() {
    common::replay("judge", fuzz_bodies::judge::check);
}

#[test]
fn the_store_corpus_replays() {
    common::replay("store", fuzz_bodies::store::check);
}

#[test]
fn every_target_has_a_corpus() {
    for (name, _) in fuzz_bodies::TARGETS {
        assert!(!common::corpus(name).is_empty(), "{name}");
    }
}
