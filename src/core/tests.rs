//! One test per transition of the core. Each drives the core directly and
//! asserts on its answers and actions.

use super::*;

type TestCore = Core<&'static str, &'static str>;

fn ms(n: u64) -> Timestamp {
    Timestamp::from_millis(n)
}

fn config() -> Config {
    Config {
        max_waiters: 4,
        max_auth_retries: 2,
        max_refresh_attempts: 3,
        refresh_timeout: Duration::from_millis(1_000),
        refresh_abandon_after: Duration::from_millis(3_000),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        cooldown: Duration::from_millis(5_000),
        expiry_skew: Duration::from_millis(10_000),
        skew_jitter: Duration::ZERO,
        safety_margin: Duration::ZERO,
        seed: 0,
    }
}

fn core() -> TestCore {
    Core::new(config()).unwrap()
}

fn actions(core: &mut TestCore) -> Vec<Action<&'static str, &'static str>> {
    std::iter::from_fn(|| core.poll_action()).collect()
}

fn only(
    mut actions: Vec<Action<&'static str, &'static str>>,
) -> Action<&'static str, &'static str> {
    assert_eq!(actions.len(), 1, "expected one action, got {actions:?}");
    actions.remove(0)
}

fn started(core: &mut TestCore) -> RefreshId {
    match actions(core).as_slice() {
        [Action::StartRefresh { attempt }] => *attempt,
        other => panic!("expected one StartRefresh, got {other:?}"),
    }
}

fn lease_of(next: Next<&'static str, &'static str>) -> Lease<&'static str> {
    match next {
        Next::Send(lease) => lease,
        other => panic!("expected Send, got {other:?}"),
    }
}

fn error_of(next: Next<&'static str, &'static str>) -> Error<&'static str> {
    match next {
        Next::Fail(e) => e,
        other => panic!("expected Fail, got {other:?}"),
    }
}

/// A core with requests 1 and 2 waiting for the refresh they started.
fn two_waiters() -> TestCore {
    let mut c = core();
    for id in [1, 2] {
        assert_eq!(c.handle_acquire(ms(0), RequestId(id)), Next::Wait);
    }
    c
}

/// A core holding generation 1 ("t1"), idle, with no expiry.
fn with_token() -> TestCore {
    let mut c = core();
    c.handle_set_token(ms(0), Fresh::new("t1"));
    assert!(actions(&mut c).is_empty());
    c
}

