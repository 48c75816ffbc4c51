//! Conformance vectors: small traces of the core, inputs with their times
//! and the exact outputs it must produce, in the Informal Trace Format
//! (ITF, the trace format of Apalache and Quint), so that a port of the
//! core to another language can prove itself against the same files.
//!
//! Each vector is a script of inputs; [`generate`] runs the real core on it
//! and writes what it did. [`replay`] reads a vector, feeds its inputs to a
//! fresh core and checks every output. The mapping from the core to ITF is
//! described in `sim/README.md`.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokenflight::{
    Action, Config, Core, Error, Fresh, Lease, Next, Phase, RefreshError, RefreshFailure,
    RefreshId, RequestId, Timestamp,
};

type VCore = Core<String, String>;

const MS: u64 = 1_000_000;

/// One input of a script.
#[derive(Debug, Clone)]
enum In {
    Acquire(u64),
    /// The server rejected the token request `id` was last given.
    Reject(u64),
    Cancel(u64),
    RefreshOk(u64, String, Option<u64>),
    RefreshTransient(u64),
    RefreshPermanent(u64),
    Timeout,
    SetToken(String, Option<u64>),
    Invalidate(u64),
}

/// A script: a name, what it shows, a configuration and timed inputs (ms).
struct Script {
    name: &'static str,
    about: &'static str,
    config: fn(&mut Config),
    steps: Vec<(u64, In)>,
}

fn base(c: &mut Config) {
    c.skew_jitter = Duration::ZERO;
}

