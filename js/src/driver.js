// The driver both front-ends share: it owns the JS core and obeys its
// driving contract to the letter. After every input it drains the actions
// at once (a StartRefresh calls the refresher now, a Resume or Fail reaches
// its waiter now) and re-arms the one timer from pollTimeout. It also writes
// the run down in the judge's vocabulary, so a real run can be judged.

import { Core } from './core.js';
import { maxSends } from './config.js';
import { Cancelled, TransportError } from './errors.js';
import { MUTANT } from './mutants.js';
import { History } from './history.js';
import { Canceller } from './signal.js';

/** Wall-clock time as ns, with the host's timers. */
export const systemClock = {
  now: () => BigInt(Date.now()) * 1_000_000n,
  // Hosts fire a longer timeout at once, so a far deadline is approached
  // in steps of at most ~24 days (an early tick just re-arms).
  set: (at, fn) => setTimeout(fn, Math.min(MAX_DELAY_MS, Math.max(0, Math.ceil(Number(at - systemClock.now()) / 1e6)))),
  clear: (handle) => clearTimeout(handle),
};

const MAX_DELAY_MS = 2 ** 31 - 1;

/** A connection limiter: `size` slots, FIFO, one of them kept for the refresher. */
export class Limiter {
  constructor(size, reserved) {
    this.free = size - reserved;
    this.reservedFree = reserved;
    this.queue = [];
  }

  /** A slot for a request: resolves with a release function. */
  take(signal) {
    if (this.free > 0) {
      this.free -= 1;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const entry = {
        resolve: (release) => {
          off();
          resolve(release);
        },
        reject,
      };
      this.queue.push(entry);
      const off = onAbort(signal, () => {
        const i = this.queue.indexOf(entry);
        if (i >= 0) this.queue.splice(i, 1);
        reject(new Cancelled(signal.reason));
      });
    });
  }

  /** The refresher's own slot: never waits behind requests (S1 keeps it to one). */
  takeReserved() {
    if (this.reservedFree > 0) {
      this.reservedFree -= 1;
      return () => { this.reservedFree += 1; };
    }
    return () => {};
  }

  releaser() {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.queue.shift();
      if (next) next.resolve(this.releaser());
      else this.free += 1;
    };
  }
}

export function onAbort(signal, fn) {
  if (!signal) return () => {};
  if (signal.aborted) {
    let live = true;
    queueMicrotask(() => live && fn());
    return () => {
      live = false;
    };
  }
  signal.addEventListener('abort', fn, { once: true });
  return () => signal.removeEventListener?.('abort', fn);
}

/**
 * @param {object} o
 * @param {object} [o.config] core config (durations in ns)
 * @param {object} [o.clock] {now(): bigint ns, set(at, fn), clear(handle)}
 * @param {(attempt: bigint, signal) => Promise<{token, expiresAt?: bigint|null}>} o.refresher
 *   a rejection with `permanent: true` needs a new login; any other is
 *   transient; `signal` aborts when the core gives the call up for good
 * @param {(fresh) => void} [o.onToken] called with every new token (to persist it)
 * @param {boolean|History} [o.history] record the run for the judge
 */
export class Driver {
  constructor({ config = {}, clock = systemClock, refresher, onToken = () => {}, history = false, limiter = null, mutant = null }) {
    this.mutant = mutant;
    this.core = new Core(config, mutant ? { [MUTANT]: mutant } : {});
    this.clock = clock;
    this.refresher = refresher;
    this.onToken = onToken;
    this.limiter = limiter;
    this.history = history === true ? new History(this.core.config) : history || null;
    this.nextId = 1n;
    /** id -> {resolve, reject} of a request waiting for a Resume/Fail. */
    this.waiting = new Map();
    this.timer = null;
    this.timerAt = null;
    /** attempt -> the refresher call's state, while its answer is wanted. */
    this.calls = new Map();
  }

  now() {
    return this.clock.now();
  }

  record(event) {
    this.history?.push(this.core.now(), event);
  }

