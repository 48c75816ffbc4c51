// A random world for the wx client, drawn from a seed: sessions of random
// lives that the backend may also end early, latency, lost requests, logins
// that fail or hang, bursts, page unloads and the app going to the
// background.

import { createWxClient } from '../../src/wx.js';
import { MUTANT } from '../../src/mutants.js';
import { Rng } from './rng.js';
import { appLogin, Backend, fakeWx, World } from './world.js';

const S = 1_000_000_000n;
const API = 'https://api.example.com/items';

/** Runs world `seed` to its end: {client, settled (outcome kinds, or null if one never ended), outcomes}. */
export async function randomRun(seed, mutant = null) {
  const rng = new Rng(seed);
  const world = new World();
  const fail = rng.below(30) / 100;
  const backend = new Backend(world, {
    ttlMs: 5_000 + rng.below(60_000),
    expiredAs: rng.chance(0.5) ? 'body' : 'status',
    loginFails: () => rng.chance(fail),
  });
  const wx = fakeWx(world, backend, {
    latencyMs: () => 5 + rng.below(rng.chance(0.1) ? 3_000 : 200),
    loginMs: () => 10 + rng.below(rng.chance(0.1) ? 20_000 : 300),
    loginFails: () => rng.chance(fail / 2),
    dropped: () => rng.chance(0.02),
  });
  const client = createWxClient({
    wx,
    login: appLogin,
    clock: world.clock,
    history: true,
    ...(mutant ? { [MUTANT]: mutant } : {}),
    config: {
      seed: rng.u64(),
      refreshTimeout: BigInt(1 + rng.below(5)) * S,
      refreshAbandonAfter: BigInt(6 + rng.below(10)) * S,
      maxWaiters: rng.chance(0.2) ? 3 : 1 << 17,
      cooldown: BigInt(1 + rng.below(10)) * S,
    },
  });
  const pages = [];
  const outcomes = [];
  for (let t = 0; t < 120_000; t += rng.below(2_000)) {
    world.at(BigInt(t) * 1_000_000n, () => {
      const what = rng.below(100);
      if (what < 5) {
        backend.expireNow();
      } else if (what < 8 && pages.length > 0) {
        pages.splice(rng.below(pages.length), 1)[0].unload();
      } else if (what < 10) {
        wx.hide();
        world.after(rng.below(30_000), () => wx.show());
      } else {
        const page = rng.chance(0.3) ? client.scope() : null;
        if (page) pages.push(page);
        const n = rng.chance(0.1) ? 10 + rng.below(20) : 1;
        for (let i = 0; i < n; i++) {
          outcomes.push((page ?? client).request({ url: API }).then(() => 'ok', (e) => e.kind));
        }
      }
    });
  }
  await world.run({ maxEvents: 200_000 });
  if (world.hidden) wx.show();
  await world.run({ maxEvents: 200_000 });
  const settled = await Promise.race([Promise.all(outcomes), new Promise((r) => setImmediate(() => r(null)))]);
  return { client, settled, outcomes: outcomes.length };
}