/// Resumed ids, in order, each with the generation and send number.
fn resumed(actions: &[Action<&'static str, &'static str>]) -> Vec<(u64, u64, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Resume { id, lease } => Some((id.0, lease.generation().0, lease.send())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_core_is_idle_without_a_token() {
    let c = core();
    assert_eq!(c.phase(), Phase::Idle);
    assert_eq!(c.generation(), Generation::NONE);
    assert_eq!(c.snapshot(), None);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn bad_config_is_refused() {
    let mut bad = config();
    bad.max_waiters = 0;
    assert_eq!(TestCore::new(bad).unwrap_err(), ConfigError::NoWaiters);
}

#[test]
fn first_request_waits_and_starts_the_only_refresh() {
    let mut c = core();
    assert_eq!(c.handle_acquire(ms(0), RequestId(1)), Next::Wait);
    let attempt = started(&mut c);
    assert_eq!(c.phase(), Phase::Refreshing);
    assert_eq!(c.poll_timeout(), Some(ms(1_000)));
    assert_eq!(c.handle_acquire(ms(1), RequestId(2)), Next::Wait);
    assert!(actions(&mut c).is_empty(), "no second refresh");
    assert_eq!(c.in_flight(), Some(attempt));
    assert_eq!(c.waiters(), 2);
}

#[test]
fn success_resumes_every_waiter_with_the_new_generation() {
    let mut c = two_waiters();
    let attempt = started(&mut c);
    c.handle_refreshed(ms(5), attempt, Ok(Fresh::new("t1")));
    assert_eq!(resumed(&actions(&mut c)), [(1, 1, 1), (2, 1, 1)]);
    assert_eq!(c.phase(), Phase::Idle);
    assert_eq!(c.waiters(), 0);
    let snap = c.snapshot().unwrap();
    assert_eq!(
        (snap.lease.generation(), snap.valid_until),
        (Generation(1), Timestamp::MAX)
    );
}

#[test]
fn idle_with_a_good_token_sends_at_once() {
    let mut c = with_token();
    let lease = lease_of(c.handle_acquire(ms(1), RequestId(1)));
    assert_eq!(
        (*lease.token(), lease.generation(), lease.send()),
        ("t1", Generation(1), 1)
    );
    assert!(actions(&mut c).is_empty());
}

#[test]
fn rejection_of_the_current_token_refreshes_once_and_never_hands_it_out_again() {
    let mut c = with_token();
    let a = lease_of(c.handle_acquire(ms(1), RequestId(1)));
    let b = lease_of(c.handle_acquire(ms(1), RequestId(2)));
    assert_eq!(c.handle_rejection(ms(2), RequestId(1), &a), Next::Wait);
    let attempt = started(&mut c);
    assert_eq!(c.handle_rejection(ms(2), RequestId(2), &b), Next::Wait);
    assert_eq!(c.handle_acquire(ms(3), RequestId(3)), Next::Wait);
    assert!(actions(&mut c).is_empty(), "one refresh for one expiry");
    assert_eq!(c.snapshot(), None, "the rejected token is not published");
    c.handle_refreshed(ms(4), attempt, Ok(Fresh::new("t2")));
    assert_eq!(resumed(&actions(&mut c)), [(1, 2, 2), (2, 2, 2), (3, 2, 1)]);
}

#[test]
fn a_stale_rejection_resumes_with_the_current_token_and_never_refreshes() {
    let mut c = with_token();
    let old = lease_of(c.handle_acquire(ms(1), RequestId(1)));
    c.handle_set_token(ms(2), Fresh::new("t2"));
    let lease = lease_of(c.handle_rejection(ms(3), RequestId(1), &old));
    assert_eq!((lease.generation(), lease.send()), (Generation(2), 2));
    assert!(actions(&mut c).is_empty());
    assert_eq!(c.phase(), Phase::Idle);
}

#[test]
fn a_request_rejected_on_every_send_ends_with_auth_rejected() {
    let mut c = with_token();
    let mut lease = lease_of(c.handle_acquire(ms(0), RequestId(1)));
    for g in 2..=3 {
        assert_eq!(c.handle_rejection(ms(0), RequestId(1), &lease), Next::Wait);
        let attempt = started(&mut c);
        c.handle_refreshed(ms(0), attempt, Ok(Fresh::new("t")));
        let Action::Resume { lease: next, .. } = only(actions(&mut c)) else {
            panic!("expected a resume")
        };
        assert_eq!(next.generation(), Generation(g));
        lease = next;
    }
    let error = error_of(c.handle_rejection(ms(0), RequestId(1), &lease));
    assert_eq!(error, Error::AuthRejected { sends: 3 });
    assert!(
        actions(&mut c).is_empty(),
        "an exhausted request does not refresh itself"
    );
    // ...but what it learnt stands: the token it carried is never handed out again.
    assert_eq!(c.snapshot(), None);
    assert_eq!(c.handle_acquire(ms(1), RequestId(2)), Next::Wait);
    started(&mut c);
}

#[test]
fn a_transient_failure_backs_off_then_retries() {
    let mut c = core();
    let _ = c.handle_acquire(ms(0), RequestId(1));
    let first = started(&mut c);
    c.handle_refreshed(ms(10), first, Err(RefreshError::Transient("503")));
    assert!(actions(&mut c).is_empty());
    assert_eq!(c.phase(), Phase::Refreshing);
    assert_eq!(c.in_flight(), None);
    let retry_at = c.poll_timeout().unwrap();
    assert!(retry_at >= ms(60) && retry_at <= ms(110), "{retry_at}");
    c.handle_timeout(retry_at.saturating_sub(Duration::from_nanos(1)));
    assert!(actions(&mut c).is_empty(), "an early timeout does nothing");
    c.handle_timeout(retry_at);
    let second = started(&mut c);
    assert!(second > first);
    c.handle_refreshed(retry_at, second, Ok(Fresh::new("t1")));
    assert_eq!(resumed(&actions(&mut c)), [(1, 1, 1)]);
}

#[test]
fn backoff_doubles_and_is_capped() {
    let cfg = config();
    let steps: Vec<u64> = (1..=5)
        .map(|n| backoff(&cfg, n).as_millis() as u64)
        .collect();
    assert_eq!(steps, [100, 200, 400, 400, 400]);
    assert_eq!(backoff(&cfg, u32::MAX), cfg.backoff_max);
}

/// Runs a round in which every attempt fails transiently; returns when the
/// core gave up.
fn fail_round(
    c: &mut TestCore,
    mut now: Timestamp,
) -> (Timestamp, Vec<Action<&'static str, &'static str>>) {
    let mut attempt = started(c);
    loop {
        c.handle_refreshed(now, attempt, Err(RefreshError::Transient("503")));
        let out = actions(c);
        if c.phase() != Phase::Refreshing {
            return (now, out);
        }
        now = c.poll_timeout().unwrap();
        c.handle_timeout(now);
        attempt = started(c);
    }
}

#[test]
fn giving_up_fails_every_waiter_in_the_same_step_then_fails_fast_until_the_cool_down() {
    let mut c = two_waiters();
    let (now, out) = fail_round(&mut c, ms(0));
    let failed: Vec<u64> = out
        .iter()
        .map(|a| match a {
            Action::Fail {
                id,
                error: Error::RefreshUnavailable(RefreshFailure::Refresher(e)),
            } => {
                assert_eq!(**e, "503");
                id.0
            }
            other => panic!("expected only failures, got {other:?}"),
        })
        .collect();
    assert_eq!(failed, [1, 2]);
    assert_eq!(c.phase(), Phase::Failed);
    assert_eq!(c.waiters(), 0);
    assert!(matches!(
        error_of(c.handle_acquire(now, RequestId(3))),
        Error::RefreshUnavailable(_)
    ));
    assert!(
        actions(&mut c).is_empty(),
        "fail fast: no refresh during the cool-down"
    );
    // The cool-down is 5 s with equal jitter: over by 5 s after giving up.
    assert_eq!(
        c.handle_acquire(now + Duration::from_millis(5_000), RequestId(4)),
        Next::Wait
    );
    started(&mut c);
    assert_eq!(c.phase(), Phase::Refreshing);
}

#[test]
fn a_permanent_failure_stays_failed_until_a_new_login() {
    let mut c = core();
    let _ = c.handle_acquire(ms(0), RequestId(1));
    let attempt = started(&mut c);
    c.handle_refreshed(
        ms(1),
        attempt,
        Err(RefreshError::Permanent("invalid_grant")),
    );
    let Action::Fail { id, error } = only(actions(&mut c)) else {
        panic!("expected a failure")
    };
    assert_eq!(
        (id, error),
        (
            RequestId(1),
            Error::LoginRequired(Arc::new("invalid_grant"))
        )
    );
    let far = ms(10_000_000);
    assert!(matches!(
        error_of(c.handle_acquire(far, RequestId(2))),
        Error::LoginRequired(_)
    ));
    assert!(actions(&mut c).is_empty());
    c.handle_set_token(far, Fresh::new("t1"));
    assert_eq!(c.phase(), Phase::Idle);
    assert_eq!(
        lease_of(c.handle_acquire(far, RequestId(3))).generation(),
        Generation(1)
    );
}

#[test]
fn a_timed_out_attempt_counts_as_failed_and_its_late_success_is_adopted_once() {
    let mut c = core();
    let _ = c.handle_acquire(ms(0), RequestId(1));
    let first = started(&mut c);
    c.handle_timeout(ms(1_000));
    assert_eq!(c.in_flight(), None, "timed out");
    assert_eq!(c.outstanding_call(), Some(first), "still at the endpoint");
    assert_eq!(c.stats().attempts_timed_out, 1);
    // The back-off ends, but the next attempt waits behind the call (S1).
    let retry = c.poll_timeout().unwrap();
    assert!(retry < ms(3_000), "the back-off, before the hard limit");
    c.handle_timeout(retry);
    assert!(actions(&mut c).is_empty(), "queued, not started");
    assert_eq!(
        c.poll_timeout(),
        Some(ms(3_000)),
        "bounded by the hard limit"
    );
    // The first attempt answers late: no newer generation exists, so it is
    // adopted and the queued attempt never starts.
    c.handle_refreshed(retry, first, Ok(Fresh::new("late")));
    assert_eq!(resumed(&actions(&mut c)), [(1, 1, 1)]);
    assert_eq!((c.phase(), c.outstanding_call()), (Phase::Idle, None));
    assert_eq!(c.stats().late_results_adopted, 1);
    c.handle_refreshed(retry, first, Ok(Fresh::new("again")));
    assert!(actions(&mut c).is_empty());
    assert_eq!(
        c.generation(),
        Generation(1),
        "no second generation from one base"
    );
}

#[test]
fn a_late_error_ends_the_call_and_starts_the_queued_attempt_at_once() {
    let mut c = core();
    let _ = c.handle_acquire(ms(0), RequestId(1));
    let first = started(&mut c);
    c.handle_timeout(ms(1_000));
    let retry = c.poll_timeout().unwrap();
    c.handle_timeout(retry);
    assert!(actions(&mut c).is_empty(), "queued");
    c.handle_refreshed(ms(2_000), first, Err(RefreshError::Transient("503")));
    let second = started(&mut c);
    assert_eq!(c.outstanding_call(), Some(second));
    assert_eq!(c.poll_timeout(), Some(ms(3_000)), "its own soft timeout");
    c.handle_refreshed(ms(2_100), second, Ok(Fresh::new("t1")));
    assert_eq!(resumed(&actions(&mut c)), [(1, 1, 1)]);
}

#[test]
fn a_late_answer_in_the_back_off_ends_the_call_and_the_back_off_starts_the_next() {
    let mut c = core();
    let _ = c.handle_acquire(ms(0), RequestId(1));
    let first = started(&mut c);
    c.handle_timeout(ms(1_000));
    c.handle_refreshed(ms(1_001), first, Err(RefreshError::Transient("503")));
    assert!(actions(&mut c).is_empty(), "the back-off still runs");
    assert_eq!(c.outstanding_call(), None);
    let retry = c.poll_timeout().unwrap();
    c.handle_timeout(retry);
    started(&mut c);
}

#[test]
fn a_call_unanswered_by_the_hard_limit_is_abandoned_and_the_next_attempt_starts() {
    let mut c = core();
    let _ = c.handle_acquire(ms(0), RequestId(1));
    let first = started(&mut c);
    c.handle_timeout(ms(1_000));
    let retry = c.poll_timeout().unwrap();
    c.handle_timeout(retry);
    assert!(actions(&mut c).is_empty(), "queued");
    c.handle_timeout(ms(2_999));
    assert!(actions(&mut c).is_empty(), "an early timeout does nothing");
    c.handle_timeout(ms(3_000));
    let out = actions(&mut c);
    let [Action::AbandonRefresh { attempt: dropped }, Action::StartRefresh { attempt: second }] =
        out.as_slice()
    else {
        panic!("expected the call dropped, then the next, got {out:?}");
    };
    assert_eq!(*dropped, first);
    assert_eq!(c.outstanding_call(), Some(*second));
    assert_eq!(c.stats().calls_abandoned, 1);
    // An answer that still comes for the abandoned call is ignored.
    let before = c.clone();
    c.handle_refreshed(ms(3_000), first, Ok(Fresh::new("dropped")));
    assert_eq!(c, before);
    c.handle_refreshed(ms(3_002), *second, Ok(Fresh::new("t1")));
    assert_eq!(resumed(&actions(&mut c)), [(1, 1, 1)]);
}

#[test]
fn a_soft_timeout_that_gives_up_fails_the_waiters_but_keeps_the_call() {
    let mut config = config();
    config.max_refresh_attempts = 1;
    let mut c: TestCore = Core::new(config).unwrap();
    let _ = c.handle_acquire(ms(0), RequestId(1));
    let first = started(&mut c);
    c.handle_timeout(ms(1_000));
    let out = actions(&mut c);
    assert!(
        matches!(
            out.as_slice(),
            [Action::Fail {
                error: Error::RefreshUnavailable(RefreshFailure::TimedOut),
                ..
            }]
        ),
        "{out:?}"
    );
    assert_eq!(
        (c.phase(), c.outstanding_call()),
        (Phase::Failed, Some(first))
    );
    assert_eq!(c.poll_timeout(), Some(ms(3_000)));
    // The late answer is still adopted: the generation it was asked for is
    // still current.
    c.handle_refreshed(ms(1_500), first, Ok(Fresh::new("late")));
    assert_eq!((c.phase(), c.generation()), (Phase::Idle, Generation(1)));
}

#[test]
fn unknown_repeated_and_late_failed_answers_are_ignored() {
    let mut c = core();
    let _ = c.handle_acquire(ms(0), RequestId(1));
    let attempt = started(&mut c);
    let before = c.clone();
    c.handle_refreshed(ms(0), RefreshId(99), Ok(Fresh::new("x")));
    c.handle_refreshed(ms(0), RefreshId(0), Err(RefreshError::Permanent("x")));
    assert_eq!(c, before);
    c.handle_refreshed(ms(0), attempt, Ok(Fresh::new("t1")));
    let _ = actions(&mut c);
    let settled = c.clone();
    c.handle_refreshed(ms(0), attempt, Ok(Fresh::new("t2")));
    c.handle_refreshed(ms(0), attempt, Err(RefreshError::Transient("x")));
    assert_eq!(c, settled);
}

#[test]
fn a_token_due_for_refresh_is_sent_and_refreshed_in_the_background() {
    let mut c = core();
    c.handle_set_token(ms(0), Fresh::new("t1").expiring_at(ms(60_000)));
    // Skew 10 s: due at 50 s.
    assert_eq!(c.snapshot().unwrap().valid_until, ms(50_000));
    assert_eq!(
        lease_of(c.handle_acquire(ms(49_999), RequestId(1))).generation(),
        Generation(1)
    );
    assert!(actions(&mut c).is_empty(), "not due yet");
    // The first request past it is sent and starts the refresh.
    let lease = lease_of(c.handle_acquire(ms(50_000), RequestId(2)));
    assert_eq!(lease.generation(), Generation(1));
    let attempt = started(&mut c);
    assert_eq!(c.phase(), Phase::Refreshing);
    // While it runs, requests keep going, the fast path included (S5b).
    assert_eq!(c.snapshot().unwrap().valid_until, ms(60_000));
    assert!(matches!(
        c.handle_acquire(ms(55_000), RequestId(3)),
        Next::Send(_)
    ));
    assert!(actions(&mut c).is_empty(), "no second refresh");
    assert_eq!(c.waiters(), 0);
    c.handle_refreshed(
        ms(55_010),
        attempt,
        Ok(Fresh::new("t2").expiring_at(ms(115_010))),
    );
    assert!(actions(&mut c).is_empty(), "nobody waited");
    assert_eq!((c.phase(), c.generation()), (Phase::Idle, Generation(2)));
}

#[test]
fn an_idle_client_does_not_refresh_ahead() {
    let mut c = core();
    c.handle_set_token(ms(0), Fresh::new("t1").expiring_at(ms(60_000)));
    c.handle_timeout(ms(55_000));
    assert!(actions(&mut c).is_empty());
    assert_eq!((c.phase(), c.poll_timeout()), (Phase::Idle, None));
}

#[test]
fn past_its_usable_time_a_token_makes_requests_wait() {
    let mut c = core();
    c.handle_set_token(ms(0), Fresh::new("t1").expiring_at(ms(60_000)));
    assert_eq!(c.handle_acquire(ms(60_000), RequestId(1)), Next::Wait);
    started(&mut c);
    assert_eq!(c.snapshot(), None);
}

#[test]
fn a_token_counts_as_expired_a_safety_margin_before_its_expiry() {
    let mut config = config();
    config.safety_margin = Duration::from_millis(15_000);
    let mut c: TestCore = Core::new(config).unwrap();
    c.handle_set_token(ms(0), Fresh::new("t1").expiring_at(ms(60_000)));
    // The refresh ahead (at 50 s by the skew) is brought before 45 s, the
    // end of the usable time.
    assert_eq!(c.snapshot().unwrap().valid_until, ms(45_000));
    assert_eq!(c.handle_acquire(ms(45_000), RequestId(1)), Next::Wait);
    let attempt = started(&mut c);
    // A token with less life than the margin counts as expired on arrival.
    c.handle_refreshed(
        ms(45_010),
        attempt,
        Ok(Fresh::new("short").expiring_at(ms(60_000))),
    );
    assert_eq!(c.generation(), Generation(1));
    assert_eq!(c.stats().attempts_failed, 1);
}

#[test]
fn a_token_without_expiry_is_never_refreshed_ahead() {
    let mut c = with_token();
    let lease = lease_of(c.handle_acquire(Timestamp::MAX, RequestId(1)));
    assert_eq!(lease.generation(), Generation(1));
    assert!(actions(&mut c).is_empty());
}

#[test]
fn nearly_expired_tokens_are_used_for_half_their_life_first() {
    let mut c = core();
    // 4 s to live with a 10 s skew: refreshing at once would storm.
    c.handle_set_token(ms(1_000), Fresh::new("t1").expiring_at(ms(5_000)));
    assert_eq!(c.snapshot().unwrap().valid_until, ms(3_000));
    assert!(matches!(
        c.handle_acquire(ms(2_999), RequestId(1)),
        Next::Send(_)
    ));
    assert!(actions(&mut c).is_empty());
    assert!(matches!(
        c.handle_acquire(ms(3_000), RequestId(2)),
        Next::Send(_)
    ));
    started(&mut c);
}

#[test]
fn a_token_that_arrives_expired_counts_as_a_failed_attempt() {
    let mut c = core();
    let _ = c.handle_acquire(ms(100), RequestId(1));
    let attempt = started(&mut c);
    c.handle_refreshed(ms(200), attempt, Ok(Fresh::new("old").expiring_at(ms(200))));
    assert_eq!(c.generation(), Generation::NONE);
    assert_eq!(c.phase(), Phase::Refreshing);
    assert_eq!(c.in_flight(), None, "backing off");
}

#[test]
fn a_refresh_ahead_that_gives_up_fails_nobody_and_retries_after_the_cool_down() {
    let mut c = core();
    c.handle_set_token(ms(0), Fresh::new("t1").expiring_at(ms(60_000)));
    assert!(matches!(
        c.handle_acquire(ms(50_000), RequestId(1)),
        Next::Send(_)
    ));
    let (now, out) = fail_round(&mut c, ms(50_000));
    assert!(now < ms(55_000));
    assert_eq!(out, [], "nobody waited, nobody fails");
    assert_eq!(c.phase(), Phase::Failed);
    assert_eq!(c.stats().rounds_given_up, 1);
    // The usable token keeps being sent, the fast path included, until the
    // cool-down ends.
    let snapshot = c.snapshot().unwrap();
    let retry_at = snapshot.valid_until;
    assert!(retry_at > now && retry_at < ms(60_000), "{retry_at}");
    assert!(matches!(
        c.handle_acquire(
            retry_at.saturating_sub(Duration::from_nanos(1)),
            RequestId(2)
        ),
        Next::Send(_)
    ));
    assert!(actions(&mut c).is_empty());
    // The first request after it is sent and starts a new background round.
    assert!(matches!(
        c.handle_acquire(retry_at, RequestId(3)),
        Next::Send(_)
    ));
    started(&mut c);
    assert_eq!(c.phase(), Phase::Refreshing);
}

#[test]
fn a_failed_refresh_ahead_lets_the_first_request_without_a_usable_token_start_a_round() {
    let mut c = core();
    c.handle_set_token(ms(0), Fresh::new("t1").expiring_at(ms(60_000)));
    let _ = c.handle_acquire(ms(58_000), RequestId(1));
    let (now, _) = fail_round(&mut c, ms(58_000));
    assert!(now < ms(60_000));
    assert_eq!(c.phase(), Phase::Failed);
    // The cool-down only spaced rounds ahead of expiry: it ends when the
    // token stops being usable, so nobody fails for a round nobody waited on.
    let usable_until = c.snapshot().unwrap().valid_until;
    assert!(usable_until <= ms(60_000), "{usable_until}");
    assert_eq!(c.handle_acquire(usable_until, RequestId(2)), Next::Wait);
    started(&mut c);
    assert_eq!(c.phase(), Phase::Refreshing);
    assert_eq!(c.waiters(), 1);
}

#[test]
fn a_permanent_failure_ahead_of_expiry_keeps_the_usable_token_until_it_expires() {
    let mut c = core();
    c.handle_set_token(ms(0), Fresh::new("t1").expiring_at(ms(60_000)));
    let _ = c.handle_acquire(ms(50_000), RequestId(1));
    let attempt = started(&mut c);
    c.handle_refreshed(ms(50_001), attempt, Err(RefreshError::Permanent("revoked")));
    assert_eq!(actions(&mut c), []);
    assert_eq!(c.phase(), Phase::Failed);
    assert_eq!(c.snapshot().unwrap().valid_until, ms(60_000));
    assert!(matches!(
        c.handle_acquire(ms(59_999), RequestId(2)),
        Next::Send(_)
    ));
    assert!(
        actions(&mut c).is_empty(),
        "no retry after a permanent failure"
    );
    assert!(matches!(
        error_of(c.handle_acquire(ms(60_000), RequestId(3))),
        Error::LoginRequired(_)
    ));
}

#[test]
fn past_max_waiters_requests_are_overloaded_at_once() {
    let mut c = core();
    for id in 1..=4 {
        assert_eq!(c.handle_acquire(ms(0), RequestId(id)), Next::Wait);
    }
    assert_eq!(
        error_of(c.handle_acquire(ms(0), RequestId(5))),
        Error::Overloaded
    );
    assert_eq!(c.waiters(), 4);
}

#[test]
fn a_cancelled_waiter_is_removed_and_never_resumed() {
    let mut c = two_waiters();
    let attempt = started(&mut c);
    assert!(c.handle_cancel(ms(1), RequestId(1)));
    assert!(
        !c.handle_cancel(ms(1), RequestId(1)),
        "cancelling twice does nothing"
    );
    assert!(
        !c.handle_cancel(ms(1), RequestId(42)),
        "unknown ids are ignored"
    );
    assert_eq!(
        c.in_flight(),
        Some(attempt),
        "the refresh goes on for the others"
    );
    c.handle_refreshed(ms(2), attempt, Ok(Fresh::new("t1")));
    assert_eq!(resumed(&actions(&mut c)), [(2, 1, 1)]);
}

#[test]
fn time_going_backwards_is_taken_as_the_latest_time_seen() {
    let mut c = core();
    let _ = c.handle_acquire(ms(500), RequestId(1));
    let _ = started(&mut c);
    assert_eq!(c.poll_timeout(), Some(ms(1_500)));
    c.handle_timeout(ms(1_500));
    let retry_at = c.poll_timeout().unwrap();
    c.handle_timeout(ms(0));
    assert!(actions(&mut c).is_empty(), "a timer never fires early");
    assert_eq!(c.now(), ms(1_500));
    c.handle_set_token(ms(1_500), Fresh::new("t1").expiring_at(ms(1_600)));
    let _ = actions(&mut c);
    let _ = c.handle_acquire(ms(1_700), RequestId(2));
    assert!(
        !matches!(c.handle_acquire(ms(0), RequestId(3)), Next::Send(_)),
        "an expired token stays expired"
    );
    assert!(retry_at > ms(1_500));
}

#[test]
fn invalidating_the_current_generation_forces_a_refresh() {
    let mut c = with_token();
    c.handle_invalidate(ms(1), Generation(0));
    c.handle_invalidate(ms(1), Generation(7));
    assert!(actions(&mut c).is_empty(), "other generations are ignored");
    c.handle_invalidate(ms(1), Generation(1));
    let attempt = started(&mut c);
    assert_eq!(c.handle_acquire(ms(2), RequestId(1)), Next::Wait);
    c.handle_invalidate(ms(2), Generation(1));
    assert!(actions(&mut c).is_empty(), "no second refresh");
    c.handle_refreshed(ms(3), attempt, Ok(Fresh::new("t2")));
    assert_eq!(resumed(&actions(&mut c)), [(1, 2, 1)]);
}

#[test]
fn a_login_during_a_refresh_resumes_the_waiters_and_supersedes_the_attempt() {
    let mut c = core();
    let _ = c.handle_acquire(ms(0), RequestId(1));
    let attempt = started(&mut c);
    c.handle_set_token(ms(1), Fresh::new("login"));
    assert_eq!(resumed(&actions(&mut c)), [(1, 1, 1)]);
    assert_eq!(c.outstanding_call(), Some(attempt), "the call is still out");
    c.handle_refreshed(ms(2), attempt, Ok(Fresh::new("late")));
    assert_eq!(c.generation(), Generation(1), "its base is older");
    assert_eq!(c.outstanding_call(), None);
    assert!(actions(&mut c).is_empty());
}

#[test]
fn a_new_round_while_a_call_is_out_waits_for_it() {
    let mut c = core();
    let _ = c.handle_acquire(ms(0), RequestId(1));
    let first = started(&mut c);
    c.handle_set_token(ms(1), Fresh::new("login"));
    let _ = actions(&mut c);
    c.handle_invalidate(ms(2), Generation(1));
    assert_eq!(c.phase(), Phase::Refreshing);
    assert!(actions(&mut c).is_empty(), "queued behind the call");
    assert_eq!(c.poll_timeout(), Some(ms(3_000)), "the call's hard limit");
    c.handle_refreshed(ms(3), first, Ok(Fresh::new("late")));
    assert_eq!(c.generation(), Generation(1), "ignored: an older base");
    started(&mut c);
}

#[test]
fn an_expired_login_keeps_the_waiters_waiting_for_a_new_round() {
    let mut c = core();
    let _ = c.handle_acquire(ms(10), RequestId(1));
    let first = started(&mut c);
    c.handle_set_token(ms(10), Fresh::new("stale").expiring_at(ms(5)));
    assert!(actions(&mut c).is_empty(), "queued behind the first call");
    assert_eq!(c.waiters(), 1);
    c.handle_refreshed(ms(15), first, Err(RefreshError::Transient("503")));
    let attempt = started(&mut c);
    c.handle_refreshed(ms(20), attempt, Ok(Fresh::new("t2")));
    assert_eq!(resumed(&actions(&mut c)), [(1, 2, 1)]);
}

#[test]
fn caller_bugs_get_clear_errors_and_leave_the_waiter_alone() {
    let mut c = core();
    assert_eq!(c.handle_acquire(ms(0), RequestId(1)), Next::Wait);
    assert_eq!(
        error_of(c.handle_acquire(ms(0), RequestId(1))),
        Error::DuplicateRequest
    );
    assert_eq!(c.waiters(), 1);
    let forged = Lease::new(Arc::new("x"), Generation(9), 1);
    assert_eq!(
        error_of(c.handle_rejection(ms(0), RequestId(2), &forged)),
        Error::UnknownGeneration
    );
}

#[test]
fn same_seed_same_inputs_same_outputs() {
    let run = |seed| {
        let mut cfg = config();
        cfg.seed = seed;
        cfg.skew_jitter = Duration::from_millis(3_000);
        let mut c: TestCore = Core::new(cfg).unwrap();
        let _ = c.handle_acquire(ms(0), RequestId(1));
        let _ = fail_round(&mut c, ms(0));
        c
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4), "jitter depends on the seed");
}

#[test]
fn debug_shows_the_state_but_never_the_token() {
    let mut c = core();
    c.handle_set_token(ms(0), Fresh::new("hunter2"));
    let printed = format!("{c:?} {:?}", c.snapshot());
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("Idle"), "{printed}");
}

#[test]
fn stats_count_what_happened_and_do_not_tell_states_apart() {
    let mut c = two_waiters();
    let first = started(&mut c);
    c.handle_timeout(ms(1_000));
    let retry = c.poll_timeout().unwrap();
    c.handle_timeout(retry);
    assert!(actions(&mut c).is_empty(), "queued behind the first call");
    c.handle_refreshed(retry, first, Ok(Fresh::new("late")));
    let Action::Resume { lease, .. } = actions(&mut c).remove(0) else {
        panic!("expected a resume")
    };
    c.handle_set_token(retry, Fresh::new("login"));
    let _ = c.handle_rejection(retry, RequestId(1), &lease);
    let s = *c.stats();
    assert_eq!(
        (
            s.refreshes_started,
            s.joins,
            s.attempts_failed,
            s.attempts_timed_out
        ),
        (1, 1, 1, 1)
    );
    assert_eq!((s.tokens_adopted, s.late_results_adopted), (1, 1));
    assert_eq!((s.stale_rejections_skipped, s.rejections), (1, 0));
    let mut fresh = core();
    fresh.handle_set_token(ms(0), Fresh::new("t1"));
    let mut counted = fresh.clone();
    let _ = counted.handle_acquire(ms(0), RequestId(9));
    assert_eq!(counted, fresh, "a send changes no state, only the counts");
}
