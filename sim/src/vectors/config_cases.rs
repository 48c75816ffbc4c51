//! The configuration vector: configs and the error kind the core refuses
//! each with.

use std::time::Duration;

use serde_json::Value;
use tokenflight::core::Core;
use tokenflight::Config;

use crate::{oracle, script};

/// Configurations the core refuses, each with the error kind it must be
/// refused with: every check alone, and several broken at once (the first
/// check in `CONFIG_ERROR_KINDS` order wins).
fn config_cases() -> Vec<(&'static str, Config)> {
    let with = |f: fn(&mut Config)| {
        let mut c = Config::default();
        f(&mut c);
        c
    };
    vec![
        ("valid: the defaults", Config::default()),
        (
            "valid: backoff_initial equal to backoff_max, zero jitter",
            with(|c| {
                c.backoff_initial = Duration::from_nanos(7);
                c.backoff_max = Duration::from_nanos(7);
                c.skew_jitter = Duration::ZERO;
                c.cooldown = Duration::ZERO;
            }),
        ),
        (
            "valid: one nanosecond of timeout",
            with(|c| c.refresh_timeout = Duration::from_nanos(1)),
        ),
        ("max_waiters 0", with(|c| c.max_waiters = 0)),
        (
            "max_refresh_attempts 0",
            with(|c| c.max_refresh_attempts = 0),
        ),
        (
            "refresh_timeout 0",
            with(|c| c.refresh_timeout = Duration::ZERO),
        ),
        (
            "backoff_initial above backoff_max by 1 ns",
            with(|c| {
                c.backoff_initial = Duration::from_nanos(5_000_000_001);
                c.backoff_max = Duration::from_nanos(5_000_000_000);
            }),
        ),
        (
            "every check broken: the first wins",
            with(|c| {
                c.max_waiters = 0;
                c.max_refresh_attempts = 0;
                c.refresh_timeout = Duration::ZERO;
                c.backoff_max = Duration::ZERO;
            }),
        ),
        (
            "all but max_waiters broken",
            with(|c| {
                c.max_refresh_attempts = 0;
                c.refresh_timeout = Duration::ZERO;
                c.backoff_max = Duration::ZERO;
            }),
        ),
        (
            "refresh_abandon_after 1 ns below refresh_timeout",
            with(|c| {
                c.refresh_abandon_after = c.refresh_timeout.saturating_sub(Duration::from_nanos(1));
            }),
        ),
        (
            "valid: refresh_abandon_after equal to refresh_timeout",
            with(|c| c.refresh_abandon_after = c.refresh_timeout),
        ),
        (
            "abandon and back-off broken: the abandon check comes first",
            with(|c| {
                c.refresh_abandon_after = Duration::ZERO;
                c.backoff_max = Duration::ZERO;
            }),
        ),
        (
            "timeout and back-off broken",
            with(|c| {
                c.refresh_timeout = Duration::ZERO;
                c.backoff_max = Duration::ZERO;
            }),
        ),
    ]
}

/// The configuration vector: `{"cases": [{"about", "config", "error"}]}`,
/// `error` the kind the core refuses the config with, or `null`.
pub(super) fn config_vector() -> Value {
    let cases: Vec<Value> = config_cases()
        .into_iter()
        .map(|(about, c)| {
            let error = Core::<String, String>::new(c.clone())
                .err()
                .map(|e| oracle::config_error_kind(&e));
            serde_json::json!({ "about": about, "config": script::config_record(&c), "error": error })
        })
        .collect();
    serde_json::json!({
        "description": "configurations and the error kind the core refuses each with (null: accepted); the oracle answers a script with such a config {\"error\": \"invalid_config\", \"kind\": KIND}",
        "cases": cases,
    })
}