fn scripts() -> Vec<Script> {
    use In::*;
    vec![
        Script {
            name: "cold-start",
            about: "no token yet: the first request waits for the first refresh; the next is sent at once",
            config: base,
            steps: vec![(0, Acquire(1)), (50, RefreshOk(1, "t1".into(), None)), (60, Acquire(2))],
        },
        Script {
            name: "herd-single-flight",
            about: "three requests rejected on one expiry: one refresh, all three resumed with the new token",
            config: base,
            steps: vec![
                (0, SetToken("t1".into(), None)),
                (1, Acquire(1)),
                (1, Acquire(2)),
                (1, Acquire(3)),
                (20, Reject(1)),
                (21, Reject(2)),
                (22, Reject(3)),
                (80, RefreshOk(1, "t2".into(), None)),
            ],
        },
        Script {
            name: "stale-rejection-no-refresh",
            about: "a rejection of an older generation arriving after the refresh is answered with the current token and starts nothing",
            config: base,
            steps: vec![
                (0, SetToken("t1".into(), None)),
                (1, Acquire(1)),
                (1, Acquire(2)),
                (20, Reject(1)),
                (70, RefreshOk(1, "t2".into(), None)),
                (90, Reject(2)),
            ],
        },
        Script {
            name: "acquire-during-refresh-waits",
            about: "a request started while refreshing a rejected token waits instead of going out with it",
            config: base,
            steps: vec![
                (0, SetToken("t1".into(), None)),
                (1, Acquire(1)),
                (20, Reject(1)),
                (30, Acquire(2)),
                (60, RefreshOk(1, "t2".into(), None)),
            ],
        },
        Script {
            name: "transient-backoff-retry",
            about: "a transient refresh error backs off; the timer starts the next attempt, which succeeds",
            config: base,
            steps: vec![
                (0, SetToken("t1".into(), None)),
                (1, Acquire(1)),
                (20, Reject(1)),
                (50, RefreshTransient(1)),
                (100, Timeout),
                (200, Timeout),
                (260, RefreshOk(2, "t2".into(), None)),
            ],
        },
        Script {
            name: "give-up-fails-every-waiter",
            about: "after max_refresh_attempts transient failures every waiter fails in the same step; new requests fail fast until the cool-down ends, then start a new round",
            config: |c| {
                base(c);
                c.max_refresh_attempts = 2;
                c.cooldown = Duration::from_secs(1);
            },
            steps: vec![
                (0, SetToken("t1".into(), None)),
                (1, Acquire(1)),
                (1, Acquire(2)),
                (20, Reject(1)),
                (21, Reject(2)),
                (50, RefreshTransient(1)),
                (200, Timeout),
                (250, RefreshTransient(2)),
                (300, Acquire(3)),
                (2_000, Acquire(4)),
            ],
        },
        Script {
            name: "permanent-needs-login",
            about: "a permanent refresh error fails every waiter with login-required until a new login",
            config: base,
            steps: vec![
                (0, SetToken("t1".into(), None)),
                (1, Acquire(1)),
                (20, Reject(1)),
                (25, Acquire(2)),
                (50, RefreshPermanent(1)),
                (60, Acquire(3)),
                (5_000, Acquire(4)),
                (6_000, SetToken("t2".into(), None)),
                (6_001, Acquire(5)),
            ],
        },
        Script {
            name: "timeout-then-late-success",
            about: "an attempt that misses its soft deadline counts as failed but its call stays outstanding; its late success is still adopted (it carries the only valid refresh token)",
            config: |c| {
                base(c);
                c.refresh_timeout = Duration::from_secs(1);
            },
            steps: vec![
                (0, SetToken("t1".into(), None)),
                (1, Acquire(1)),
                (20, Reject(1)),
                (1_020, Timeout),
                (1_050, RefreshOk(1, "t2".into(), None)),
                (1_200, Timeout),
            ],
        },
        Script {
            name: "next-attempt-waits-for-the-late-call",
            about: "after a soft timeout and its back-off the next attempt is queued behind the call still outstanding (one call at a time); the late error ends the call and the next attempt starts at once; answers for unknown or answered attempts are ignored",
            config: |c| {
                base(c);
                c.refresh_timeout = Duration::from_secs(1);
            },
            steps: vec![
                (0, SetToken("t1".into(), None)),
                (1, Acquire(1)),
                (20, Reject(1)),
                (1_020, Timeout),
                (1_200, Timeout),
                (1_250, RefreshOk(2, "t-unknown".into(), None)),
                (1_300, RefreshTransient(1)),
                (1_350, RefreshOk(2, "t2".into(), None)),
                (1_351, RefreshOk(2, "t-repeat".into(), None)),
            ],
        },
        Script {
            name: "cancel-waiter",
            about: "a cancelled waiter is removed and never resumed; cancelling a request that is not waiting does nothing",
            config: base,
            steps: vec![
                (0, Acquire(1)),
                (0, Acquire(2)),
                (10, Cancel(1)),
                (50, RefreshOk(1, "t1".into(), None)),
                (60, Cancel(2)),
            ],
        },
        Script {
            name: "overloaded",
            about: "beyond max_waiters a request fails at once",
            config: |c| {
                base(c);
                c.max_waiters = 2;
            },
            steps: vec![
                (0, Acquire(1)),
                (0, Acquire(2)),
                (0, Acquire(3)),
                (50, RefreshOk(1, "t1".into(), None)),
            ],
        },
        Script {
            name: "retry-budget",
            about: "a request rejected on every send fails with auth-rejected after max_auth_retries retries",
            config: |c| {
                base(c);
                c.max_auth_retries = 1;
            },
            steps: vec![
                (0, SetToken("t1".into(), None)),
                (1, Acquire(1)),
                (20, Reject(1)),
                (50, RefreshOk(1, "t2".into(), None)),
                (70, Reject(1)),
            ],
        },
        Script {
            name: "refresh-ahead-while-sending",
            about: "a token with a known expiry is refreshed expiry_skew ahead of it, lazily: the first request past that time is sent with it and starts the refresh in the background; requests keep being sent with it until the new one comes",
            config: base,
            steps: vec![
                (0, SetToken("t1".into(), Some(100_000))),
                (10_000, Acquire(1)),
                (75_000, Acquire(2)),
                (75_050, Acquire(3)),
                (75_100, RefreshOk(1, "t2".into(), Some(200_000))),
                (75_200, Acquire(4)),
            ],
        },
        Script {
            name: "expired-on-arrival",
            about: "a refreshed token that has already expired counts as a failed attempt",
            config: base,
            steps: vec![
                (0, Acquire(1)),
                (50, RefreshOk(1, "t-dead".into(), Some(40))),
                (300, Timeout),
                (350, RefreshOk(2, "t1".into(), None)),
            ],
        },
        Script {
            name: "attempt-timeouts-give-up",
            about: "calls that never answer are given up for good at the hard limit (here equal to the soft timeout), so the next attempt may start; after the last one every waiter fails with a timeout error and an answer of a dropped call is ignored",
            config: |c| {
                base(c);
                c.max_refresh_attempts = 2;
                c.refresh_timeout = Duration::from_secs(1);
                c.refresh_abandon_after = Duration::from_secs(1);
            },
            steps: vec![
                (0, Acquire(1)),
                (1_000, Timeout),
                (1_200, Timeout),
                (2_200, Timeout),
                (2_300, RefreshOk(2, "t-too-late".into(), None)),
                (2_400, Acquire(2)),
            ],
        },
        Script {
            name: "expired-on-arrival-gives-up",
            about: "with one attempt per round, an already expired token fails every waiter",
            config: |c| {
                base(c);
                c.max_refresh_attempts = 1;
            },
            steps: vec![(0, Acquire(1)), (50, RefreshOk(1, "t-dead".into(), Some(40)))],
        },
        Script {
            name: "invalidate",
            about: "invalidating the current generation starts a refresh; an older generation is ignored",
            config: base,
            steps: vec![
                (0, SetToken("t1".into(), None)),
                (5, Invalidate(0)),
                (10, Invalidate(1)),
                (11, Acquire(1)),
                (50, RefreshOk(1, "t2".into(), None)),
            ],
        },
        Script {
            name: "time-goes-backwards",
            about: "an earlier time than one already seen is taken as the latest seen: timers never fire early",
            config: |c| {
                base(c);
                c.refresh_timeout = Duration::from_secs(1);
            },
            steps: vec![
                (0, SetToken("t1".into(), None)),
                (500, Acquire(1)),
                (600, Reject(1)),
                (100, Timeout),
                (1_599, Timeout),
                (1_600, Timeout),
            ],
        },
        Script {
            name: "duplicate-request-id",
            about: "an id that is already waiting fails the newcomer and leaves the waiter alone",
            config: base,
            steps: vec![(0, Acquire(1)), (1, Acquire(1)), (50, RefreshOk(1, "t1".into(), None))],
        },
        Script {
            name: "login-supersedes-refresh",
            about: "a login during a refresh resumes the waiters at once; the superseded attempt's answer is ignored",
            config: base,
            steps: vec![
                (0, Acquire(1)),
                (10, SetToken("t-login".into(), None)),
                (50, RefreshOk(1, "t-refresh".into(), None)),
                (60, Acquire(2)),
            ],
        },
        Script {
            name: "refresh-ahead-gives-up-quietly",
            about: "a refresh ahead of expiry that runs out of attempts fails nobody: requests keep the usable token, the first after the cool-down starts a new background round; once the token is past its safety margin a request waits for a round, is failed with it when it gives up, and the next fails fast until the cool-down ends",
            config: |c| {
                base(c);
                c.max_refresh_attempts = 1;
                c.cooldown = Duration::from_secs(1);
            },
            steps: vec![
                (0, SetToken("t1".into(), Some(100_000))),
                (75_000, Acquire(1)),
                (75_050, RefreshTransient(1)),
                (75_100, Acquire(2)),
                (76_100, Acquire(3)),
                (76_150, RefreshTransient(2)),
                (95_000, Acquire(4)),
                (95_050, RefreshTransient(3)),
                (95_100, Acquire(5)),
            ],
        },
        Script {
            name: "safety-margin",
            about: "a token counts as expired safety_margin before its stated expiry: from then on requests wait for a refresh; a token with less life than the margin counts as expired on arrival",
            config: |c| {
                base(c);
                c.expiry_skew = Duration::ZERO;
                c.safety_margin = Duration::from_secs(2);
            },
            steps: vec![
                (0, SetToken("t1".into(), Some(10_000))),
                (7_999, Acquire(1)),
                (8_000, Acquire(2)),
                (8_050, RefreshOk(1, "t-short".into(), Some(9_000))),
                (8_150, Timeout),
                (8_200, RefreshOk(2, "t2".into(), Some(20_000))),
            ],
        },
        Script {
            name: "abandon-then-next-attempt",
            about: "a call unanswered by refresh_abandon_after is given up for good (AbandonRefresh: the driver drops it) and the queued next attempt starts in the same step; the dropped call's answer is ignored",
            config: |c| {
                base(c);
                c.refresh_timeout = Duration::from_secs(1);
                c.refresh_abandon_after = Duration::from_secs(3);
            },
            steps: vec![
                (0, Acquire(1)),
                (1_000, Timeout),
                (1_200, Timeout),
                (3_000, Timeout),
                (3_050, RefreshOk(1, "t-dropped".into(), None)),
                (3_100, RefreshOk(2, "t1".into(), None)),
            ],
        },
    ]
}

