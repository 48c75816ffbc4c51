// Random input scripts for the differential test, in the oracle's encoding:
// {config, inputs: [{now, input}]}. A script is generated while a correct
// JS core runs it, so most inputs are the ones a driver would give (real
// leases, attempts that are out, timers when due), and some are forged
// (leases of any generation and send count, unknown ids and attempts,
// repeated answers, time going backwards).

import { Core } from '../../src/core.js';
import { subSat, U64_MAX } from '../../src/time.js';
import { int, option, variant } from '../../src/itf.js';
import { Rng } from './rng.js';
import { configToItf } from './trace.js';

const MS = 1_000_000n;

function duration(rng, scale) {
  if (rng.chance(0.02)) return U64_MAX - BigInt(rng.below(3));
  if (rng.chance(0.05)) return 0n;
  const ms = BigInt(rng.below(scale));
  return ms * MS + (rng.chance(0.5) ? BigInt(rng.below(1_000_000)) : 0n);
}

export function randomConfig(rng) {
  const backoffMax = duration(rng, 3000);
  let backoffInitial = duration(rng, 500);
  if (backoffInitial > backoffMax) backoffInitial = backoffMax;
  let refreshTimeout = duration(rng, 2000);
  if (refreshTimeout === 0n) refreshTimeout = 1n;
  const abandonAfter = rng.chance(0.02) ? refreshTimeout - 1n : refreshTimeout + duration(rng, 3000);
  return {
    refreshAbandonAfter: abandonAfter > U64_MAX ? U64_MAX : abandonAfter,
    safetyMargin: rng.chance(0.2) ? 0n : duration(rng, 3000),
    maxWaiters: rng.chance(0.3) ? 1 << 17 : 1 + rng.below(4),
    maxAuthRetries: rng.chance(0.05) ? 0xffff_ffff : rng.below(4),
    maxRefreshAttempts: rng.chance(0.05) ? 0xffff_ffff : 1 + rng.below(4),
    refreshTimeout,
    backoffInitial,
    backoffMax,
    cooldown: duration(rng, 5000),
    expirySkew: duration(rng, 3000),
    skewJitter: rng.chance(0.3) ? 0n : duration(rng, 2000),
    seed: rng.chance(0.2) ? BigInt(rng.below(3)) : rng.u64(),
  };
}

