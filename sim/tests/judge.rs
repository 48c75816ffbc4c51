//! The judge command: a good history passes; histories with the recipe's
//! bugs planted in them each fail with the rule they break, at the line
//! that broke it; malformed input is a typed error with its line. The
//! command itself is run, so its exit codes are checked too.

use serde_json::Value;
use tokenflight::check::{Limits, Recorder, Rule};
use tokenflight::core::{Action, Core, Next, RequestId};
use tokenflight::{Config, Fresh, RefreshError, Timestamp};
use tokenflight_sim::judge::{self, event_line, limits_line};

mod common;

/// Runs `tokenflight-sim judge ARGS` on `input`: (exit code, stdout).
fn run(args: &[&str], input: &str) -> (i32, String) {
    let mut all = vec!["judge"];
    all.extend_from_slice(args);
    common::run_sim(&all, input)
}

fn verdict(args: &[&str], input: &str) -> (i32, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out) = run(&all, input);
    (code, serde_json::from_str(&out).unwrap())
}

/// A history of the real core, driven as a front-end drives it: a herd
/// rejected on one expiry, one refresh, a failed round, a login, every
/// request completed. Written with the limits line of its config.
fn core_history() -> String {
    let t = Timestamp::from_millis;
    let mut config = Config::default();
    config.max_refresh_attempts = 2;
    let core: Core<String, String> = Core::new(config.clone()).unwrap();
    let mut rec = Recorder::new(core).logging();
    rec.set_token(t(0), Fresh::new("t1".into()));
    let mut leases = Vec::new();
    for id in 1..=3 {
        let Next::Send(l) = rec.acquire(t(1), RequestId(id)) else {
            panic!()
        };
        leases.push((RequestId(id), l));
    }
    for (id, l) in &leases {
        assert!(matches!(rec.reject(t(2), *id, l), Next::Wait));
    }
    let mut attempt = None;
    while let Some(a) = rec.poll_action() {
        if let Action::StartRefresh { attempt: a } = a {
            attempt = Some(a);
        }
    }
    rec.refreshed(t(3), attempt.unwrap(), Ok(Fresh::new("t2".into())));
    let mut resumed = Vec::new();
    while let Some(a) = rec.poll_action() {
        if let Action::Resume { id, lease } = a {
            resumed.push((id, lease));
        }
    }
    assert_eq!(resumed.len(), 3);
    for (id, _) in &resumed[..2] {
        rec.complete(*id);
    }
    // The third is rejected again: a round that fails, then a login.
    let (id, lease) = &resumed[2];
    assert!(matches!(rec.reject(t(4), *id, lease), Next::Wait));
    for _ in 0..2 {
        let mut attempt = None;
        while let Some(a) = rec.poll_action() {
            if let Action::StartRefresh { attempt: a } = a {
                attempt = Some(a);
            }
        }
        if let Some(a) = attempt {
            rec.refreshed(t(5), a, Err(RefreshError::Transient("503".into())));
        }
        rec.timeout(t(1_000));
    }
    let failed = std::iter::from_fn(|| rec.poll_action())
        .filter(|a| matches!(a, Action::Fail { .. }))
        .count();
    assert_eq!(failed, 1);
    rec.set_token(t(2_000), Fresh::new("t3".into()));
    let Next::Send(_) = rec.acquire(t(2_001), RequestId(4)) else {
        panic!()
    };
    rec.complete(RequestId(4));
    rec.finish();
    assert!(rec.monitor().first_violation().is_none());
    let mut lines = vec![limits_line(&Limits::of(&config)).to_string()];
    for (at, e) in rec.log().unwrap() {
        lines.push(event_line(*at, e).to_string());
    }
    lines.join("\n") + "\n"
}

#[test]
fn a_good_history_passes() {
    let history = core_history();
    let (code, v) = verdict(&["--heal"], &history);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["healed"], true);
    assert!(v["events"].as_u64().unwrap() > 20);
    assert!(v["first"].is_null());
    let (code, text) = run(&["--heal"], &history);
    assert_eq!(code, 0);
    assert!(text.starts_with("ok:"), "{text}");
}

/// `(at ms, type, fields)` as judge lines.
fn history(events: &[(u64, &str, &str)]) -> String {
    events
        .iter()
        .map(|(at, ty, rest)| {
            let sep = if rest.is_empty() { "" } else { "," };
            format!(
                "{{\"at\":{},\"type\":\"{ty}\"{sep}{rest}}}\n",
                at * 1_000_000
            )
        })
        .collect()
}

