// The seed recipe, ported faithfully, judged by the same judge: it fails
// with the rules its known bugs break. Each scenario also runs on the wx
// client, which passes.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createWxClient } from '../src/wx.js';
import { createRecipe } from './support/recipe.js';
import { assertCaught, assertJudged } from './support/judge.js';
import { appLogin, Backend, fakeWx, World } from './support/world.js';

const API = 'https://api.example.com/items';

/** The same world twice: once for the recipe, once for the wx client. */
function both(opts, scenario) {
  const make = () => {
    const world = new World();
    const server = new Backend(world, opts.backend);
    const wx = fakeWx(world, server, opts.wx);
    return { world, server, wx };
  };
  return {
    async recipe() {
      const w = make();
      const recipe = createRecipe({ wx: w.wx, world: w.world });
      const send = (url = API) => recipe.request({ data: {} }, url);
      const login = async () => {
        const res = await appLogin({ code: 'c0', request: (o) => new Promise((resolve) => w.wx.request({ ...o, success: resolve })) });
        recipe.loggedIn(res.token);
      };
      await scenario({ ...w, send, login });
      return { ...w, history: recipe.history() };
    },
    async client() {
      const w = make();
      const client = createWxClient({ wx: w.wx, login: appLogin, clock: w.world.clock, history: true });
      const send = (url = API) => client.request({ url, data: {} }).catch((e) => e);
      await scenario({ ...w, send, login: () => send() });
      return { ...w, history: client.history() };
    },
  };
}

const slowFor = (suffix, ms, base = 20) => (url) => (url.endsWith(suffix) ? ms : base);

test('recipe: a stale "expired" after the refresh finished starts a second refresh (S2); the client does not', async () => {
  const run = both({ wx: { latencyMs: slowFor('slow', 500) } }, async ({ world, server, send, login }) => {
    const first = login();
    await world.run();
    await first;
    const slow = send(`${API}/slow`);
    await world.run({ untilMs: world.nowMs() + 5 });
    server.expireNow();
    const fast = send();
    await world.run();
    await Promise.all([slow, fast]);
  });
  const recipe = await run.recipe();
  assert.equal(recipe.server.logins, 3, 'the recipe logs in twice for one expiry');
  console.log('recipe, stale expired: judge fails', assertCaught(recipe.history, ['S2']));
  const client = await run.client();
  assert.equal(client.server.logins, 2);
  assertJudged(client.history);
});

test('recipe: a refused login leaves every queued request hanging (L1/S3/S6); the client fails them with a typed error', async () => {
  let refuse = false;
  const run = both({ backend: { loginFails: () => refuse } }, async ({ world, server, send, login }) => {
    const first = login();
    await world.run();
    await first;
    refuse = true;
    server.expireNow();
    const all = [send(), send(), send()];
    await world.run({ untilMs: world.nowMs() + 120_000 });
    return all;
  });
  const recipe = await run.recipe();
  const rules = assertCaught(recipe.history, ['L1', 'S3', 'S6']);
  assert.ok(rules === null || rules.includes('L1'), `${rules}`);
  console.log('recipe, refused login: judge fails', rules);
  refuse = false;
  const client = await run.client();
  assertJudged(client.history);
});

test('recipe: a token the backend keeps rejecting is retried without bound (S4); the client stops at the cap', async () => {
  let reject = false;
  const run = both({ backend: { rejectAll: () => reject } }, async ({ world, send, login }) => {
    const first = login();
    await world.run();
    await first;
    reject = true;
    send();
    // The recipe never stops on its own: the run is cut after a bounded number of events.
    await world.run({ maxEvents: 400 });
  });
  const recipe = await run.recipe();
  assert.ok(recipe.wx.requests > 20, `${recipe.wx.requests} requests`);
  console.log('recipe, endless retry: judge fails', assertCaught(recipe.history.split('\n').slice(0, 200).join('\n') + '\n', ['S4', 'S7']));
  reject = false;
  const client = await run.client();
  assertJudged(client.history);
});

test('recipe: a request started while refreshing goes out with the rejected token (S5); the client holds it', async () => {
  const run = both({ wx: { loginMs: 300 } }, async ({ world, server, send, login }) => {
    const first = login();
    await world.run();
    await first;
    server.expireNow();
    const a = send();
    await world.run({ untilMs: world.nowMs() + 100 });
    const b = send();
    await world.run();
    await Promise.all([a, b]);
  });
  const recipe = await run.recipe();
  console.log('recipe, send while refreshing: judge fails', assertCaught(recipe.history, ['S5']));
  const client = await run.client();
  assertJudged(client.history);
});