/** One random script: {config (JS), inputs (ITF, raw JSON)}. */
export function randomScript(seed, maxLen = 40) {
  const rng = new Rng(seed);
  const config = randomConfig(rng);
  // One script in four dwells on tokens that expire, refreshes ahead of
  // expiry that give up, and rejections naming waiting requests.
  const ahead = rng.chance(0.25);
  if (ahead) {
    config.maxRefreshAttempts = 1 + rng.below(2);
    config.expirySkew = BigInt(20 + rng.below(20)) * 1_000_000_000n;
  }
  let core;
  try {
    core = new Core(config);
  } catch {
    // An invalid configuration: both cores must refuse it.
    return { config, inputs: [] };
  }
  const leases = new Map(); // id -> lease last given
  const attempts = []; // attempts started
  let now = 0n;
  let nextId = 1n;
  let tokens = 0;
  const inputs = [];
  const len = 1 + rng.below(maxLen);
  const drain = () => {
    for (let a = core.pollAction(); a; a = core.pollAction()) {
      if (a.type === 'StartRefresh') attempts.push(a.attempt);
      if (a.type === 'Resume') leases.set(a.id, a.lease);
    }
  };
  const expiry = () => {
    if (!ahead && rng.chance(0.4)) return null;
    if (rng.chance(0.1)) return rng.chance(0.5) ? now : subSat(now, BigInt(rng.below(5)) * MS);
    const e = now + duration(rng, 60_000) + 1n;
    return e > U64_MAX ? U64_MAX : e;
  };
  if (ahead) {
    const expiresAt = BigInt(30 + rng.below(30)) * 1_000_000_000n;
    core.setToken(now, { token: 'login0', expiresAt });
    inputs.push({ now: int(now), input: variant('SetToken', { token: 'login0', expires_at: option(expiresAt) }) });
  }
  for (let i = 0; i < len; i++) {
    const due = core.pollTimeout();
    const r = rng.below(100);
    if (due !== null && r < 25) now = due > now ? due : now;
    else if (r < 30) now = now > 10n * MS ? now - BigInt(rng.below(10)) * MS : 0n;
    else if (r < 60) now += BigInt(rng.below(ahead ? 500 : 3000)) * MS + BigInt(rng.below(1000));
    else if (r < 65) now += ahead ? BigInt(rng.below(15_000)) * MS : duration(rng, 100_000);
    if (now > U64_MAX) now = U64_MAX;
    const kind = rng.weighted(ahead
      ? { Acquire: 30, Reject: 15, Cancel: 3, Refreshed: 25, Timeout: 20, SetToken: 2, Invalidate: 1 }
      : { Acquire: 30, Reject: 20, Cancel: 6, Refreshed: 22, Timeout: 12, SetToken: 5, Invalidate: 5 });
    let input;
    if (kind === 'Acquire') {
      const id = rng.chance(0.15) && nextId > 1n ? BigInt(1 + rng.below(Number(nextId - 1n))) : nextId++;
      const n = core.acquire(now, id);
      if (n.type === 'Send') leases.set(id, n.lease);
      input = variant('Acquire', { id: int(id) });
    } else if (kind === 'Reject') {
      let id;
      let lease;
      if (leases.size > 0 && rng.chance(ahead ? 0.15 : 0.85)) {
        id = rng.pick([...leases.keys()]);
        lease = leases.get(id);
      } else {
        const waiting = core.state.phase === 'Refreshing' ? [...core.state.waiters.keys()] : [];
        if (waiting.length > 0 && rng.chance(ahead ? 0.9 : 0.5)) id = rng.pick(waiting);
        else id = rng.chance(0.5) && nextId > 1n ? BigInt(1 + rng.below(Number(nextId - 1n))) : nextId++;
        const g = ahead ? core.generation() : core.generation() + BigInt(rng.below(3)) - 1n;
        lease = { token: `forged`, generation: g < 0n ? 0n : g, send: rng.chance(0.1) ? 0xffff_ffff : rng.below(5) };
      }
      const n = core.reject(now, id, lease);
      leases.delete(id);
      if (n.type === 'Send') leases.set(id, n.lease);
      input = variant('Reject', { id: int(id), token: lease.token, generation: int(lease.generation), send: int(lease.send) });
    } else if (kind === 'Cancel') {
      const id = nextId > 1n ? BigInt(1 + rng.below(Number(nextId - 1n) + 1)) : 1n;
      core.cancel(now, id);
      input = variant('Cancel', { id: int(id) });
    } else if (kind === 'Refreshed') {
      const out = core.outstandingCall();
      let attempt;
      if (out !== null && rng.chance(0.6)) attempt = out;
      else if (attempts.length > 0 && rng.chance(0.85)) attempt = rng.pick(attempts);
      else attempt = BigInt(rng.below(attempts.length + 3));
      const which = rng.weighted(ahead ? { Ok: 2, Transient: 6, Permanent: 1 } : { Ok: 6, Transient: 3, Permanent: 1 });
      let result;
      if (which === 'Ok') {
        const token = `t${++tokens}`;
        const e = expiry();
        core.refreshed(now, attempt, { ok: { token, expiresAt: e } });
        result = variant('Ok', { token, expires_at: option(e) });
      } else if (which === 'Transient') {
        core.refreshed(now, attempt, { transient: 'unavailable' });
        result = variant('Transient', { error: 'unavailable' });
      } else {
        core.refreshed(now, attempt, { permanent: 'invalid_grant' });
        result = variant('Permanent', { error: 'invalid_grant' });
      }
      input = variant('Refreshed', { attempt: int(attempt), result });
    } else if (kind === 'Timeout') {
      core.timeout(now);
      input = variant('Timeout');
    } else if (kind === 'SetToken') {
      const token = `login${++tokens}`;
      const e = expiry();
      core.setToken(now, { token, expiresAt: e });
      input = variant('SetToken', { token, expires_at: option(e) });
    } else {
      const g = core.generation() - BigInt(rng.below(3)) + 1n;
      core.invalidate(now, g < 0n ? 0n : g);
      input = variant('Invalidate', { generation: int(g < 0n ? 0n : g) });
    }
    drain();
    inputs.push({ now: int(now), input });
  }
  return { config, inputs };
}

/** The oracle's input line for a script. */
export function scriptLine(s) {
  return JSON.stringify({ config: configToItf(s.config), inputs: s.inputs });
}
