// The refresh coordinator, sans IO: a port of the reference core, input for
// input and output for output. It never reads a clock, sets a timer or does
// I/O: time comes in with every input (BigInt ns) and work goes out as
// actions drained with pollAction().

import { makeConfig, maxSends } from './config.js';
import {
  AuthRejected,
  DuplicateRequest,
  LoginRequired,
  Overloaded,
  RefreshUnavailable,
  UnknownGeneration,
} from './errors.js';
import { Jitter } from './jitter.js';
import { MUTANT } from './mutants.js';
import { addSat, maxBig, minBig, subSat, U32_MAX, U64_MAX } from './time.js';

const byId = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The refresh coordinator.
 *
 * Driving it: for each request call `acquire(now, id)` and act on the answer
 * (`Send` with the lease, `Wait` for exactly one `Resume`/`Fail` action, or
 * `Fail`); report a rejected token with `reject(now, id, lease)`; a waiter
 * that gives up with `cancel(now, id)`; the refresher's answer with
 * `refreshed(now, attempt, result)`. After EVERY input drain `pollAction()`
 * and carry each action out at once: `StartRefresh` calls the refresher now,
 * `AbandonRefresh` drops that call (its answer is never reported),
 * `Resume`/`Fail` reach their waiter. Call `timeout(now)` when
 * `pollTimeout()` comes due.
 *
 * Time must not go backwards; if it does, the latest time seen is used.
 */
export class Core {
  /**
   * @param {object} [config] partial config (see config.js); durations in ns.
   * @param {object} [options] test-only: `{[MUTANT]: name}` plants a bug.
   */
  constructor(config = {}, options = {}) {
    this.config = makeConfig(config);
    this.mutant = options[MUTANT] ?? null;
    const seed = this.is('JitterSeedMixed') ? new Jitter(this.config.seed).nextU64() : this.config.seed;
    this.jitter = new Jitter(seed, this.mutant);
    this.skewJitter = this.is('JitterSeparateStreams') ? new Jitter(this.config.seed ^ 1n) : this.jitter;
    this._now = 0n;
    /**
     * The current token, null exactly while the generation is 0.
     * @type {null | {token: any, expiresAt: bigint|null, usableUntil: bigint|null, refreshAt: bigint|null, rejected: boolean}}
     */
    this.token = null;
    this.gen = 0n;
    /** Idle | Refreshing{waiters, failures, step} | Failed{error, retryAt} */
    this.state = { phase: 'Idle' };
    this.lastAttempt = 0n;
    /**
     * The one refresher call outstanding at the endpoint (S1): from its
     * StartRefresh until its answer arrives or it is abandoned.
     * @type {null | {attempt: bigint, base: bigint, abandonAt: bigint}}
     */
    this.call = null;
    this.actions = [];
  }

  is(name) {
    return this.mutant === name;
  }

  // ---- inputs ------------------------------------------------------------

  /** A request asks for a token. */
  acquire(now, id) {
    now = this.advance(now);
    return this.route(now, id, 0);
  }

  /** The server rejected the token the request `id` was sent with. */
  reject(now, id, lease) {
    now = this.advance(now);
    if (lease.generation > this.gen) return fail(new UnknownGeneration());
    // What the rejection teaches about the token holds whatever becomes of
    // this request (even one out of retries, or a duplicate id): the
    // current token is never handed out again (S5).
    const stale = lease.generation < this.gen;
    if ((!stale || this.is('RefreshOnStaleRejection')) && this.token) this.token.rejected = true;
    if (lease.send >= maxSends(this.config) && !this.is('IgnoreRetryBudget')) {
      return fail(new AuthRejected(lease.send));
    }
    if (!stale && this.state.phase === 'Refreshing' && this.is('RefreshBesideInFlight')) {
      this.startAttempt(now);
    }
    return this.route(now, id, lease.send);
  }

  /** The waiting request `id` gave up. Returns whether it was waiting. */
  cancel(now, id) {
    this.advance(now);
    if (this.state.phase !== 'Refreshing') return false;
    const { waiters } = this.state;
    const removed = waiters.delete(id);
    if (removed && this.is('LoseWaiterOnCancel') && waiters.size > 0) {
      waiters.delete([...waiters.keys()].sort(byId)[0]);
    }
    return removed;
  }

