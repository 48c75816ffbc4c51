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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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
    /// A rejection with a lease of this generation and send count, whatever
    /// request `id` was given (a forged or replayed lease).
    RejectWith(u64, u64, u32),
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
            about: "a request that finds the token rejected while a refresh runs waits instead of going out with the known-bad token",
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
            about: "an attempt that misses its soft timeout counts as failed and backs off, but its call stays outstanding; its late success is still adopted (it was asked for the current generation, and with rotating refresh tokens it carries the only valid refresh token)",
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
            name: "backoff-ends-behind-outstanding-call",
            about: "a round whose back-off ends while the timed-out call is still outstanding queues its next attempt (no second call, S1; the timer is the call's hard limit); an answer of an unknown attempt is ignored; the late error of the call ends it and the next attempt starts at once; a repeated answer is ignored",
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
            name: "proactive-refresh",
            about: "a token with a known expiry is refreshed ahead of it in the background: no timer in Idle starts it; the first request at or after refresh_at is sent and starts the round; requests during it are sent with the usable token (S5b); nobody waits, nobody is resumed",
            config: base,
            steps: vec![
                (0, SetToken("t1".into(), Some(100_000))),
                (10_000, Acquire(1)),
                (70_000, Timeout),
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
            about: "calls that never answer: with refresh_abandon_after equal to refresh_timeout each is abandoned at its soft timeout (AbandonRefresh, then the attempt counts as failed); after the last one every waiter fails with a timeout error; an abandoned call's answer is ignored",
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
            name: "time-goes-backwards-expiry",
            about: "an answer given an earlier time than one already seen is judged at the latest time seen: a token that expired by then is expired on arrival",
            config: |c| {
                base(c);
                c.safety_margin = Duration::ZERO;
            },
            steps: vec![
                (0, SetToken("t1".into(), Some(1_000))),
                (2_000, Acquire(1)),
                (500, RefreshOk(1, "t2".into(), Some(1_500))),
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
            about: "an id that is already waiting fails the newcomer and leaves the waiter alone; a rejection naming a waiting id is judged as a rejection first (an unknown generation, then the retry budget) and only then as a duplicate",
            config: base,
            steps: vec![
                (0, Acquire(1)),
                (1, Acquire(1)),
                (2, RejectWith(1, 5, 1)),
                (3, RejectWith(1, 0, 3)),
                (4, RejectWith(1, 0, 1)),
                (50, RefreshOk(1, "t1".into(), None)),
            ],
        },
        Script {
            name: "login-supersedes-refresh",
            about: "a login during a refresh resumes the waiters at once and ends the round; the call stays outstanding (its hard limit is the timer) until its answer, asked for an older generation, is ignored and ends it",
            config: base,
            steps: vec![
                (0, Acquire(1)),
                (10, SetToken("t-login".into(), None)),
                (50, RefreshOk(1, "t-refresh".into(), None)),
                (60, Acquire(2)),
            ],
        },
        Script {
            name: "unknown-generation",
            about: "a lease of a generation the core never issued fails that request with unknown-generation and changes nothing; a forged send count past the budget fails with auth-rejected",
            config: |c| {
                base(c);
                c.seed = 7;
            },
            steps: vec![
                (0, SetToken("t1".into(), None)),
                (1, Acquire(1)),
                (2, RejectWith(1, 2, 1)),
                (3, RejectWith(1, u64::MAX, 1)),
                (4, Acquire(2)),
                (5, RejectWith(2, 1, u32::MAX)),
                (6, Acquire(3)),
            ],
        },
        Script {
            name: "invalidate-before-any-token",
            about: "invalidating generation 0 before any token does nothing: no refresh starts until a request needs one",
            config: base,
            steps: vec![(0, Invalidate(0)), (5, Invalidate(1)), (10, Acquire(1)), (20, RefreshOk(1, "t1".into(), None))],
        },
        Script {
            name: "joins-resume-by-id",
            about: "waiters are resumed, and failed, in ascending request-id order, not in the order they joined",
            config: |c| {
                base(c);
                c.seed = 11;
                c.max_refresh_attempts = 1;
            },
            steps: vec![
                (0, Acquire(30)),
                (1, Acquire(10)),
                (2, Acquire(20)),
                (10, RefreshOk(1, "t1".into(), None)),
                (11, Reject(20)),
                (12, Reject(30)),
                (13, Reject(10)),
                (20, RefreshTransient(2)),
            ],
        },
        Script {
            name: "repeated-backoff-with-jitter",
            about: "four failed attempts: the back-off doubles from backoff_initial (initial * 2^(failures-1)), capped at backoff_max, each with equal jitter half + up_to(d - half) from the seeded stream; the last attempt's soft timeout gives up; the cool-down is jittered the same way, and the round after it queues behind the call still outstanding",
            config: |c| {
                base(c);
                c.seed = 42;
                c.max_refresh_attempts = 5;
                c.backoff_initial = Duration::from_nanos(100_000_001);
                c.backoff_max = Duration::from_nanos(350_000_003);
                c.cooldown = Duration::from_nanos(1_000_000_007);
                c.refresh_timeout = Duration::from_secs(1);
            },
            steps: vec![
                (0, Acquire(1)),
                (10, RefreshTransient(1)),
                (300, Timeout),
                (310, RefreshTransient(2)),
                (700, Timeout),
                (710, RefreshTransient(3)),
                (1_200, Timeout),
                (1_210, RefreshTransient(4)),
                (1_600, Timeout),
                (2_600, Timeout),
                (3_100, Acquire(2)),
                (3_599, Acquire(3)),
            ],
        },
        Script {
            name: "backoff-saturates",
            about: "a back-off that would overflow 64-bit nanoseconds saturates (and is capped), and a deadline past the end of the clock saturates at 2^64-1",
            config: |c| {
                base(c);
                c.seed = 3;
                c.max_refresh_attempts = 4;
                c.backoff_initial = Duration::from_nanos(1 << 62);
                c.backoff_max = Duration::from_nanos(u64::MAX);
                c.refresh_timeout = Duration::from_nanos(u64::MAX);
                c.refresh_abandon_after = Duration::from_nanos(u64::MAX);
            },
            steps: vec![
                (0, Acquire(1)),
                (1, RefreshTransient(1)),
                // Past the first back-off (at most 2^62 ns).
                (4_611_686_018_429, Timeout),
                (4_611_686_018_429, RefreshTransient(2)),
                // Past the second (at most 2^63 ns more), near the end of the clock.
                (u64::MAX / MS - 1, Timeout),
                (u64::MAX / MS - 1, RefreshTransient(3)),
                (u64::MAX, Timeout),
            ],
        },
        Script {
            name: "skew-jitter-draws",
            about: "every installed token with an expiry draws skew jitter from the shared stream (an already expired login too); a refreshed token that arrives expired draws nothing; a span of zero draws nothing; the back-off draws that follow show where the stream stands",
            config: |c| {
                c.seed = 5;
                c.skew_jitter = Duration::from_nanos(7_777_777);
                c.max_refresh_attempts = 3;
                c.refresh_timeout = Duration::from_secs(1);
            },
            steps: vec![
                (0, SetToken("t-dead".into(), Some(0))),
                (1, Acquire(1)),
                (2, RefreshOk(1, "t-late".into(), Some(2))),
                (5, RefreshTransient(1)),
                (400, Timeout),
                (401, RefreshOk(2, "t2".into(), Some(100_000))),
                (402, Acquire(2)),
            ],
        },
        Script {
            name: "zero-spans-draw-nothing",
            about: "a span of zero draws nothing: a token with an expiry under skew_jitter zero and a cool-down of zero leave the stream where it was, so the back-offs are its first and second draws",
            config: |c| {
                c.seed = 9;
                c.skew_jitter = Duration::ZERO;
                c.cooldown = Duration::ZERO;
                c.max_refresh_attempts = 2;
            },
            steps: vec![
                (0, SetToken("t1".into(), Some(100_000))),
                (1, Acquire(1)),
                (2, Reject(1)),
                (3, RefreshTransient(1)),
                (200, Timeout),
                (201, RefreshTransient(2)),
                (202, Acquire(2)),
                (203, RefreshTransient(3)),
            ],
        },
        Script {
            name: "half-life-floor",
            about: "a token is never refreshed ahead in the first half of its life: expiry 40 s, skew 30 s, so the refresh is due at 20 s, not 10 s",
            config: base,
            steps: vec![
                (0, SetToken("t1".into(), Some(40_000))),
                (15_000, Acquire(1)),
                (19_999, Acquire(2)),
                (20_000, Acquire(3)),
            ],
        },
        Script {
            name: "expiry-is-exclusive",
            about: "usable means strictly before expiry minus the safety margin (5 s): a refreshed token whose expiry minus the margin equals the time of its answer is expired on arrival, and a timer fires at its exact deadline",
            config: |c| {
                base(c);
                c.max_refresh_attempts = 2;
            },
            steps: vec![
                (0, Acquire(1)),
                (50, RefreshOk(1, "t-now".into(), Some(5_050))),
                (150, Timeout),
                (160, RefreshOk(2, "t1".into(), Some(160_000))),
            ],
        },
        Script {
            name: "safety-margin",
            about: "a token counts as expired safety_margin before its stated expiry: with a margin (15 s) above the skew (10 s) refresh_at is capped at the end of the usable time, so a request then waits; a refreshed token with less life than the margin is expired on arrival",
            config: |c| {
                base(c);
                c.expiry_skew = Duration::from_secs(10);
                c.safety_margin = Duration::from_secs(15);
            },
            steps: vec![
                (0, SetToken("t1".into(), Some(60_000))),
                (44_999, Acquire(1)),
                (45_000, Acquire(2)),
                (45_010, RefreshOk(1, "t-short".into(), Some(60_010))),
                (45_500, Timeout),
                (45_600, RefreshOk(2, "t2".into(), Some(120_000))),
            ],
        },
        Script {
            name: "permanent-failure-ahead-keeps-token",
            about: "a permanent failure of a refresh ahead of expiry fails nobody and goes Failed without a retry time: requests keep the usable token until it stops being usable, then fail with login-required; a login ends it",
            config: base,
            steps: vec![
                (0, SetToken("t1".into(), Some(100_000))),
                (75_000, Acquire(1)),
                (75_100, RefreshPermanent(1)),
                (80_000, Acquire(2)),
                (95_000, Acquire(3)),
                (96_000, SetToken("t2".into(), None)),
                (96_001, Acquire(4)),
            ],
        },
        Script {
            name: "abandon-after-hard-limit",
            about: "a call that never answers is given up for good at refresh_abandon_after (AbandonRefresh), and the round queued behind it starts its next attempt in the same step; the abandoned call's answer is ignored",
            config: |c| {
                base(c);
                c.refresh_timeout = Duration::from_secs(1);
                c.refresh_abandon_after = Duration::from_secs(3);
            },
            steps: vec![
                (0, Acquire(1)),
                (1_000, Timeout),
                (1_200, Timeout),
                (2_999, Timeout),
                (3_000, Timeout),
                (3_001, RefreshOk(1, "t-dropped".into(), None)),
                (3_002, RefreshOk(2, "t1".into(), None)),
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
            name: "refresh-ahead-gives-up-keeps-token",
            about: "a refresh ahead of expiry that gives up while the token is usable fails no one: Failed with a jittered retry time, requests keep the token; the first request after the retry time is sent and starts a new background round",
            config: |c| {
                base(c);
                c.max_refresh_attempts = 1;
                c.seed = 13;
            },
            steps: vec![
                (0, SetToken("t1".into(), Some(100_000))),
                (75_000, Acquire(1)),
                (75_100, RefreshTransient(1)),
                (75_200, Acquire(2)),
                (90_000, Acquire(3)),
                (90_100, RefreshOk(2, "t2".into(), Some(200_000))),
                (90_200, Acquire(4)),
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
        let now = ms.saturating_mul(MS);
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
            In::RejectWith(id, generation, send) => {
                let lease = Lease::from_parts(
                    Arc::new("forged".to_string()),
                    Generation(*generation),
                    *send,
                );
                answer = Some((*id, core.handle_rejection(t, RequestId(*id), &lease)));
                Input::Reject {
                    id: *id,
                    token: "forged".into(),
                    generation: *generation,
                    send: *send,
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
    let pretty = |v: &Value| serde_json::to_string_pretty(v).map(|t| t + "\n");
    let mut out = Vec::new();
    for (i, s) in scripts().iter().enumerate() {
        let script = resolve(s)?;
        let v = oracle::trace(&script, &format!("{}: {}", s.name, s.about))
            .map_err(|e| format!("{}: {e}", s.name))?;
        let text = pretty(&v).map_err(|e| e.to_string())?;
        out.push((format!("{:02}-{}.itf.json", i + 1, s.name), text));
    }
    for (seed, script) in picked() {
        let about = format!(
            "random script {seed} (`tokenflight-sim scripts --seed {seed} --count 1`), picked for what the random vectors before it do not show"
        );
        let v = oracle::trace(&script, &about).map_err(|e| e.to_string())?;
        let text = pretty(&v).map_err(|e| e.to_string())?;
        out.push((format!("r{seed:04}.itf.json"), text));
    }
    let text = pretty(&config_vector()).map_err(|e| e.to_string())?;
    out.push((CONFIG_VECTOR.to_string(), text));
    Ok(out)
}

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
fn config_vector() -> Value {
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

/// The name of the configuration vector.
pub const CONFIG_VECTOR: &str = "config-errors.json";

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
        if path.to_string_lossy().ends_with(".json") {
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

/// What a trace shows, as named facts: every input, answer, action, phase
/// and error kind, each input in each phase it came in, and the situations
/// that a port most often gets wrong (time going backwards, a timer at its
/// exact deadline, resumes in an order other than the joins', a third
/// attempt in one round, late answers adopted or ignored, forged leases,
/// saturated times, skew jitter on an expiring token).
pub fn features(trace: &Value) -> BTreeSet<String> {
    let mut f = BTreeSet::new();
    let Some(states) = trace["states"].as_array() else {
        return f;
    };
    let config = &states[0]["input"]["value"]["config"];
    let jitter = get_int(&config["skew_jitter_ns"]).unwrap_or(0) > 0;
    let mut latest = 0;
    let mut joined: Vec<u64> = Vec::new();
    let mut leases: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut last_attempt = 0;
    // Calls that outlived their attempt (a soft timeout, a login) and
    // calls given up for good.
    let mut late: BTreeSet<u64> = BTreeSet::new();
    let mut dropped: BTreeSet<u64> = BTreeSet::new();
    let mut round_attempts = 0;
    let tag = |v: &Value| v["tag"].as_str().unwrap_or("?").to_string();
    let error = |f: &mut BTreeSet<String>, v: &Value| {
        if let Some(e) = v["error"]["tag"].as_str() {
            f.insert(format!("error:{e}"));
        }
    };
    for (i, s) in states.iter().enumerate() {
        let (input, answer) = (&s["input"], &s["answer"]);
        let now = get_int(&s["now"]).unwrap_or(0);
        let phase = s["phase"].as_str().unwrap_or("?");
        f.insert(format!("input:{}", tag(input)));
        f.insert(format!("answer:{}", tag(answer)));
        f.insert(format!("phase:{phase}"));
        error(&mut f, &answer["value"]);
        if i == 0 {
            continue;
        }
        let before = &states[i - 1];
        let v = &input["value"];
        let was = before["phase"].as_str().unwrap_or("?");
        f.insert(format!("input:{}@{was}", tag(input)));
        f.insert(format!("{}->{}@{was}->{phase}", tag(input), tag(answer)));
        if now < latest {
            f.insert("time-backwards".into());
        }
        latest = latest.max(now);
        if now >= u64::MAX - 1_000 * MS || s["timeout"]["value"] == crate::itf::int(u64::MAX) {
            f.insert("time-saturated".into());
        }
        let id = get_int(&v["id"]).ok();
        match tag(input).as_str() {
            "Timeout" => {
                if before["timeout"]["value"] == s["now"] {
                    f.insert("timer-at-deadline".into());
                }
                let due = get_int(&before["timeout"]["value"]).is_ok_and(|t| now >= t);
                if let (true, Ok(a)) = (due, get_int(&s["outstanding"]["value"])) {
                    late.insert(a);
                }
            }
            "Reject" => {
                let lease = (
                    get_int(&v["generation"]).unwrap_or(0),
                    get_int(&v["send"]).unwrap_or(0),
                );
                if id.and_then(|id| leases.get(&id)) != Some(&lease) {
                    f.insert("forged-lease".into());
                }
            }
            "Refreshed" => {
                let a = get_int(&v["attempt"]).unwrap_or(0);
                let made = s["generation"] != before["generation"];
                let outstanding = get_int(&before["outstanding"]["value"]).ok();
                if late.contains(&a) && outstanding == Some(a) {
                    f.insert(format!(
                        "late-answer-{}",
                        if made { "adopted" } else { "ignored" }
                    ));
                    if !s["actions"].as_array().is_none_or(Vec::is_empty)
                        && before["phase"] == "Refreshing"
                        && !made
                    {
                        f.insert("late-answer-starts-queued-attempt".into());
                    }
                }
                if dropped.contains(&a) {
                    f.insert("answer-of-abandoned-call".into());
                }
                if a > last_attempt || a == 0 {
                    f.insert("answer-of-unknown-attempt".into());
                }
            }
            "SetToken" => {
                if before["phase"] == "Refreshing" {
                    f.insert("login-during-refresh".into());
                }
                if let Ok(a) = get_int(&s["outstanding"]["value"]) {
                    late.insert(a);
                }
            }
            "Cancel" if answer["value"]["was_waiting"] == false => {
                f.insert("cancel-not-waiting".into());
            }
            _ => {}
        }
        if matches!(tag(input).as_str(), "SetToken" | "Refreshed")
            && jitter
            && !v["expires_at"].is_null()
            && (v["expires_at"]["tag"] == "Some"
                || v["result"]["value"]["expires_at"]["tag"] == "Some")
        {
            f.insert("skew-jitter-on-expiring-token".into());
        }
        if let (Some(id), "Send") = (id, tag(answer).as_str()) {
            let g = get_int(&answer["value"]["generation"]).unwrap_or(0);
            let send = get_int(&answer["value"]["send"]).unwrap_or(0);
            leases.insert(id, (g, send));
        }
        if let (Some(id), "Wait") = (id, tag(answer).as_str()) {
            joined.push(id);
        }
        let mut delivered = Vec::new();
        for a in s["actions"].as_array().into_iter().flatten() {
            f.insert(format!("action:{}", tag(a)));
            f.insert(format!("action:{}@{phase}", tag(a)));
            error(&mut f, &a["value"]);
            let av = &a["value"];
            match tag(a).as_str() {
                "StartRefresh" => {
                    last_attempt = get_int(&av["attempt"]).unwrap_or(0);
                    round_attempts += 1;
                    if round_attempts >= 3 {
                        f.insert("third-attempt-in-a-round".into());
                    }
                }
                "AbandonRefresh" => {
                    dropped.insert(get_int(&av["attempt"]).unwrap_or(0));
                }
                "Resume" | "Fail" => {
                    let id = get_int(&av["id"]).unwrap_or(0);
                    delivered.push(id);
                    if tag(a) == "Resume" {
                        let g = get_int(&av["generation"]).unwrap_or(0);
                        let send = get_int(&av["send"]).unwrap_or(0);
                        leases.insert(id, (g, send));
                    }
                }
                _ => {}
            }
        }
        if delivered.len() >= 2 {
            let in_join: Vec<u64> = joined
                .iter()
                .copied()
                .filter(|j| delivered.contains(j))
                .collect();
            if in_join != delivered {
                f.insert("delivered-out-of-join-order".into());
            }
        }
        joined.retain(|j| !delivered.contains(j));
        if phase != "Refreshing" {
            round_attempts = 0;
        }
    }
    f
}

/// How many random scripts the generator looks at, and at most how many it
/// keeps.
const CANDIDATES: u64 = 4_000;
const PICKED: usize = 16;

/// Random scripts picked for what they show: greedily, the one that adds
/// the most [`features`] not yet shown by the scripts already picked, until
/// none adds anything. They are a second set, independent of the
/// hand-written one: hostile inputs nobody thought to write down.
fn picked() -> Vec<(u64, script::Script)> {
    let mut shown = BTreeSet::new();
    let shown = &mut shown;
    let mut pool: Vec<(u64, script::Script, BTreeSet<String>)> = (0..CANDIDATES)
        .filter_map(|seed| {
            let s = crate::random_script::draw(seed);
            let t = oracle::trace(&s, "").ok()?;
            Some((seed, s, features(&t)))
        })
        .collect();
    let mut out = Vec::new();
    while out.len() < PICKED {
        let best = pool
            .iter()
            .enumerate()
            .map(|(i, (_, _, f))| (f.difference(shown).count(), std::cmp::Reverse(i)))
            .max();
        let Some((gain, std::cmp::Reverse(i))) = best else {
            break;
        };
        if gain == 0 {
            break;
        }
        let (seed, s, f) = pool.swap_remove(i);
        shown.extend(f);
        out.push((seed, s));
    }
    out
}
