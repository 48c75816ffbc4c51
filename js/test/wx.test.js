// The wx.request front-end under a simulated WeChat: outcomes asserted, and
// every run's recorded history passed to the reference judge.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createWxClient } from '../src/wx.js';
import { assertJudged } from './support/judge.js';
import { appLogin, Backend, fakeWx, World } from './support/world.js';

const API = 'https://api.example.com/items';
const S = 1_000_000_000n;

/** A world, its backend and wx, and a client on them. */
export function setup({ backend = {}, wx = {}, client = {} } = {}) {
  const world = new World();
  const server = new Backend(world, backend);
  const fwx = fakeWx(world, server, wx);
  const make = (extra = {}) => createWxClient({ wx: fwx, login: appLogin, clock: world.clock, history: true, ...client, ...extra });
  return { world, server, wx: fwx, client: make(), make };
}

/** Starts `n` requests; their settled outcomes once the world has run. */
async function burst(world, client, n, { untilMs } = {}) {
  const all = [];
  for (let i = 0; i < n; i++) all.push(client.request({ url: API, data: { i } }));
  const settled = Promise.allSettled(all);
  await world.run({ untilMs });
  return settled;
}

const ok = (results) => results.filter((r) => r.status === 'fulfilled' && r.value?.data?.success).length;

test('cold start: one wx.login for every request; the session is stored, so the next launch does not log in', async () => {
  const { world, wx, client, make, server } = setup();
  const results = await burst(world, client, 3);
  assert.equal(ok(results), 3);
  assert.equal(wx.logins, 1);
  assert.equal(server.logins, 1);
  assert.equal(wx.storage.get('tokenflight.session').token, 's1');
  assertJudged(client.history());

  const relaunched = make();
  const again = await burst(world, relaunched, 2);
  assert.equal(ok(again), 2);
  assert.equal(wx.logins, 1, 'no second login after a relaunch');
  assertJudged(relaunched.history());
});

for (const expiredAs of ['body', 'status']) {
  test(`a burst of 25 after the session expired (${expiredAs === 'body' ? "code '0002'" : 'HTTP 401'}): one login, all retried, never more than 10 wx.request`, async () => {
    const { world, wx, client, server } = setup({ backend: { expiredAs }, wx: { latencyMs: () => 50 } });
    await burst(world, client, 1);
    server.expireNow();
    const results = await burst(world, client, 25);
    assert.equal(ok(results), 25, JSON.stringify(results.filter((r) => r.status === 'rejected')));
    assert.equal(server.logins, 2, 'one login at start, one for the expiry');
    assert.ok(wx.maxActive <= 10, `${wx.maxActive} concurrent wx.request`);
    assert.equal(wx.overLimit, 0);
    assertJudged(client.history());
  });
}

test('the login gets its own connection while requests hold all the others', async () => {
  const { world, wx, client, server } = setup({ wx: { latencyMs: (url) => (url.endsWith('slow') ? 5_000 : 10) } });
  await burst(world, client, 1);
  const slow = [];
  for (let i = 0; i < 10; i++) slow.push(client.request({ url: `${API}/slow` }));
  const settled = Promise.allSettled(slow);
  await world.run({ untilMs: world.nowMs() + 100 });
  assert.equal(wx.active, 9, 'requests use 9 connections, the tenth waits');
  client.logout();
  await world.run({ untilMs: world.nowMs() + 200 });
  assert.equal(server.logins, 2, 'the login ran while 9 requests held their connections');
  assert.equal(wx.active, 9);
  await world.run();
  assert.equal(ok(await settled), 10);
  assert.equal(wx.overLimit, 0);
  assertJudged(client.history());
});

test('a stale rejection after the login finished is retried with the new session, not a second login', async () => {
  const { world, client, server } = setup({ wx: { latencyMs: (url) => (url.endsWith('slow') ? 500 : 20) } });
  await burst(world, client, 1);
  const slow = client.request({ url: `${API}/slow` });
  await world.run({ untilMs: world.nowMs() + 5 });
  server.expireNow();
  const fast = client.request({ url: API });
  await world.run();
  assert.equal((await fast).data.success, true);
  assert.equal((await slow).data.success, true);
  assert.equal(server.logins, 2, 'the slow request\'s stale rejection started no login');
  assertJudged(client.history());
});

test('the backend refusing every login: every request fails with a typed error, none hangs; it recovers after the cool-down', async () => {
  let failing = true;
  const { world, client, server } = setup({ backend: { loginFails: () => failing } });
  const results = await burst(world, client, 5);
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.equal(r.reason.kind, 'RefreshUnavailable');
  }
  assert.equal(server.logins, 3, 'max_refresh_attempts logins, then it gives up');
  failing = false;
  await world.run({ untilMs: world.nowMs() + 20_000 });
  const later = await burst(world, client, 2);
  assert.equal(ok(later), 2);
  assertJudged(client.history());
});