  /**
   * The refresher answered `attempt`. `result` is
   * `{ok: {token, expiresAt}}` | `{transient: error}` | `{permanent: error}`.
   * Only the outstanding call's answer counts; it ends the call. A late
   * answer (after its soft timeout) is adopted if it is a token for the
   * still current generation and refreshing was not refused since.
   */
  refreshed(now, attempt, result) {
    now = this.advance(now);
    const call = this.call !== null && this.call.attempt === attempt ? this.call : null;
    const replayed = this.is('AdoptEveryLateResult') && attempt !== 0n && attempt <= this.lastAttempt;
    if (call === null && !replayed) return;
    const lateError = call !== null && !result.ok && this.inFlight() !== attempt;
    if (call !== null && !(this.is('LateErrorKeepsCall') && lateError)) this.call = null;
    if (this.inFlight() === attempt) {
      if (result.ok) {
        if (this.arrivesExpired(result.ok, now)) {
          // A token that arrives expired is never installed: no skew draw.
          if (this.is('SkewDrawOnExpiredRefresh')) this.skewJitter.upTo(this.config.skewJitter);
          this.attemptFailed(now, 'ExpiredOnArrival', null);
        } else {
          this.adopt(now, result.ok);
        }
      } else if ('transient' in result) {
        this.attemptFailed(now, 'Refresher', result.transient);
      } else {
        this.giveUp(new LoginRequired(result.permanent), null);
      }
      return;
    }
    // Only an answer asked for the current generation may make the next
    // one: an older base was already refreshed or replaced by a login (S2).
    const forCurrent = (call !== null && call.base === this.gen) || replayed;
    const revoked = this.state.phase === 'Failed' && this.state.retryAt === null;
    if (result.ok && forCurrent && !revoked && !this.arrivesExpired(result.ok, now)) {
      this.adopt(now, result.ok);
    } else if (this.state.phase === 'Refreshing' && this.state.step.kind === 'Queued' && !(this.is('LateErrorKeepsCall') && lateError)) {
      // Any late answer ends the call: a queued round goes on at once.
      this.startAttempt(now);
    }
  }

  /**
   * Timers: the outstanding call past its hard limit is abandoned; an
   * attempt past its soft timeout fails; an ended back-off starts the next
   * attempt (or queues it behind the outstanding call).
   */
  timeout(now) {
    now = this.advance(now);
    if (this.call !== null && now >= this.call.abandonAt) {
      const { attempt } = this.call;
      this.call = null;
      this.actions.push({ type: 'AbandonRefresh', attempt });
    }
    if (this.state.phase !== 'Refreshing') return;
    const { step } = this.state;
    if (step.kind === 'InFlight' && now >= step.deadline) {
      this.attemptFailed(now, 'TimedOut', null);
    } else if (step.kind === 'BackingOff' && now >= step.retryAt) {
      this.nextAttempt(now);
    } else if (step.kind === 'Queued' && this.call === null) {
      this.startAttempt(now);
    }
  }

  /**
   * A token obtained elsewhere (a login): the next generation at once. It
   * ends a round (the outstanding call stays out; its answer will not be
   * adopted) and a Failed state. `fresh`: {token, expiresAt}.
   */
  setToken(now, fresh) {
    now = this.advance(now);
    // The planted bug resumes the waiters with the token the login replaced.
    const before = this.token && { token: this.token.token, generation: this.gen };
    this.install(now, fresh, true);
    this.settle(now, this.is('StaleSendAfterLogin') ? before : null);
  }

  /** Marks `generation` bad; if current and Idle, starts a refresh. Before any token: nothing. */
  invalidate(now, generation) {
    now = this.advance(now);
    if (generation !== this.gen) return;
    if (!this.token) {
      if (this.is('InvalidateBeforeToken') && this.state.phase === 'Idle') this.startRound(now, new Map());
      return;
    }
    this.token.rejected = true;
    if (this.state.phase === 'Idle') this.startRound(now, new Map());
  }

  // ---- outputs -----------------------------------------------------------

  /** The next action, oldest first, or null. */
  pollAction() {
    return this.actions.length ? this.actions.shift() : null;
  }

  /** When timeout() must be called next (ns), or null: the round's timer or the call's hard limit. */
  pollTimeout() {
    let round = null;
    if (this.state.phase === 'Refreshing') {
      const { step } = this.state;
      if (step.kind === 'InFlight') round = step.deadline;
      else if (step.kind === 'BackingOff' && !this.is('ForgetBackoffTimer')) round = step.retryAt;
    }
    const abandon = this.call !== null && !this.is('ForgetAbandonTimer') ? this.call.abandonAt : null;
    if (round === null) return abandon;
    return abandon === null ? round : minBig(round, abandon);
  }

