// The core's driving contract, as the README shows it.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Core } from '../src/core.js';
import { ConfigError } from '../src/config.js';

test('README example: a cold start, one refresh, a rejection that waits for the next', () => {
  const core = new Core();
  const t0 = 0n;
  // No token yet: the first request waits and a refresh starts.
  assert.deepEqual(core.acquire(t0, 1n), { type: 'Wait' });
  const start = core.pollAction();
  assert.equal(start.type, 'StartRefresh');
  // The refresher answers; the waiter is resumed with the new token.
  core.refreshed(t0, start.attempt, { ok: { token: 'abc', expiresAt: null } });
  const resume = core.pollAction();
  assert.equal(resume.type, 'Resume');
  assert.deepEqual(resume.lease, { token: 'abc', generation: 1n, send: 1 });
  // The server rejects it; the retry waits for the one refresh.
  assert.deepEqual(core.reject(t0, 1n, resume.lease), { type: 'Wait' });
  assert.equal(core.pollAction().type, 'StartRefresh');
  assert.equal(core.pollAction(), null);
});

test('a refresh ahead of expiry: the request is sent and the refresh runs in the background', () => {
  const S = 1_000_000_000n;
  const core = new Core({ skewJitter: 0n });
  core.setToken(0n, { token: 't1', expiresAt: 100n * S });
  const next = core.acquire(80n * S, 1n);
  assert.equal(next.type, 'Send');
  assert.equal(core.pollAction().type, 'StartRefresh');
  assert.equal(core.phase(), 'Refreshing');
  assert.equal(core.acquire(81n * S, 2n).type, 'Send', 'nobody waits while the token is usable');
});

test('a configuration that cannot work is refused with its kind', () => {
  assert.throws(() => new Core({ maxWaiters: 0 }), (e) => e instanceof ConfigError && e.kind === 'NoWaiters');
  assert.throws(() => new Core({ refreshAbandonAfter: 1n }), (e) => e.kind === 'AbandonBeforeTimeout');
  assert.throws(() => new Core({ cooldown: 5 }), (e) => e.kind === 'Type', 'milliseconds as a number are refused');
});