test('wx.login failing: transient, retried with back-off, then every waiter gets its answer', async () => {
  const { world, wx, client } = setup({ wx: { loginFails: (n) => n <= 2 } });
  const results = await burst(world, client, 4);
  assert.equal(ok(results), 4);
  assert.equal(wx.logins, 3);
  assertJudged(client.history());
});

test('a session the backend rejects on every send: AuthRejected after the retry cap, no endless loop', async () => {
  const { world, client, server } = setup({ backend: { rejectAll: () => true } });
  const [r] = await burst(world, client, 1);
  assert.equal(r.status, 'rejected');
  assert.equal(r.reason.kind, 'AuthRejected');
  assert.equal(r.reason.sends, 3);
  assert.ok(server.logins <= 3, `${server.logins} logins`);
  assertJudged(client.history());
});

test('the app hidden mid-login: its timers stop; on return the hung login is abandoned, its request aborted, and a new one succeeds', async () => {
  let logins = 0;
  const { world, wx, client } = setup({
    wx: { latencyMs: (url) => (url.endsWith('/login') && ++logins === 1 ? 1_000_000 : 20) },
    client: { config: { refreshTimeout: 2n * S, refreshAbandonAfter: 4n * S } },
  });
  const pending = Promise.allSettled([client.request({ url: API }), client.request({ url: API })]);
  await world.run({ untilMs: 100 });
  wx.hide();
  await world.run({ untilMs: 10_000 });
  assert.equal(client.driver.core.outstandingCall(), 1n, 'nothing timed out while hidden');
  wx.show();
  await world.run({ untilMs: 20_000 });
  assert.equal(ok(await pending), 2);
  assert.equal(wx.logins, 2);
  assert.equal(wx.active, 0, 'the abandoned login request was aborted');
  assertJudged(client.history());
});

test('refresh ahead of expiry: requests keep going with the current session while the login runs in the background', async () => {
  const { world, wx, client, server } = setup({ wx: { loginMs: 500 } });
  await burst(world, client, 1);
  await world.run({ untilMs: 45_000 });
  const sent = wx.requests;
  const all = [];
  for (let i = 0; i < 5; i++) all.push(client.request({ url: API }));
  const settled = Promise.allSettled(all);
  await world.run({ untilMs: world.nowMs() + 100 });
  assert.equal(server.logins, 1, 'the login is still running');
  assert.equal(client.driver.core.waiters(), 0, 'nobody waits while the session is usable');
  assert.ok(wx.requests >= sent + 5, 'all five went out at once');
  await world.run({ untilMs: world.nowMs() + 2_000 });
  assert.equal(ok(await settled), 5);
  assert.equal(server.logins, 2, 'one login ahead of expiry');
  assert.equal(client.driver.core.generation(), 2n);
  assertJudged(client.history());
});

test('a wx.login that answers after its call was given up on goes no further', async () => {
  const { world, wx, client, server } = setup({
    wx: { loginMs: (n) => (n === 1 ? 10_000 : 30) },
    client: { config: { refreshTimeout: 2n * S, refreshAbandonAfter: 4n * S } },
  });
  const pending = Promise.allSettled([client.request({ url: API }), client.request({ url: API })]);
  await world.run({ untilMs: 30_000 });
  assert.equal(ok(await pending), 2);
  assert.equal(wx.logins, 2);
  assert.equal(server.logins, 1, 'only the live call reached the backend');
  assert.equal(wx.requests, 3, 'two requests and one login request: the abandoned call sent nothing');
  assertJudged(client.history());
});

test('page unload cancels its waiting requests with a typed error; the others go on', async () => {
  const { world, client } = setup({ wx: { loginMs: 200 } });
  const page = client.scope();
  const mine = Promise.allSettled([page.request({ url: API }), page.request({ url: API })]);
  const other = client.request({ url: API });
  await world.run({ untilMs: 50 });
  assert.equal(client.driver.core.waiters(), 3);
  page.unload();
  await world.run();
  for (const r of await mine) assert.equal(r.reason?.kind, 'Cancelled');
  assert.equal((await other).data.success, true);
  assert.equal(client.driver.core.waiters(), 0);
  assertJudged(client.history());
});

test('cancelling a request in flight aborts its wx.request task', async () => {
  const { world, wx, client } = setup({ wx: { latencyMs: () => 1_000 } });
  await burst(world, client, 1);
  const page = client.scope();
  const p = page.request({ url: API });
  p.catch(() => {});
  await world.run({ untilMs: world.nowMs() + 10 });
  assert.equal(wx.active, 1);
  page.unload();
  await world.run();
  await assert.rejects(p, (e) => e.kind === 'Cancelled');
  assert.equal(wx.active, 0);
  assertJudged(client.history());
});

test('a transport failure is a typed TransportError, not undefined', async () => {
  const { world, client } = setup({ wx: { dropped: (i) => i === 2 } });
  const [a, b] = await burst(world, client, 2);
  const errs = [a, b].filter((r) => r.status === 'rejected');
  assert.equal(errs.length, 1);
  assert.equal(errs[0].reason.kind, 'Transport');
  assertJudged(client.history());
});