  phase() {
    return this.state.phase;
  }

  generation() {
    return this.gen;
  }

  now() {
    return this._now;
  }

  waiters() {
    return this.state.phase === 'Refreshing' ? this.state.waiters.size : 0;
  }

  /** The attempt whose answer the round waits for (before its soft timeout), or null. */
  inFlight() {
    const s = this.state;
    return s.phase === 'Refreshing' && s.step.kind === 'InFlight' ? s.step.attempt : null;
  }

  /** The refresher call still out at the endpoint, or null. */
  outstandingCall() {
    return this.call === null ? null : this.call.attempt;
  }

  /**
   * Whether `lease` may still go out: its generation is current and the
   * token is usable. A front-end that queues a request for a connection
   * checks this before it sends.
   */
  leaseUsable(now, lease) {
    const t = this.token;
    return lease.generation === this.gen && t !== null && this.usable(t, maxBig(this._now, now));
  }

  /** A lease a fast path may hand out until `validUntil`, or null. */
  snapshot() {
    const t = this.token;
    if (!t || !this.usable(t, this._now)) return null;
    const until = t.usableUntil ?? U64_MAX;
    const s = this.state;
    let validUntil = until;
    if (s.phase === 'Idle' && t.refreshAt !== null) validUntil = minBig(t.refreshAt, until);
    else if (s.phase === 'Failed' && s.retryAt !== null) validUntil = minBig(until, s.retryAt);
    if (!(this._now < validUntil)) return null;
    return { lease: { token: t.token, generation: this.gen, send: 1 }, validUntil };
  }

  // ---- transitions -------------------------------------------------------

  advance(now) {
    if (this.is('MillisecondTimes')) now = (now / 1_000_000n) * 1_000_000n;
    this._now = maxBig(this._now, now);
    return this._now;
  }

  /**
   * A request finding a usable token is sent, in every phase (S5b); the
   * first at or after refresh_at (Idle), or after a failed refresh-ahead's
   * retry_at, also starts a round in the background.
   */
  route(now, id, sends) {
    const s = this.state;
    const parkAnyway = this.is('ParkWhileUsable') && s.phase === 'Refreshing';
    const t = this.token;
    const ok = t && (this.usable(t, now) || (this.is('HandOutRejectedToken') && this.unexpired(t, now)));
    if (ok && !parkAnyway) {
      if (this.dueAhead(now)) this.startRound(now, new Map());
      return { type: 'Send', lease: { token: t.token, generation: this.gen, send: inc(sends) } };
    }
    if (s.phase === 'Refreshing') {
      if (s.waiters.has(id)) return fail(new DuplicateRequest());
      const limit = this.is('IgnoreMaxWaiters') ? Infinity : this.config.maxWaiters;
      if (s.waiters.size >= limit) return fail(new Overloaded());
      s.waiters.set(id, sends);
      return { type: 'Wait' };
    }
    if (s.phase === 'Failed' && (s.retryAt === null || now < s.retryAt)) return fail(s.error);
    this.startRound(now, new Map([[id, sends]]));
    return { type: 'Wait' };
  }

  dueAhead(now) {
    const s = this.state;
    if (s.phase === 'Idle') {
      const t = this.token;
      return t !== null && this.usable(t, now) && t.refreshAt !== null && now >= t.refreshAt;
    }
    return s.phase === 'Failed' && s.retryAt !== null && now >= s.retryAt;
  }

  startRound(now, waiters) {
    this.state = { phase: 'Refreshing', waiters, failures: 0, step: { kind: 'Queued' } };
    this.nextAttempt(now);
  }

  /** The next attempt starts now, unless a call is still out: then it queues (S1). */
  nextAttempt(now) {
    if (this.call !== null && !this.is('StartBesideOutstandingCall')) {
      if (this.state.phase === 'Refreshing') this.state.step = { kind: 'Queued' };
      return;
    }
    this.startAttempt(now);
  }

  startAttempt(now) {
    this.lastAttempt = this.lastAttempt === U64_MAX ? U64_MAX : this.lastAttempt + 1n;
    const attempt = this.lastAttempt;
    this.call = { attempt, base: this.gen, abandonAt: addSat(now, this.config.refreshAbandonAfter) };
    if (this.state.phase === 'Refreshing') {
      this.state.step = { kind: 'InFlight', attempt, deadline: addSat(now, this.config.refreshTimeout) };
    }
    this.actions.push({ type: 'StartRefresh', attempt });
  }