/// Judges a planted history; returns the first violation's rule and line.
fn first_violation(args: &[&str], text: &str) -> (String, Value) {
    let (code, v) = verdict(args, text);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["ok"], false);
    (
        v["first"]["rule"].as_str().unwrap().to_string(),
        v["first"]["line"].clone(),
    )
}

#[test]
fn a_double_refresh_on_a_stale_rejection_breaks_s2() {
    // The recipe: request 2 was sent with generation 1, its 401 comes back
    // after the refresh made generation 2, and it refreshes again.
    let text = history(&[
        (0, "RefreshStarted", "\"attempt\":1"),
        (10, "RefreshEnded", "\"attempt\":1,\"ok\":true"),
        (
            10,
            "NewGeneration",
            "\"generation\":1,\"expires_at\":null,\"from\":1",
        ),
        (20, "Arrived", "\"id\":1"),
        (20, "Sent", "\"id\":1,\"generation\":1"),
        (21, "Arrived", "\"id\":2"),
        (21, "Sent", "\"id\":2,\"generation\":1"),
        (30, "Rejected", "\"id\":1,\"generation\":1"),
        (30, "RefreshStarted", "\"attempt\":2"),
        (40, "RefreshEnded", "\"attempt\":2,\"ok\":true"),
        (
            40,
            "NewGeneration",
            "\"generation\":2,\"expires_at\":null,\"from\":2",
        ),
        (41, "Sent", "\"id\":1,\"generation\":2"),
        (42, "Rejected", "\"id\":2,\"generation\":1"),
        (42, "RefreshStarted", "\"attempt\":3"),
    ]);
    let (rule, line) = first_violation(&[], &text);
    assert_eq!((rule.as_str(), line), ("S2", Value::from(14)));
}

#[test]
fn two_refresh_calls_at_once_break_s1() {
    let text = history(&[
        (0, "RefreshStarted", "\"attempt\":1"),
        (1, "RefreshStarted", "\"attempt\":2"),
    ]);
    let (rule, line) = first_violation(&[], &text);
    assert_eq!((rule.as_str(), line), ("S1", Value::from(2)));
}

#[test]
fn a_hang_after_failure_breaks_s6_or_l1() {
    let waiting = [
        (0, "Arrived", "\"id\":1"),
        (0, "Waiting", "\"id\":1"),
        (0, "RefreshStarted", "\"attempt\":1"),
        (5, "RefreshEnded", "\"attempt\":1,\"ok\":false"),
    ];
    // A front-end that reports its phase: failed with a waiter left.
    let mut with_phase = waiting.to_vec();
    with_phase.push((5, "PhaseChanged", "\"phase\":\"Failed\""));
    let (rule, line) = first_violation(&[], &history(&with_phase));
    assert_eq!((rule.as_str(), line), ("S6", Value::from(5)));
    // One that does not (the recipe's empty `else {}`): the waiter is still
    // there when the history ends.
    let text = history(&waiting);
    let (code, v) = verdict(&[], &text);
    assert_eq!(code, 0, "without --heal L1 is not judged: {v}");
    let (rule, line) = first_violation(&["--heal"], &text);
    assert_eq!((rule.as_str(), line), ("L1", Value::Null));
}

#[test]
fn a_stale_send_breaks_s5() {
    let text = history(&[
        (0, "RefreshStarted", "\"attempt\":1"),
        (1, "RefreshEnded", "\"attempt\":1,\"ok\":true"),
        (
            1,
            "NewGeneration",
            "\"generation\":1,\"expires_at\":null,\"from\":1",
        ),
        (2, "Arrived", "\"id\":1"),
        (2, "Sent", "\"id\":1,\"generation\":1"),
        (3, "Rejected", "\"id\":1,\"generation\":1"),
        (3, "Arrived", "\"id\":2"),
        (3, "Sent", "\"id\":2,\"generation\":1"),
    ]);
    let (rule, line) = first_violation(&[], &text);
    assert_eq!((rule.as_str(), line), ("S5", Value::from(8)));
}

