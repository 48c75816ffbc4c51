// The fetch front-end on the simulated backend, judged like the wx one.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createFetchClient } from '../src/fetch.js';
import { LoginRefused } from '../src/fresh.js';
import { Canceller } from '../src/signal.js';
import { assertJudged } from './support/judge.js';
import { Backend, World } from './support/world.js';

function setup({ latencyMs = 20, refreshFails = () => false } = {}) {
  const world = new World();
  const server = new Backend(world, { expiredAs: 'status' });
  const fetch = (url, init) => new Promise((resolve, reject) => {
    const ev = world.after(latencyMs, () => {
      const r = server.handle({ url, header: { Authorization: new Headers(init.headers).get('authorization') } });
      resolve(new Response(JSON.stringify(r.data), { status: r.statusCode }));
    });
    init.signal?.addEventListener('abort', () => {
      world.cancel(ev);
      reject(new DOMException('aborted', 'AbortError'));
    });
  });
  let refreshes = 0;
  const refresh = () => new Promise((resolve, reject) => world.after(30, () => {
    refreshes += 1;
    const fails = refreshFails(refreshes);
    if (fails === 'permanent') return reject(new LoginRefused());
    if (fails) return reject(new Error('503'));
    const r = server.handle({ url: '/login' });
    resolve({ token: r.data.token, expiresIn: r.data.expiresIn });
  }));
  const client = createFetchClient({ fetch, refresh, clock: world.clock, history: true });
  return { world, server, client, refreshes: () => refreshes };
}

test('fetch: a burst on an expired token refreshes once and retries every 401', async () => {
  const { world, server, client, refreshes } = setup();
  const first = client.fetch('https://api.example.com/a');
  await world.run();
  assert.equal((await first).status, 200);
  server.expireNow();
  const all = Promise.all(Array.from({ length: 30 }, () => client.fetch('https://api.example.com/a')));
  await world.run();
  assert.ok((await all).every((r) => r.status === 200));
  assert.equal(refreshes(), 2);
  assertJudged(client.history());
});

test('fetch: a refused refresh fails every waiter with LoginRequired', async () => {
  const { world, client } = setup({ refreshFails: () => 'permanent' });
  const all = Promise.allSettled([client.fetch('https://api.example.com/a'), client.fetch('https://api.example.com/b')]);
  await world.run();
  for (const r of await all) assert.equal(r.reason.kind, 'LoginRequired');
  assertJudged(client.history());
});

test('fetch: an AbortSignal cancels a waiting request', async () => {
  const { world, client } = setup();
  const c = new Canceller();
  const p = client.fetch('https://api.example.com/a', { signal: c.signal });
  p.catch(() => {});
  await world.run({ untilMs: 5 });
  c.abort();
  await world.run();
  await assert.rejects(p, (e) => e.kind === 'Cancelled');
  assertJudged(client.history());
});
