// Planted bugs, for showing that the vectors, the differential test and the
// judge catch each kind of mistake a port or a front-end can make. Only
// tests plant them: the option key is a symbol no caller passes by accident.

/** The option key that plants a bug: `new Core(config, {[MUTANT]: name})`. */
export const MUTANT = Symbol.for('tokenflight.mutant');

/**
 * Every planted bug: where it lives (`core` or `front`) and what it breaks.
 * `test/mutants.test.js` shows each is caught by the vectors, the
 * differential test or the judge.
 */
export const mutants = Object.freeze({
  // The reference core's own planted bugs, ported.
  RefreshBesideInFlight: { layer: 'core', breaks: 'S1: a rejection during a refresh starts a second attempt' },
  RefreshOnStaleRejection: { layer: 'core', breaks: 'S2: a stale rejection marks the current token bad' },
  AdoptEveryLateResult: { layer: 'core', breaks: 'S2: every late success is adopted' },
  LoseWaiterOnCancel: { layer: 'core', breaks: 'S3: cancelling a waiter drops the next one too' },
  IgnoreRetryBudget: { layer: 'core', breaks: 'S4: the retry budget is never checked' },
  HandOutRejectedToken: { layer: 'core', breaks: 'S5: a rejected token is still handed out' },
  KeepWaitersOnFailure: { layer: 'core', breaks: 'S6: giving up fails no waiter' },
  IgnoreMaxWaiters: { layer: 'core', breaks: 'S7: max_waiters is never checked' },
  ForgetBackoffTimer: { layer: 'core', breaks: 'L1: the back-off timer is never reported' },
  StartBesideOutstandingCall: { layer: 'core', breaks: 'S1: the next attempt starts while the timed-out call is still out' },
  ParkWhileUsable: { layer: 'core', breaks: 'S5b: a request waits during a refresh ahead of expiry' },
  // The rules a port gets wrong when it reads only the prose.
  JitterSeedMixed: { layer: 'core', breaks: 'jitter: the stream starts at mix(seed), not at the seed' },
  JitterModulo: { layer: 'core', breaks: 'jitter: up_to by modulo, not multiply-shift' },
  JitterFull: { layer: 'core', breaks: 'jitter: full jitter instead of equal jitter' },
  JitterSeparateStreams: { layer: 'core', breaks: 'jitter: skew drawn from its own stream' },
  NoSkewDrawForExpiredLogin: { layer: 'core', breaks: 'skew: an already expired login draws no skew jitter' },
  SkewDrawOnExpiredRefresh: { layer: 'core', breaks: 'skew: a refreshed token that arrives expired draws' },
  BackoffFromFailures: { layer: 'core', breaks: 'back-off: initial * 2^failures (not failures - 1)' },
  BackoffUncapped: { layer: 'core', breaks: 'back-off: not capped at backoff_max' },
  ResumeInJoinOrder: { layer: 'core', breaks: 'order: waiters answered in join order, not by id' },
  LateErrorKeepsCall: { layer: 'core', breaks: 'late answers: a late error does not end the outstanding call' },
  InvalidateBeforeToken: { layer: 'core', breaks: 'invalidate before any token starts a refresh' },
  NoSafetyMargin: { layer: 'core', breaks: 'safety margin: a token counts as usable until its stated expiry' },
  ForgetAbandonTimer: { layer: 'core', breaks: 'L1: poll_timeout leaves out the outstanding call\'s hard limit' },
  MillisecondTimes: { layer: 'core', breaks: 'time: inputs truncated to milliseconds' },
  FullCooldownAfterQuietGiveUp: { layer: 'core', breaks: 'cool-down: a quiet give-up ahead of expiry outlasts the token\'s usable time' },
  StaleSendAfterLogin: { layer: 'core', breaks: 'S5: a login resumes its waiters with the replaced token' },
  // Front-end bugs: the plumbing around the core.
  RefreshBehindLimiter: { layer: 'front', breaks: 'L1: a request holds its slot while it waits; the refresh queues for one' },
  CancelForgetsCore: { layer: 'front', breaks: 'S4: a cancelled waiter is not removed from the core, then sent' },
  LazyDrain: { layer: 'front', breaks: 'L1: actions drained only on the next request, not after a timer' },
  IgnoreAbandon: { layer: 'front', breaks: 'S1: an abandoned call is kept, and its answer still reported' },
  CallRefresherTwice: { layer: 'front', breaks: 'S1: a retrying wrapper calls the refresher twice per StartRefresh' },
});

/** Names of the bugs planted in the given layer. */
export function mutantsOf(layer) {
  return Object.keys(mutants).filter((m) => mutants[m].layer === layer);
}