#[test]
fn an_unbounded_retry_breaks_s4_under_limits() {
    let mut events = vec![(0, "Arrived", "\"id\":1".to_string())];
    for g in 1..=4u64 {
        events.push((g, "RefreshStarted", format!("\"attempt\":{g}")));
        events.push((g, "RefreshEnded", format!("\"attempt\":{g},\"ok\":true")));
        events.push((
            g,
            "NewGeneration",
            format!("\"generation\":{g},\"expires_at\":null,\"from\":{g}"),
        ));
        events.push((g, "Sent", format!("\"id\":1,\"generation\":{g}")));
        events.push((g, "Rejected", format!("\"id\":1,\"generation\":{g}")));
    }
    let borrowed: Vec<(u64, &str, &str)> = events
        .iter()
        .map(|(a, t, f)| (*a, *t, f.as_str()))
        .collect();
    let text = history(&borrowed);
    let (code, _) = verdict(&[], &text);
    assert_eq!(code, 0, "unbounded limits promise no retry budget");
    let limits = "{\"type\":\"Limits\",\"max_sends\":3}\n";
    let (rule, line) = first_violation(&[], &format!("{limits}{text}"));
    // The fourth send, on line 1 (limits) + 1 + 3 * 5 + 4.
    assert_eq!((rule.as_str(), line), ("S4", Value::from(21)));
}

#[test]
fn a_wait_while_the_token_is_usable_breaks_s5b() {
    // A refresh ahead of expiry: the token (expiring at 100 ms, margin 10
    // ms) is still usable at 60 ms, so a request must be sent, not parked.
    let text = history(&[
        (0, "RefreshStarted", "\"attempt\":1"),
        (1, "RefreshEnded", "\"attempt\":1,\"ok\":true"),
        (
            1,
            "NewGeneration",
            "\"generation\":1,\"expires_at\":100000000,\"from\":1",
        ),
        (60, "RefreshStarted", "\"attempt\":2"),
        (60, "Arrived", "\"id\":1"),
        (60, "Waiting", "\"id\":1"),
    ]);
    let limits =
        "{\"type\":\"Limits\",\"safety_margin_ns\":10000000,\"proactive_window_ns\":50000000}\n";
    let (rule, line) = first_violation(&[], &format!("{limits}{text}"));
    assert_eq!((rule.as_str(), line), ("S5b", Value::from(7)));
    // Past the margin the same wait is fine.
    let late = text.replace("\"at\":60000000", "\"at\":95000000");
    assert_eq!(verdict(&[], &format!("{limits}{late}")).0, 0);
}

#[test]
fn a_call_left_running_beside_a_new_one_breaks_s1_until_dropped() {
    let soft_timeout = [
        (0, "RefreshStarted", "\"attempt\":1"),
        (10, "RefreshAbandoned", "\"attempt\":1"),
    ];
    // Abandoned at its soft timeout, the call is still at the endpoint.
    let mut beside = soft_timeout.to_vec();
    beside.push((20, "RefreshStarted", "\"attempt\":2"));
    let (rule, line) = first_violation(&[], &history(&beside));
    assert_eq!((rule.as_str(), line), ("S1", Value::from(3)));
    // Once its future is dropped, the next call may start.
    let mut dropped = soft_timeout.to_vec();
    dropped.push((15, "RefreshDropped", "\"attempt\":1"));
    dropped.push((20, "RefreshStarted", "\"attempt\":2"));
    assert_eq!(verdict(&[], &history(&dropped)).0, 0);
}

#[test]
fn malformed_input_is_a_typed_error_with_its_line() {
    let good = "{\"at\":0,\"type\":\"Arrived\",\"id\":1}\n";
    for (bad, kind) in [
        ("{\"at\":0,\"type\":\"Arrived\"", "json"),
        ("{\"at\":0,\"type\":\"Teleported\",\"id\":1}", "schema"),
        ("{\"at\":0,\"type\":\"Sent\",\"id\":1}", "schema"),
        (
            "{\"at\":0,\"type\":\"Sent\",\"id\":1,\"generaton\":1}",
            "schema",
        ),
        ("{\"at\":-1,\"type\":\"Arrived\",\"id\":2}", "schema"),
        ("{\"type\":\"Limits\",\"max_sends\":3}", "schema"),
    ] {
        let (code, v) = verdict(&[], &format!("{good}{bad}\n{good}"));
        assert_eq!(code, 2, "{bad}: {v}");
        assert_eq!(v["error"], kind, "{bad}");
        assert_eq!(v["line"], 2, "{bad}");
    }
    // Notes of the front-end's own, and times as strings past 2^53, pass.
    let text = "{\"at\":\"18446744073709551615\",\"type\":\"Arrived\",\"id\":1,\"_url\":\"/x\"}\n";
    assert_eq!(verdict(&[], text).0, 0);
}