fn int(n: u64) -> Value {
    json!({ "#bigint": n.to_string() })
}

fn variant(tag: &str, value: Value) -> Value {
    json!({ "tag": tag, "value": value })
}

fn unit() -> Value {
    json!({ "#tup": [] })
}

fn option(v: Option<u64>) -> Value {
    match v {
        Some(n) => variant("Some", int(n)),
        None => variant("None", unit()),
    }
}

fn error_kind(e: &Error<String>) -> Value {
    let tag = match e {
        Error::RefreshUnavailable(RefreshFailure::Refresher(_)) => "RefreshUnavailable.Refresher",
        Error::RefreshUnavailable(RefreshFailure::TimedOut) => "RefreshUnavailable.TimedOut",
        Error::RefreshUnavailable(RefreshFailure::ExpiredOnArrival) => {
            "RefreshUnavailable.ExpiredOnArrival"
        }
        Error::LoginRequired(_) => "LoginRequired",
        Error::Overloaded => "Overloaded",
        Error::AuthRejected { sends } => {
            return variant("AuthRejected", json!({ "sends": int(u64::from(*sends)) }))
        }
        Error::DuplicateRequest => "DuplicateRequest",
        Error::UnknownGeneration => "UnknownGeneration",
        _ => "Other",
    };
    variant(tag, unit())
}

