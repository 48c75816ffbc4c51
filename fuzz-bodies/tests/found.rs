//! The bugs the fuzzers found, each pinned by a direct test that does not
//! depend on how a target decodes its bytes (a decoder that grows reads an
//! old input differently; the named inputs in `fuzz/regressions/` replay
//! too, in `replay.rs`).

use std::time::Duration;

use tokenflight::core::Core;
use tokenflight::{Config, Fresh, Timestamp};

/// A skew near `Duration::MAX` plus its jitter overflowed when a token with
/// an expiry was adopted (`fuzz/regressions/core/expiry-skew-plus-jitter-overflows`).
#[test]
fn a_huge_expiry_skew_with_jitter_does_not_panic() {
    let mut config = Config::default();
    config.expiry_skew = Duration::MAX;
    config.skew_jitter = Duration::from_secs(5);
    let mut core: Core<&str, ()> = Core::new(config).unwrap();
    let t = Timestamp::from_millis(1_000);
    core.handle_set_token(
        t,
        Fresh::new("tok").expiring_at(Timestamp::from_millis(60_000)),
    );
    assert!(core
        .snapshot()
        .is_none_or(|s| s.valid_until <= Timestamp::from_millis(60_000)));
}