#[test]
fn every_violation_keeps_its_line() {
    let text = history(&[
        (0, "RefreshStarted", "\"attempt\":1"),
        (0, "RefreshStarted", "\"attempt\":2"),
        (0, "Arrived", "\"id\":1"),
        (0, "Arrived", "\"id\":1"),
    ]);
    let v = judge::judge(text.as_bytes(), false).unwrap();
    let lines: Vec<_> = v.findings.iter().map(|f| (f.rule, f.line)).collect();
    assert_eq!(lines, [(Rule::S1, Some(2)), (Rule::S4, Some(4))]);
    assert_eq!(
        v.counts.iter().map(|(_, n)| n).sum::<u64>(),
        2,
        "{:?}",
        v.counts
    );
}

/// The judge reads back exactly what a history says: on the histories of
/// the real core driven by random scripts (hostile inputs included, so
/// some histories do break rules: a forged lease is a rejection of a
/// request never sent), its verdict equals the checker's in-process one.
#[test]
fn the_judge_agrees_with_the_checker_in_process() {
    use std::sync::Arc;
    use tokenflight::core::{Lease, RefreshId};
    use tokenflight::Generation;
    use tokenflight_sim::random_script;
    use tokenflight_sim::script::{Input, RefreshResult};

    let mut broken = 0;
    for script in random_script::draw_many(77, 300) {
        let Ok(core) = Core::<String, String>::new(script.config.clone()) else {
            continue;
        };
        let mut rec = Recorder::new(core).logging();
        let ts = Timestamp::from_nanos;
        let fresh = |token: &str, e: Option<u64>| {
            let f = Fresh::new(token.to_string());
            match e {
                Some(e) => f.expiring_at(ts(e)),
                None => f,
            }
        };
        for (now, input) in &script.inputs {
            let t = ts(*now);
            match input {
                Input::Acquire { id } => {
                    let _ = rec.acquire(t, RequestId(*id));
                }
                Input::Reject {
                    id,
                    token,
                    generation,
                    send,
                } => {
                    let lease =
                        Lease::from_parts(Arc::new(token.clone()), Generation(*generation), *send);
                    let _ = rec.reject(t, RequestId(*id), &lease);
                }
                Input::Cancel { id } => {
                    rec.cancel(t, RequestId(*id));
                }
                Input::Refreshed { attempt, result } => {
                    let result = match result {
                        RefreshResult::Ok { token, expires_at } => Ok(fresh(token, *expires_at)),
                        RefreshResult::Transient { error } => {
                            Err(RefreshError::Transient(error.clone()))
                        }
                        RefreshResult::Permanent { error } => {
                            Err(RefreshError::Permanent(error.clone()))
                        }
                    };
                    rec.refreshed(t, RefreshId(*attempt), result);
                }
                Input::Timeout => rec.timeout(t),
                Input::SetToken { token, expires_at } => {
                    rec.set_token(t, fresh(token, *expires_at))
                }
                Input::Invalidate { generation } => rec.invalidate(t, Generation(*generation)),
            }
            while rec.poll_action().is_some() {}
        }
        rec.finish();
        let mut text = limits_line(&Limits::of(&script.config)).to_string() + "\n";
        for (at, e) in rec.log().unwrap() {
            text.push_str(&event_line(*at, e).to_string());
            text.push('\n');
        }
        let verdict = judge::judge(text.as_bytes(), true).unwrap();
        let m = rec.monitor();
        let counts: Vec<u64> = Rule::ALL.iter().map(|r| m.count(*r)).collect();
        let judged: Vec<u64> = verdict.counts.iter().map(|(_, n)| *n).collect();
        assert_eq!(judged, counts, "{}", script.to_json());
        let first = |v: &judge::Finding| (v.rule, v.at, v.detail.clone());
        assert_eq!(
            verdict.first().map(first),
            m.first_violation()
                .map(|v| (v.rule, v.at.as_nanos(), v.detail.clone()))
        );
        broken += usize::from(!verdict.ok());
    }
    assert!(broken > 0, "some hostile histories break a rule");
}