  /**
   * One input to the core, written down the way the reference recorder does,
   * then every action carried out. `event` is the input's own event.
   */
  step(input, event, asker = null) {
    const phase = this.core.phase();
    const inFlight = this.core.inFlight();
    const generation = this.core.generation();
    const answer = input();
    const changed = this.core.generation() !== generation;
    if (inFlight !== null && this.core.inFlight() !== inFlight) {
      const answered = event?.type === 'RefreshEnded' && event.attempt === inFlight;
      if (!answered && (event?.type === 'Timeout' || changed)) this.record({ type: 'RefreshAbandoned', attempt: inFlight });
    }
    if (event && event.type !== 'Timeout' && event.type !== 'SetToken') this.record(event);
    if (changed) {
      const t = this.core.token;
      const from = event?.type === 'RefreshEnded' ? event.attempt : null;
      this.record({ type: 'NewGeneration', generation: this.core.generation(), expires_at: t.expiresAt, from });
      this.onToken({ token: t.token, expiresAt: t.expiresAt });
    }
    if (asker !== null) {
      const type = answer.type === 'Send' ? 'Sent' : answer.type === 'Wait' ? 'Waiting' : 'Failed';
      this.record(type === 'Sent' ? { type, id: asker, generation: answer.lease.generation } : { type, id: asker });
    }
    // The planted bug leaves a timer's actions for the next input to drain.
    const starts = this.mutant === 'LazyDrain' && event?.type === 'Timeout' ? [] : this.drain();
    if (this.core.phase() !== phase) this.record({ type: 'PhaseChanged', phase: this.core.phase() });
    this.arm();
    // The refresher is the caller's code: it runs once this step is written
    // down and the timer armed, so a refresher that calls back into the
    // client finds a settled driver. Still in this same turn: "at once".
    for (const attempt of starts) this.call(attempt);
    return answer;
  }

  /** Carries out every action; returns the attempts whose refresher is to be called. */
  drain() {
    const starts = [];
    for (let a = this.core.pollAction(); a; a = this.core.pollAction()) {
      if (a.type === 'StartRefresh') {
        this.record({ type: 'RefreshStarted', attempt: a.attempt });
        starts.push(a.attempt);
        if (this.mutant === 'CallRefresherTwice') {
          this.record({ type: 'RefreshStarted', attempt: a.attempt });
          starts.push(a.attempt);
        }
      } else if (a.type === 'AbandonRefresh') {
        this.drop(a.attempt);
      } else if (a.type === 'Resume') {
        this.record({ type: 'Sent', id: a.id, generation: a.lease.generation });
        const w = this.waiting.get(a.id);
        this.waiting.delete(a.id);
        w?.resolve(a.lease);
      } else {
        this.record({ type: 'Failed', id: a.id });
        const w = this.waiting.get(a.id);
        this.waiting.delete(a.id);
        w?.reject(a.error);
      }
    }
    return starts;
  }

  /** Calls the refresher for `attempt` now and reports its answer, however late. */
  call(attempt) {
    const call = { dropped: false, canceller: new Canceller() };
    this.calls.set(attempt, call);
    let promise;
    try {
      promise = Promise.resolve(this.refresher(attempt, call.canceller.signal));
    } catch (e) {
      promise = Promise.reject(e);
    }
    promise.then(
      (fresh) => this.answered(attempt, call, true, {
        ok: { token: fresh.token, expiresAt: fresh.expiresAt ?? null },
      }),
      (err) => this.answered(attempt, call, false, err?.permanent ? { permanent: err } : { transient: err }),
    );
  }

  answered(attempt, call, ok, result) {
    this.calls.delete(attempt);
    if (call.dropped) return;
    this.step(() => this.core.refreshed(this.now(), attempt, result), { type: 'RefreshEnded', attempt, ok });
  }

  /** The core gave the call up for good: its answer is never reported. */
  drop(attempt) {
    const call = this.calls.get(attempt);
    if (!call || this.mutant === 'IgnoreAbandon') return;
    call.dropped = true;
    this.calls.delete(attempt);
    this.record({ type: 'RefreshDropped', attempt });
    call.canceller.abort();
  }