  attemptFailed(now, failure, cause) {
    const s = this.state;
    if (s.phase !== 'Refreshing') return;
    s.failures += 1;
    if (s.failures < this.config.maxRefreshAttempts) {
      s.step = { kind: 'BackingOff', retryAt: addSat(now, this.jitter.equal(this.backoff(s.failures))) };
      return;
    }
    // A round ahead of expiry has no waiters to fail: requests keep getting
    // the usable token, and the first after retry_at tries again. The
    // cool-down only spaces those rounds, so it ends no later than the
    // token's usable time.
    let retryAt = addSat(now, this.jitter.equal(this.config.cooldown));
    const t = this.token;
    if (t !== null && this.usable(t, now) && t.usableUntil !== null && !this.is('FullCooldownAfterQuietGiveUp')) {
      retryAt = minBig(retryAt, t.usableUntil);
    }
    this.giveUp(new RefreshUnavailable(failure, cause), retryAt);
  }

  /** initial * 2^min(failures - 1, 31), saturating, capped at backoff_max. */
  backoff(failures) {
    const c = this.config;
    if (this.is('BackoffFromFailures')) return minBig(c.backoffInitial << BigInt(Math.min(failures, 31)), c.backoffMax);
    const exp = BigInt(Math.min(Math.max(failures - 1, 0), 31));
    const d = c.backoffInitial << exp;
    return this.is('BackoffUncapped') ? (d > U64_MAX ? U64_MAX : d) : minBig(d, c.backoffMax);
  }

  /** Enters Failed, failing every waiter in the same step (S6), in ascending id order. */
  giveUp(error, retryAt) {
    const previous = this.state;
    this.state = { phase: 'Failed', error, retryAt };
    if (previous.phase === 'Refreshing' && !this.is('KeepWaitersOnFailure')) {
      for (const id of this.order(previous.waiters)) this.actions.push({ type: 'Fail', id, error });
    }
  }

  /** Expired, or within the safety margin of it. */
  arrivesExpired(fresh, now) {
    const e = fresh.expiresAt ?? null;
    return e !== null && subSat(e, this.margin()) <= now;
  }

  margin() {
    return this.is('NoSafetyMargin') ? 0n : this.config.safetyMargin;
  }

  adopt(now, fresh) {
    this.install(now, fresh, false);
    this.settle(now, null);
  }

  install(now, fresh, login) {
    this.gen += 1n;
    const e = fresh.expiresAt ?? null;
    const usableUntil = e === null ? null : subSat(e, this.margin());
    let refreshAt = null;
    if (e !== null) {
      // Refresh `skew` (plus jitter) ahead of expiry, but never in the first
      // half of the token's life, and never later than it is usable. Every
      // installed token with an expiry draws, an expired login included.
      const skip = this.is('NoSkewDrawForExpiredLogin') && login && e <= now;
      const skew = this.config.expirySkew + (skip ? 0n : this.skewJitter.upTo(this.config.skewJitter));
      const life = subSat(e, now);
      const ahead = maxBig(subSat(e, skew), addSat(now, life - life / 2n));
      refreshAt = minBig(ahead, usableUntil);
    }
    this.token = { token: fresh.token, expiresAt: e, usableUntil, refreshAt, rejected: false };
  }

  /** After the token changed: resume every waiter if it is usable, else keep them for a new round. */
  settle(now, stale) {
    const waiters = this.state.phase === 'Refreshing' ? this.state.waiters : new Map();
    this.state = { phase: 'Idle' };
    if (!(this.token && this.usable(this.token, now))) {
      if (waiters.size > 0) this.startRound(now, waiters);
      return;
    }
    const { token, generation } = stale ?? { token: this.token.token, generation: this.gen };
    for (const id of this.order(waiters)) {
      this.actions.push({ type: 'Resume', id, lease: { token, generation, send: inc(waiters.get(id)) } });
    }
  }

  /** Waiters are answered in ascending request id, not in join order. */
  order(waiters) {
    const ids = [...waiters.keys()];
    return this.is('ResumeInJoinOrder') ? ids : ids.sort(byId);
  }

  /** Before usable_until (the stated expiry minus the safety margin). */
  unexpired(t, now) {
    return t.usableUntil === null || now < t.usableUntil;
  }

  /** Neither rejected nor (within the margin) expired. */
  usable(t, now) {
    return !t.rejected && this.unexpired(t, now);
  }
}

function fail(error) {
  return { type: 'Fail', error };
}

function inc(sends) {
  return sends >= U32_MAX ? U32_MAX : sends + 1;
}