fn lease_fields(l: &Lease<String>) -> Value {
    json!({
        "token": l.token(),
        "generation": int(l.generation().0),
        "send": int(u64::from(l.send())),
    })
}

fn config_record(c: &Config) -> Value {
    let ms = |d: Duration| int(d.as_millis() as u64);
    json!({
        "max_waiters": int(c.max_waiters as u64),
        "max_auth_retries": int(u64::from(c.max_auth_retries)),
        "max_refresh_attempts": int(u64::from(c.max_refresh_attempts)),
        "refresh_timeout_ms": ms(c.refresh_timeout),
        "refresh_abandon_after_ms": ms(c.refresh_abandon_after),
        "backoff_initial_ms": ms(c.backoff_initial),
        "backoff_max_ms": ms(c.backoff_max),
        "cooldown_ms": ms(c.cooldown),
        "expiry_skew_ms": ms(c.expiry_skew),
        "skew_jitter_ms": ms(c.skew_jitter),
        "safety_margin_ms": ms(c.safety_margin),
        "seed": int(c.seed),
    })
}

/// Runs one input against `core`; returns the input and the answer as ITF
/// values. `leases` holds the lease each request was last given.
fn apply(
    core: &mut VCore,
    leases: &mut std::collections::BTreeMap<u64, Lease<String>>,
    now: u64,
    input: &In,
) -> Result<(Value, Value), String> {
    let t = Timestamp::from_nanos(now);
    let fresh = |token: &str, exp: Option<u64>| {
        let f = Fresh::new(token.to_string());
        match exp {
            Some(ms) => f.expiring_at(Timestamp::from_millis(ms)),
            None => f,
        }
    };
    let next_answer = |leases: &mut std::collections::BTreeMap<u64, Lease<String>>,
                       id: u64,
                       n: Next<String, String>| match n {
        Next::Send(l) => {
            let v = variant("Send", lease_fields(&l));
            leases.insert(id, l);
            v
        }
        Next::Wait => variant("Wait", unit()),
        Next::Fail(e) => variant("Fail", json!({ "error": error_kind(&e) })),
    };
    Ok(match input {
        In::Acquire(id) => {
            let n = core.handle_acquire(t, RequestId(*id));
            (
                variant("Acquire", json!({ "id": int(*id) })),
                next_answer(leases, *id, n),
            )
        }
        In::Reject(id) => {
            let lease = leases
                .remove(id)
                .ok_or_else(|| format!("request {id} holds no lease to reject"))?;
            let mut fields = lease_fields(&lease);
            fields["id"] = int(*id);
            let n = core.handle_rejection(t, RequestId(*id), &lease);
            (variant("Reject", fields), next_answer(leases, *id, n))
        }
        In::Cancel(id) => {
            let was = core.handle_cancel(t, RequestId(*id));
            (
                variant("Cancel", json!({ "id": int(*id) })),
                variant("Cancelled", json!({ "was_waiting": was })),
            )
        }
        In::RefreshOk(a, token, exp) => {
            core.handle_refreshed(t, RefreshId(*a), Ok(fresh(token, *exp)));
            let result = variant(
                "Ok",
                json!({ "token": token, "expires_at": option(exp.map(|ms| ms * MS)) }),
            );
            (
                variant("Refreshed", json!({ "attempt": int(*a), "result": result })),
                variant("None", unit()),
            )
        }
        In::RefreshTransient(a) => {
            core.handle_refreshed(
                t,
                RefreshId(*a),
                Err(RefreshError::Transient("unavailable".into())),
            );
            let result = variant("Transient", json!({ "error": "unavailable" }));
            (
                variant("Refreshed", json!({ "attempt": int(*a), "result": result })),
                variant("None", unit()),
            )
        }
        In::RefreshPermanent(a) => {
            core.handle_refreshed(
                t,
                RefreshId(*a),
                Err(RefreshError::Permanent("invalid_grant".into())),
            );
            let result = variant("Permanent", json!({ "error": "invalid_grant" }));
            (
                variant("Refreshed", json!({ "attempt": int(*a), "result": result })),
                variant("None", unit()),
            )
        }
        In::Timeout => {
            core.handle_timeout(t);
            (variant("Timeout", unit()), variant("None", unit()))
        }
        In::SetToken(token, exp) => {
            core.handle_set_token(t, fresh(token, *exp));
            (
                variant(
                    "SetToken",
                    json!({ "token": token, "expires_at": option(exp.map(|ms| ms * MS)) }),
                ),
                variant("None", unit()),
            )
        }
        In::Invalidate(g) => {
            core.handle_invalidate(t, tokenflight::Generation(*g));
            (
                variant("Invalidate", json!({ "generation": int(*g) })),
                variant("None", unit()),
            )
        }
    })
}

