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
 * and carry each action out at once; call `timeout(now)` when
 * `pollTimeout()` comes due.
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
    /** @type {null | {token: any, expiresAt: bigint|null, refreshAt: bigint|null, rejected: boolean}} */
    this.token = null;
    this.gen = 0n;
    /** Idle | Refreshing{waiters, failures, step} | Failed{error, retryAt} */
    this.state = { phase: 'Idle' };
    this.lastAttempt = 0n;
    /** Timed-out attempts of the current generation whose late success may be adopted. */
    this.abandoned = new Set();
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
    const markBad = (!stale || this.is('RefreshOnStaleRejection')) && this.token;
    const duplicate = this.state.phase === 'Refreshing' && this.state.waiters.has(id);
    if (markBad && !(this.is('DuplicateRejectionKeepsToken') && duplicate)) this.token.rejected = true;
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
   */
  refreshed(now, attempt, result) {
    now = this.advance(now);
    if (this.inFlight() === attempt) {
      if (result.ok) {
        if (expired(result.ok, now)) {
          // A token that arrives expired is never installed: no skew draw.
          if (this.is('SkewDrawOnExpiredRefresh')) this.skewJitter.upTo(this.config.skewJitter);
          this.attemptFailed(now, 'ExpiredOnArrival', null);
        }
        else this.adopt(now, result.ok);
      } else if ('transient' in result) {
        this.attemptFailed(now, 'Refresher', result.transient);
      } else {
        this.giveUp(new LoginRequired(result.permanent), null);
      }
      return;
    }
    let late;
    if (this.is('AdoptEveryLateResult')) late = attempt <= this.lastAttempt;
    else if (this.is('LateErrorKeepsAttempt') && !result.ok) late = false;
    else late = this.abandoned.delete(attempt);
    const revoked = this.state.phase === 'Failed' && this.state.retryAt === null;
    if (late && !revoked && result.ok && !expired(result.ok, now)) this.adopt(now, result.ok);
  }

  /** Timers: an attempt past its deadline fails; an ended back-off starts the next attempt. */
  timeout(now) {
    now = this.advance(now);
    if (this.state.phase !== 'Refreshing') return;
    const { step } = this.state;
    if (step.kind === 'InFlight' && now >= step.deadline) {
      this.abandoned.add(step.attempt);
      if (this.abandoned.size > this.config.maxRefreshAttempts) {
        this.abandoned.delete([...this.abandoned].sort(byId)[0]);
      }
      this.attemptFailed(now, 'TimedOut', null);
    } else if (step.kind === 'BackingOff' && now >= step.retryAt) {
      this.startAttempt(now);
    }
  }

  /** A token obtained elsewhere (a login): the next generation at once. `fresh`: {token, expiresAt}. */
  setToken(now, fresh) {
    now = this.advance(now);
    // The planted bug resumes the waiters with the token the login replaced.
    const before = this.token && { token: this.token.token, generation: this.gen };
    this.install(now, fresh, true);
    this.settle(now, this.is('StaleSendAfterLogin') ? before : null);
  }

  /** Marks `generation` bad; if current and Idle, starts a refresh. */
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

  /** When timeout() must be called next (ns), or null. */
  pollTimeout() {
    if (this.state.phase !== 'Refreshing') return null;
    const { step } = this.state;
    if (step.kind === 'InFlight') return step.deadline;
    if (this.is('ForgetBackoffTimer')) return null;
    return step.retryAt;
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

  inFlight() {
    const s = this.state;
    return s.phase === 'Refreshing' && s.step.kind === 'InFlight' ? s.step.attempt : null;
  }

  /** Whether a late answer of `attempt` may still be adopted (keep its call alive). */
  awaitsLateAnswer(attempt) {
    const revoked = this.state.phase === 'Failed' && this.state.retryAt === null;
    return !revoked && this.abandoned.has(attempt);
  }

  /**
   * Whether `lease` may still go out: its generation is current and the
   * token is neither rejected nor expired. A front-end that queues a
   * request for a connection checks this before it sends.
   */
  leaseUsable(now, lease) {
    const t = this.token;
    return lease.generation === this.gen && t !== null && freshAt(t, maxBig(this._now, now));
  }

  /** A lease a fast path may hand out until `validUntil`, or null. */
  snapshot() {
    if (this.state.phase !== 'Idle' || !this.token || !usable(this.token, this._now)) return null;
    const t = this.token;
    const expiry = t.expiresAt ?? U64_MAX;
    return {
      lease: { token: t.token, generation: this.gen, send: 1 },
      validUntil: t.refreshAt === null ? expiry : minBig(t.refreshAt, expiry),
    };
  }

  // ---- transitions -------------------------------------------------------

  advance(now) {
    if (this.is('MillisecondTimes')) now = (now / 1_000_000n) * 1_000_000n;
    this._now = maxBig(this._now, now);
    return this._now;
  }

  route(now, id, sends) {
    const s = this.state;
    if (s.phase === 'Refreshing') {
      if (s.waiters.has(id)) return fail(new DuplicateRequest());
      const limit = this.is('IgnoreMaxWaiters') ? Infinity : this.config.maxWaiters;
      if (s.waiters.size >= limit) return fail(new Overloaded());
      s.waiters.set(id, sends);
      return { type: 'Wait' };
    }
    if (s.phase === 'Failed') {
      if (s.retryAt === null || now < s.retryAt) return fail(s.error);
    } else {
      const t = this.token;
      const ok = t && (usable(t, now) || (this.is('HandOutRejectedToken') && unexpired(t, now)));
      if (ok) return { type: 'Send', lease: { token: t.token, generation: this.gen, send: inc(sends) } };
    }
    this.startRound(now, new Map([[id, sends]]));
    return { type: 'Wait' };
  }

  startRound(now, waiters) {
    this.state = { phase: 'Refreshing', waiters, failures: 0, step: { kind: 'BackingOff', retryAt: now } };
    this.startAttempt(now);
  }

  startAttempt(now) {
    this.lastAttempt = this.lastAttempt === U64_MAX ? U64_MAX : this.lastAttempt + 1n;
    const attempt = this.lastAttempt;
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
    // A transient failure does not discard a token that is still good.
    if (this.token && freshAt(this.token, now)) {
      this.token.refreshAt = null;
      this.settle(now, null);
      return;
    }
    const retryAt = addSat(now, this.jitter.equal(this.config.cooldown));
    this.giveUp(new RefreshUnavailable(failure, cause), retryAt);
  }

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

  adopt(now, fresh) {
    this.install(now, fresh, false);
    this.settle(now, null);
  }

  install(now, fresh, login) {
    this.gen += 1n;
    this.abandoned.clear();
    const e = fresh.expiresAt ?? null;
    let refreshAt = null;
    if (e !== null) {
      // Refresh `skew` (plus jitter) ahead of expiry, but never in the first
      // half of the token's life. Every installed token with an expiry
      // draws, an already expired login included.
      const skip = this.is('NoSkewDrawForExpiredLogin') && login && e <= now;
      const skew = this.config.expirySkew + (skip ? 0n : this.skewJitter.upTo(this.config.skewJitter));
      const life = subSat(e, now);
      refreshAt = maxBig(subSat(e, skew), addSat(now, life - life / 2n));
    }
    this.token = { token: fresh.token, expiresAt: e, refreshAt, rejected: false };
  }

  /** After the token changed: resume every waiter if it is fresh, else keep them for a new round. */
  settle(now, stale) {
    const waiters = this.state.phase === 'Refreshing' ? this.state.waiters : new Map();
    this.state = { phase: 'Idle' };
    if (!(this.token && freshAt(this.token, now))) {
      if (waiters.size > 0) this.startRound(now, waiters);
      return;
    }
    const { token, generation } = stale ?? { token: this.token.token, generation: this.gen };
    for (const id of this.order(waiters)) {
      const lease = { token, generation, send: inc(waiters.get(id)) };
      this.actions.push({ type: 'Resume', id, lease });
    }
  }

  /** Waiters are answered in ascending request id, not in join order. */
  order(waiters) {
    const ids = [...waiters.keys()];
    return this.is('ResumeInJoinOrder') ? ids : ids.sort(byId);
  }
}

function fail(error) {
  return { type: 'Fail', error };
}

function inc(sends) {
  return sends >= U32_MAX ? U32_MAX : sends + 1;
}

function expired(fresh, now) {
  return fresh.expiresAt !== null && fresh.expiresAt !== undefined && fresh.expiresAt <= now;
}

function unexpired(t, now) {
  return t.expiresAt === null || now < t.expiresAt;
}

function freshAt(t, now) {
  return !t.rejected && unexpired(t, now);
}

function usable(t, now) {
  return freshAt(t, now) && (t.refreshAt === null || now < t.refreshAt);
}
