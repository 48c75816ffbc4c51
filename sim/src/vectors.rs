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

use std::collections::BTreeMap;

use serde_json::Value;
use tokenflight::{
    Action, Config, Core, Fresh, Generation, Lease, Next, RefreshError, RefreshId, RequestId,
    Timestamp,
};

use crate::itf::get_int;
use crate::oracle;
use crate::script::{self, Input, RefreshResult};

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
            about: "a request started while refreshing waits instead of going out with the stale token",
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
            about: "an attempt that misses its deadline counts as failed; its late success is still adopted (it carries the only valid refresh token)",
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
            name: "late-result-after-new-generation",
            about: "once the next attempt has made a new token, the late success of the timed-out attempt is ignored: one new generation per expiry",
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
                (1_250, RefreshOk(2, "t2".into(), None)),
                (1_300, RefreshOk(1, "t-late".into(), None)),
                (1_301, RefreshOk(2, "t-repeat".into(), None)),
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
            name: "proactive-refresh",
            about: "a token with a known expiry is refreshed expiry_skew ahead of it; requests then wait for the new one",
            config: base,
            steps: vec![
                (0, SetToken("t1".into(), Some(100_000))),
                (10_000, Acquire(1)),
                (75_000, Acquire(2)),
                (75_100, RefreshOk(1, "t2".into(), Some(200_000))),
                (75_200, Acquire(3)),
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
            about: "attempts that never answer time out; after the last one every waiter fails with a timeout error",
            config: |c| {
                base(c);
                c.max_refresh_attempts = 2;
                c.refresh_timeout = Duration::from_secs(1);
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
    ]
}

/// The script with every `Reject(id)` resolved to the lease request `id`
/// was last given (by `Send` or `Resume`), found by running the core.
fn resolve(s: &Script) -> Result<script::Script, String> {
    let mut config = Config::default();
    (s.config)(&mut config);
    let mut core: Core<String, String> = Core::new(config.clone()).map_err(|e| e.to_string())?;
    let mut leases: BTreeMap<u64, Lease<String>> = BTreeMap::new();
    let mut inputs = Vec::new();
    for (ms, step) in &s.steps {
        let now = ms * MS;
        let t = Timestamp::from_nanos(now);
        let fresh = |token: &str, exp: Option<u64>| {
            let f = Fresh::new(token.to_string());
            match exp {
                Some(ms) => f.expiring_at(Timestamp::from_nanos(ms * MS)),
                None => f,
            }
        };
        let mut answer = None;
        let input = match step {
            In::Acquire(id) => {
                answer = Some((*id, core.handle_acquire(t, RequestId(*id))));
                Input::Acquire { id: *id }
            }
            In::Reject(id) => {
                let lease = leases
                    .remove(id)
                    .ok_or_else(|| format!("{}: request {id} holds no lease", s.name))?;
                answer = Some((*id, core.handle_rejection(t, RequestId(*id), &lease)));
                Input::Reject {
                    id: *id,
                    token: lease.token().clone(),
                    generation: lease.generation().0,
                    send: lease.send(),
                }
            }
            In::Cancel(id) => {
                let _ = core.handle_cancel(t, RequestId(*id));
                Input::Cancel { id: *id }
            }
            In::RefreshOk(a, token, exp) => {
                core.handle_refreshed(t, RefreshId(*a), Ok(fresh(token, *exp)));
                Input::Refreshed {
                    attempt: *a,
                    result: RefreshResult::Ok {
                        token: token.clone(),
                        expires_at: exp.map(|ms| ms * MS),
                    },
                }
            }
            In::RefreshTransient(a) => {
                let e = "unavailable".to_string();
                core.handle_refreshed(t, RefreshId(*a), Err(RefreshError::Transient(e.clone())));
                Input::Refreshed {
                    attempt: *a,
                    result: RefreshResult::Transient { error: e },
                }
            }
            In::RefreshPermanent(a) => {
                let e = "invalid_grant".to_string();
                core.handle_refreshed(t, RefreshId(*a), Err(RefreshError::Permanent(e.clone())));
                Input::Refreshed {
                    attempt: *a,
                    result: RefreshResult::Permanent { error: e },
                }
            }
            In::Timeout => {
                core.handle_timeout(t);
                Input::Timeout
            }
            In::SetToken(token, exp) => {
                core.handle_set_token(t, fresh(token, *exp));
                Input::SetToken {
                    token: token.clone(),
                    expires_at: exp.map(|ms| ms * MS),
                }
            }
            In::Invalidate(g) => {
                core.handle_invalidate(t, Generation(*g));
                Input::Invalidate { generation: *g }
            }
        };
        if let Some((id, Next::Send(lease))) = answer {
            leases.insert(id, lease);
        }
        while let Some(a) = core.poll_action() {
            if let Action::Resume { id, lease } = a {
                leases.insert(id.0, lease);
            }
        }
        inputs.push((now, input));
    }
    Ok(script::Script { config, inputs })
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
            let script = resolve(s)?;
            let v = oracle::trace(&script, &format!("{}: {}", s.name, s.about))
                .map_err(|e| format!("{}: {e}", s.name))?;
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

/// The script a trace was made from: the config of its `Init` state and
/// the inputs of the others, with their times.
///
/// # Errors
///
/// What is wrong with the trace, with the state's index.
pub fn script_of(trace: &Value) -> Result<script::Script, String> {
    let states = trace["states"].as_array().ok_or("no states")?;
    let init = &states.first().ok_or("empty trace")?["input"];
    if init["tag"] != "Init" {
        return Err("state 0 is not Init".into());
    }
    let config = script::config_from(&init["value"]["config"]).map_err(|e| e.to_string())?;
    let mut inputs = Vec::with_capacity(states.len());
    for (i, s) in states.iter().enumerate().skip(1) {
        let now = get_int(&s["now"]).map_err(|e| format!("state {i}: now: {e}"))?;
        let input = script::input_from(&s["input"]).map_err(|e| format!("state {i}: {e}"))?;
        inputs.push((now, input));
    }
    Ok(script::Script { config, inputs })
}

/// Reads one vector and replays it against a fresh core: every state the
/// core reaches must equal the recorded one exactly. Returns the number of
/// states.
///
/// # Errors
///
/// The first difference, with the state's index.
pub fn replay(text: &str) -> Result<usize, String> {
    let want: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let script = script_of(&want)?;
    let got = oracle::trace(&script, "").map_err(|e| e.to_string())?;
    let (want, got) = (
        want["states"].as_array().ok_or("no states")?,
        got["states"].as_array().ok_or("no states")?,
    );
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        if w != g {
            return Err(format!("state {i}: expected {w}, got {g}"));
        }
    }
    if want.len() != got.len() {
        return Err(format!("{} states, expected {}", got.len(), want.len()));
    }
    Ok(want.len())
}