/// The state after an input: what came out, and what can be seen of the
/// core.
fn observe(
    core: &mut VCore,
    leases: &mut std::collections::BTreeMap<u64, Lease<String>>,
    now: u64,
    input: Value,
    answer: Value,
) -> Value {
    let mut actions = Vec::new();
    while let Some(a) = core.poll_action() {
        actions.push(match a {
            Action::StartRefresh { attempt } => {
                variant("StartRefresh", json!({ "attempt": int(attempt.0) }))
            }
            Action::AbandonRefresh { attempt } => {
                variant("AbandonRefresh", json!({ "attempt": int(attempt.0) }))
            }
            Action::Resume { id, lease } => {
                let mut fields = lease_fields(&lease);
                fields["id"] = int(id.0);
                leases.insert(id.0, lease);
                variant("Resume", fields)
            }
            Action::Fail { id, error } => variant(
                "Fail",
                json!({ "id": int(id.0), "error": error_kind(&error) }),
            ),
        });
    }
    let phase = match core.phase() {
        Phase::Idle => "Idle",
        Phase::Refreshing => "Refreshing",
        Phase::Failed => "Failed",
    };
    json!({
        "now": int(now),
        "input": input,
        "answer": answer,
        "actions": actions,
        "timeout": option(core.poll_timeout().map(Timestamp::as_nanos)),
        "phase": phase,
        "generation": int(core.generation().0),
        "waiters": int(core.waiters() as u64),
    })
}

const VARS: [&str; 8] = [
    "now",
    "input",
    "answer",
    "actions",
    "timeout",
    "phase",
    "generation",
    "waiters",
];

fn run_script(s: &Script) -> Result<Value, String> {
    let mut config = Config::default();
    (s.config)(&mut config);
    let mut core: VCore = Core::new(config.clone()).map_err(|e| e.to_string())?;
    let mut leases = std::collections::BTreeMap::new();
    let mut states = vec![];
    let init = variant("Init", json!({ "config": config_record(&config) }));
    let mut first = observe(&mut core, &mut leases, 0, init, variant("None", unit()));
    first["#meta"] = json!({ "index": 0 });
    states.push(first);
    for (i, (ms, input)) in s.steps.iter().enumerate() {
        let now = ms * MS;
        let (input, answer) = apply(&mut core, &mut leases, now, input)?;
        let mut state = observe(&mut core, &mut leases, now, input, answer);
        state["#meta"] = json!({ "index": i + 1 });
        states.push(state);
    }
    Ok(json!({
        "#meta": {
            "format": "ITF",
            "format-description": "https://apalache-mc.org/docs/adr/015adr-trace.html",
            "source": "tokenflight-sim vectors",
            "description": format!("{}: {}", s.name, s.about),
        },
        "vars": VARS,
        "states": states,
    }))
}

/// Every vector, as (file name, pretty JSON text).
///
/// # Errors
///
/// A script that does not fit the core (a bug in the script).
pub fn generate() -> Result<Vec<(String, String)>, String> {
    scripts()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let v = run_script(s)?;
            let text = serde_json::to_string_pretty(&v).map_err(|e| e.to_string())? + "\n";
            Ok((format!("{:02}-{}.itf.json", i + 1, s.name), text))
        })
        .collect()
}