/// A simulator trace line (`--trace`) as a judge line; `None` for the
/// server's and the network's facts, which are not checker events.
fn judge_line(v: &Value) -> Option<String> {
    let at = v["t"].as_u64()?;
    let (ty, fields) = match v["ev"].as_str()? {
        "arrived" => ("Arrived", format!("\"id\":{}", v["id"])),
        "sent" => (
            "Sent",
            format!("\"id\":{},\"generation\":{}", v["id"], v["gen"]),
        ),
        "rejected" => (
            "Rejected",
            format!("\"id\":{},\"generation\":{}", v["id"], v["gen"]),
        ),
        "waiting" => ("Waiting", format!("\"id\":{}", v["id"])),
        "completed" => ("Completed", format!("\"id\":{}", v["id"])),
        "failed" => ("Failed", format!("\"id\":{}", v["id"])),
        "cancelled" => ("Cancelled", format!("\"id\":{}", v["id"])),
        "refresh_started" => ("RefreshStarted", format!("\"attempt\":{}", v["attempt"])),
        "refresh_ended" => (
            "RefreshEnded",
            format!("\"attempt\":{},\"ok\":{}", v["attempt"], v["ok"]),
        ),
        "refresh_abandoned" => ("RefreshAbandoned", format!("\"attempt\":{}", v["attempt"])),
        "refresh_dropped" => ("RefreshDropped", format!("\"attempt\":{}", v["attempt"])),
        "new_generation" => (
            "NewGeneration",
            format!(
                "\"generation\":{},\"expires_at\":{},\"from\":{}",
                v["gen"], v["expires_at"], v["from"]
            ),
        ),
        "invalidated" => ("Invalidated", format!("\"generation\":{}", v["gen"])),
        "phase" => {
            let p = match v["phase"].as_str()? {
                "idle" => "Idle",
                "refreshing" => "Refreshing",
                _ => "Failed",
            };
            ("PhaseChanged", format!("\"phase\":\"{p}\""))
        }
        _ => return None,
    };
    Some(format!("{{\"at\":{at},\"type\":\"{ty}\",{fields}}}"))
}

/// The simulator's runs, written out and judged by the command: the
/// recipe's history breaks the rules its own checker counted (double
/// refreshes, hung and stale requests), the core's and the real handle's
/// (the events the handle reported itself) break none.
#[test]
fn the_command_judges_the_simulated_recipe_and_core() {
    use tokenflight_sim::{run_handle, run_recipe, run_tokenflight, RunOptions, Scenario};

    let dir = std::env::temp_dir().join(format!("tokenflight-judge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut recipe_broke = std::collections::BTreeSet::new();
    for seed in 0..6 {
        let sc = Scenario::draw(seed, 800);
        for algo in ["recipe", "tokenflight", "handle"] {
            let path = dir.join(format!("{seed}-{algo}.jsonl"));
            let opts = RunOptions {
                trace: Some(Box::new(std::fs::File::create(&path).unwrap())),
                timeline: None,
            };
            let report = match algo {
                "recipe" => run_recipe(&sc, opts),
                "handle" => run_handle(&sc, opts),
                _ => run_tokenflight(&sc, opts),
            };
            let limits = if algo == "recipe" {
                Limits::unbounded()
            } else {
                Limits::of(&sc.core.config(sc.seed))
            };
            let mut history = limits_line(&limits).to_string() + "\n";
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                if let Some(l) = judge_line(&v) {
                    history.push_str(&l);
                    history.push('\n');
                }
            }
            let (code, verdict) = verdict(&["--heal"], &history);
            // The checker's rows of the report, in `Rule::ALL` order.
            for rule in Rule::ALL {
                let name = format!("{rule:?}");
                let counted = report
                    .rule_counts
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map_or(0, |(_, n)| *n);
                assert_eq!(
                    verdict["counts"][&name], counted,
                    "seed {seed}, {algo}, {name}"
                );
                if algo == "recipe" && counted > 0 {
                    recipe_broke.insert(name);
                }
            }
            if algo != "recipe" {
                assert_eq!(code, 0, "seed {seed}, {algo}: {verdict}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        recipe_broke.len() >= 2,
        "the recipe broke only {recipe_broke:?}"
    );
    eprintln!("the recipe's histories broke {recipe_broke:?}");
}
