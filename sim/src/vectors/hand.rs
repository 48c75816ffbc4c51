//! The hand-written scripts, one rule each, in a small language of their
//! own: times in milliseconds, and `Reject(id)` for "the server rejected the
//! lease request `id` was last given", which [`resolve`] turns into the
//! explicit lease by running the core.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokenflight::core::{Action, Core, Lease, Next, RefreshId, RequestId};
use tokenflight::{Config, Fresh, Generation, RefreshError, Timestamp};

use crate::script::{self, Input, RefreshResult};

const MS: u64 = 1_000_000;

/// One input of a script.
#[derive(Debug, Clone)]
pub(super) enum In {
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
pub(super) struct Script {
    pub(super) name: &'static str,
    pub(super) about: &'static str,
    pub(super) config: fn(&mut Config),
    pub(super) steps: Vec<(u64, In)>,
}

fn base(c: &mut Config) {
    c.skew_jitter = Duration::ZERO;
}

pub(super) fn scripts() -> Vec<Script> {
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
            about: "every installed token with an expiry draws skew jitter from the shared stream (an already expired login too); a refreshed token that arrives expired draws nothing; the back-off that follows shows where the stream stands, and valid_until the skew drawn for the last token",
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
        Script {
            name: "quiet-give-up-cool-down-ends-at-usable-time",
            about: "the cool-down after a refresh ahead of expiry gave up ends no later than the token's usable time: the first request that finds the token past its safety margin waits for a new round instead of failing fast for a round nobody waited on",
            config: |c| {
                base(c);
                c.max_refresh_attempts = 1;
            },
            steps: vec![
                (0, SetToken("t1".into(), Some(100_000))),
                (92_000, Acquire(1)),
                (92_050, RefreshTransient(1)),
                (94_000, Acquire(2)),
                (95_000, Acquire(3)),
                (95_100, RefreshOk(2, "t2".into(), Some(200_000))),
                (95_200, Acquire(4)),
            ],
        },
    ]
}

/// The script with every `Reject(id)` resolved to the lease request `id`
/// was last given (by `Send` or `Resume`), found by running the core.
pub(super) fn resolve(s: &Script) -> Result<script::Script, String> {
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