/// Writes every vector into `dir`; returns how many.
///
/// # Errors
///
/// I/O, or a script that does not fit the core.
pub fn write_all(dir: &Path) -> Result<usize, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let all = generate()?;
    // Vectors of scripts that no longer exist (or were renumbered) go.
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(".itf.json") {
            std::fs::remove_file(path)?;
        }
    }
    for (name, text) in &all {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(all.len())
}

fn get_int(v: &Value) -> Result<u64, String> {
    v.get("#bigint")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an ITF integer: {v}"))
}

fn get_opt(v: &Value) -> Result<Option<u64>, String> {
    match v["tag"].as_str() {
        Some("Some") => Ok(Some(get_int(&v["value"])?)),
        Some("None") => Ok(None),
        _ => Err(format!("not an option: {v}")),
    }
}

/// Reads one vector and replays it against a fresh core: every state the
/// core reaches must equal the recorded one exactly.
///
/// # Errors
///
/// The first difference, with the state's index.
pub fn replay(text: &str) -> Result<usize, String> {
    let trace: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let states = trace["states"].as_array().ok_or("no states")?;
    let init = &states.first().ok_or("empty trace")?["input"];
    if init["tag"] != "Init" {
        return Err("state 0 is not Init".into());
    }
    let c = &init["value"]["config"];
    let mut config = Config::default();
    let ms = |k: &str| get_int(&c[k]).map(Duration::from_millis);
    config.max_waiters = get_int(&c["max_waiters"])? as usize;
    config.max_auth_retries = get_int(&c["max_auth_retries"])? as u32;
    config.max_refresh_attempts = get_int(&c["max_refresh_attempts"])? as u32;
    config.refresh_timeout = ms("refresh_timeout_ms")?;
    config.refresh_abandon_after = ms("refresh_abandon_after_ms")?;
    config.backoff_initial = ms("backoff_initial_ms")?;
    config.backoff_max = ms("backoff_max_ms")?;
    config.cooldown = ms("cooldown_ms")?;
    config.expiry_skew = ms("expiry_skew_ms")?;
    config.skew_jitter = ms("skew_jitter_ms")?;
    config.safety_margin = ms("safety_margin_ms")?;
    config.seed = get_int(&c["seed"])?;
    let mut core: VCore = Core::new(config).map_err(|e| e.to_string())?;
    let mut leases = std::collections::BTreeMap::new();
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("#meta");
        }
        v
    };
    let got = observe(
        &mut core,
        &mut leases,
        0,
        init.clone(),
        variant("None", unit()),
    );
    if got != strip(&states[0]) {
        return Err(format!(
            "state 0: expected {}, got {got}",
            strip(&states[0])
        ));
    }
    for (i, want) in states.iter().enumerate().skip(1) {
        let now = get_int(&want["now"])?;
        let inp = &want["input"];
        let val = &inp["value"];
        let input = match inp["tag"].as_str().unwrap_or("") {
            "Acquire" => In::Acquire(get_int(&val["id"])?),
            "Reject" => In::Reject(get_int(&val["id"])?),
            "Cancel" => In::Cancel(get_int(&val["id"])?),
            "Timeout" => In::Timeout,
            "Invalidate" => In::Invalidate(get_int(&val["generation"])?),
            "SetToken" => In::SetToken(
                val["token"].as_str().ok_or("token")?.to_string(),
                get_opt(&val["expires_at"])?.map(|ns| ns / MS),
            ),
            "Refreshed" => {
                let a = get_int(&val["attempt"])?;
                let r = &val["result"];
                match r["tag"].as_str().unwrap_or("") {
                    "Ok" => In::RefreshOk(
                        a,
                        r["value"]["token"].as_str().ok_or("token")?.to_string(),
                        get_opt(&r["value"]["expires_at"])?.map(|ns| ns / MS),
                    ),
                    "Transient" => In::RefreshTransient(a),
                    "Permanent" => In::RefreshPermanent(a),
                    other => return Err(format!("state {i}: unknown result {other}")),
                }
            }
            other => return Err(format!("state {i}: unknown input {other}")),
        };
        let (input, answer) =
            apply(&mut core, &mut leases, now, &input).map_err(|e| format!("state {i}: {e}"))?;
        let got = observe(&mut core, &mut leases, now, input, answer);
        if got != strip(want) {
            return Err(format!("state {i}: expected {}, got {got}", strip(want)));
        }
    }
    Ok(states.len())
}