  arm() {
    const at = this.core.pollTimeout();
    if (at === this.timerAt) return;
    if (this.timer !== null) this.clock.clear(this.timer);
    this.timer = null;
    this.timerAt = at;
    if (at !== null) {
      this.timer = this.clock.set(at, () => {
        this.timer = null;
        this.timerAt = null;
        this.tick();
      });
    }
  }

  /** Timers are due (or the app came back to the foreground): let the core look at the time. */
  tick() {
    this.step(() => this.core.timeout(this.now()), { type: 'Timeout' });
  }

  /** A token from elsewhere (a login, or storage at start-up). */
  setToken(fresh) {
    this.step(() => this.core.setToken(this.now(), { token: fresh.token, expiresAt: fresh.expiresAt ?? null }), { type: 'SetToken' });
  }

  /** The caller knows the token is bad (e.g. logged out elsewhere). */
  invalidate() {
    const generation = this.core.generation();
    this.step(() => this.core.invalidate(this.now(), generation), { type: 'Invalidated', generation });
  }

  /**
   * One logical request. `send(lease, signal)` puts it on the wire and
   * resolves with `{expired: true}` when the server rejected the token,
   * or `{value}`; it rejects on a transport failure.
   */
  async request(send, signal) {
    const id = this.nextId++;
    const live = { ended: false };
    const end = (type) => {
      if (!live.ended) this.record({ type, id });
      live.ended = true;
    };
    this.record({ type: 'Arrived', id });
    let next = this.step(() => this.core.acquire(this.now(), id), null, id);
    let slot = null;
    try {
      for (;;) {
        if (next.type === 'Fail') {
          live.ended = true; // the core's answer is already written down
          throw next.error;
        }
        const lease = next.type === 'Send' ? next.lease : await this.wait(id, signal, live);
        const holdSlot = this.mutant === 'RefreshBehindLimiter';
        if (this.limiter && !slot) slot = await this.limiter.take(signal);
        if (signal?.aborted) throw new Cancelled(signal.reason);
        // A lease that went bad while the request queued for a connection
        // slot is handed back as rejected, never sent (S5).
        if (!this.core.leaseUsable(this.now(), lease)) {
          next = this.rejected(id, lease);
          if (!holdSlot) { slot?.(); slot = null; }
          continue;
        }
        let outcome;
        try {
          outcome = await send(lease, signal);
        } catch (e) {
          if (signal?.aborted) throw new Cancelled(signal.reason);
          throw e instanceof TransportError ? e : new TransportError(e);
        } finally {
          if (!holdSlot) { slot?.(); slot = null; }
        }
        if (!outcome.expired) {
          end('Completed');
          return outcome.value;
        }
        next = this.rejected(id, outcome.lease ?? lease);
      }
    } catch (e) {
      end(e instanceof Cancelled ? 'Cancelled' : 'Failed');
      throw e;
    } finally {
      slot?.();
    }
  }

  rejected(id, lease) {
    return this.step(() => this.core.reject(this.now(), id, lease), { type: 'Rejected', id, generation: lease.generation }, id);
  }

  /** Waits for the Resume or Fail naming `id`; a cancel removes the waiter from the core. */
  wait(id, signal, live) {
    return new Promise((resolve, reject) => {
      const off = onAbort(signal, () => {
        if (this.mutant === 'CancelForgetsCore') {
          live.ended = true;
          this.record({ type: 'Cancelled', id });
          this.waiting.set(id, { resolve: () => {}, reject: () => {} });
          reject(new Cancelled(signal.reason));
          return;
        }
        if (!this.waiting.has(id)) return;
        this.waiting.delete(id);
        this.step(() => this.core.cancel(this.now(), id), null);
        reject(new Cancelled(signal.reason));
      });
      this.waiting.set(id, {
        resolve: (lease) => { off(); resolve(lease); },
        reject: (e) => { off(); live.ended = true; reject(e); },
      });
    });
  }

  /** How many sends a request gets at most (for the judge's limits). */
  maxSends() {
    return maxSends(this.core.config);
  }
}
