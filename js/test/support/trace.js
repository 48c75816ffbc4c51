// Runs a script of ITF inputs on the JS core and writes the ITF states it
// reaches, exactly as the reference core's vectors and oracle do.

import { Core } from '../../src/core.js';
import { MUTANT } from '../../src/mutants.js';
import { actionValue, getOption, int, nextValue, option, variant } from '../../src/itf.js';

const DURATIONS = {
  refresh_timeout: 'refreshTimeout',
  refresh_abandon_after: 'refreshAbandonAfter',
  backoff_initial: 'backoffInitial',
  backoff_max: 'backoffMax',
  cooldown: 'cooldown',
  expiry_skew: 'expirySkew',
  skew_jitter: 'skewJitter',
  safety_margin: 'safetyMargin',
};

/** An ITF config record (durations `<name>_ns` or `<name>_ms`, decoded) as a JS config. */
export function configFromItf(c) {
  const out = {
    // Beyond 2^53 waiters no run can tell the difference.
    maxWaiters: Number(c.max_waiters > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : c.max_waiters),
    maxAuthRetries: Number(c.max_auth_retries),
    maxRefreshAttempts: Number(c.max_refresh_attempts),
    seed: c.seed,
  };
  for (const [name, js] of Object.entries(DURATIONS)) {
    if (c[`${name}_ns`] !== undefined) out[js] = c[`${name}_ns`];
    else if (c[`${name}_ms`] !== undefined) out[js] = c[`${name}_ms`] * 1_000_000n;
  }
  return out;
}

/** A JS config as the oracle's config record (every field, `_ns`). */
export function configToItf(c) {
  const out = {
    max_waiters: int(c.maxWaiters),
    max_auth_retries: int(c.maxAuthRetries),
    max_refresh_attempts: int(c.maxRefreshAttempts),
    seed: int(c.seed),
  };
  for (const [name, js] of Object.entries(DURATIONS)) {
    if (c[js] !== undefined) out[`${name}_ns`] = int(c[js]);
  }
  return out;
}

function observe(core, now, input, answer) {
  const actions = [];
  for (let a = core.pollAction(); a; a = core.pollAction()) actions.push(actionValue(a));
  return {
    now: int(now),
    input,
    answer,
    actions,
    timeout: option(core.pollTimeout()),
    phase: core.phase(),
    generation: int(core.generation()),
    waiters: int(core.waiters()),
    outstanding: option(core.outstandingCall()),
    valid_until: option(core.snapshot()?.validUntil ?? null),
  };
}

function fresh(v) {
  return { token: v.token, expiresAt: getOption(v.expires_at) };
}

/** Feeds one decoded ITF input to the core; returns the ITF answer. */
export function apply(core, now, input) {
  const v = input.value;
  switch (input.tag) {
    case 'Acquire':
      return nextValue(core.acquire(now, v.id));
    case 'Reject':
      return nextValue(core.reject(now, v.id, { token: v.token, generation: v.generation, send: Number(v.send) }));
    case 'Cancel':
      return variant('Cancelled', { was_waiting: core.cancel(now, v.id) });
    case 'Refreshed': {
      const r = v.result;
      const result = r.tag === 'Ok' ? { ok: fresh(r.value) }
        : r.tag === 'Transient' ? { transient: r.value.error } : { permanent: r.value.error };
      core.refreshed(now, v.attempt, result);
      return variant('None');
    }
    case 'Timeout':
      core.timeout(now);
      return variant('None');
    case 'SetToken':
      core.setToken(now, fresh(v));
      return variant('None');
    case 'Invalidate':
      core.invalidate(now, v.generation);
      return variant('None');
    default:
      throw new Error(`unknown input ${input.tag}`);
  }
}

/**
 * Runs `steps` ([{now, input}] decoded, with `input` also kept raw as
 * `raw` when given) on a fresh core; returns the ITF states (state 0 =
 * Init). `init` is the raw Init value to echo.
 */
export function runScript(config, steps, { mutant = null, init = null, rawInputs = null } = {}) {
  const core = new Core(config, mutant ? { [MUTANT]: mutant } : {});
  const states = [observe(core, 0n, init ?? variant('Init', { config: configToItf(core.config) }), variant('None'))];
  steps.forEach((s, i) => {
    const answer = apply(core, s.now, s.input);
    states.push(observe(core, s.now, rawInputs ? rawInputs[i] : encodeInput(s.input), answer));
  });
  return states;
}

/** Re-encodes a decoded ITF value (BigInt back to {"#bigint"}). */
export function encodeInput(v) {
  return JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? int(x) : x)));
}
