// Runs of the wx client under the simulated WeChat that reach every part of
// the driving contract; each yields its recorded history for the judge.
// Used to show that the judge catches planted bugs in the core and in the
// front-end.

import { createWxClient } from '../../src/wx.js';
import { MUTANT } from '../../src/mutants.js';
import { appLogin, Backend, fakeWx, World } from './world.js';
import { randomRun } from './random-world.js';

const API = 'https://api.example.com/items';
const S = 1_000_000_000n;

function setup(mutant, { backend = {}, wx = {}, config = {} } = {}) {
  const world = new World();
  const server = new Backend(world, backend);
  const fwx = fakeWx(world, server, wx);
  const client = createWxClient({ wx: fwx, login: appLogin, clock: world.clock, history: true, config, ...(mutant ? { [MUTANT]: mutant } : {}) });
  const send = (url = API, extra = {}) => client.request({ url, ...extra }).catch((e) => e);
  return { world, server, wx: fwx, client, send };
}

const BOUND = { maxEvents: 3_000 };

export const scenarios = {
  async burstAfterExpiry(mutant) {
    const s = setup(mutant, { wx: { latencyMs: () => 50 } });
    s.send();
    await s.world.run(BOUND);
    s.server.expireNow();
    for (let i = 0; i < 25; i++) s.send();
    // The watchdog: a healthy backend answers the whole burst well within
    // 5 s, so the run is judged complete (L1) then.
    await s.world.run({ ...BOUND, untilMs: s.world.nowMs() + 5_000 });
    return s.client.history();
  },
  async staleRejection(mutant) {
    const s = setup(mutant, { wx: { latencyMs: (url) => (url.endsWith('slow') ? 500 : 20) } });
    s.send();
    await s.world.run(BOUND);
    s.send(`${API}/slow`);
    s.send(`${API}/slow`);
    await s.world.run({ ...BOUND, untilMs: s.world.nowMs() + 5 });
    s.server.expireNow();
    s.send();
    await s.world.run(BOUND);
    s.send();
    await s.world.run(BOUND);
    return s.client.history();
  },
  async refusedLogins(mutant) {
    let failing = true;
    const s = setup(mutant, { backend: { loginFails: () => failing } });
    for (let i = 0; i < 3; i++) s.send();
    await s.world.run(BOUND);
    failing = false;
    await s.world.run({ ...BOUND, untilMs: s.world.nowMs() + 20_000 });
    s.send();
    await s.world.run(BOUND);
    return s.client.history();
  },
  async flakyWxLogin(mutant) {
    const s = setup(mutant, { wx: { loginFails: (n) => n <= 2 } });
    for (let i = 0; i < 3; i++) s.send();
    await s.world.run(BOUND);
    return s.client.history();
  },
  async rejectEverything(mutant) {
    const s = setup(mutant, { backend: { rejectAll: () => true } });
    s.send();
    await s.world.run(BOUND);
    return s.client.history();
  },
  async cancelWaiters(mutant) {
    const s = setup(mutant, { wx: { loginMs: 200 } });
    const page = s.client.scope();
    page.request({ url: API }).catch(() => {});
    s.send();
    s.send();
    await s.world.run({ ...BOUND, untilMs: 50 });
    page.unload();
    await s.world.run(BOUND);
    return s.client.history();
  },
  async fewWaiters(mutant) {
    const s = setup(mutant, { config: { maxWaiters: 2 } });
    for (let i = 0; i < 5; i++) s.send();
    await s.world.run(BOUND);
    return s.client.history();
  },
  async lateLogin(mutant) {
    let logins = 0;
    const s = setup(mutant, {
      wx: { latencyMs: (url) => (url.endsWith('/login') && ++logins === 1 ? 3_000 : 20) },
      config: { refreshTimeout: 1n * S },
    });
    s.send();
    s.send();
    await s.world.run(BOUND);
    s.send();
    await s.world.run(BOUND);
    return s.client.history();
  },
  async refreshAhead(mutant) {
    const s = setup(mutant, { wx: { loginMs: 500 } });
    s.send();
    await s.world.run({ ...BOUND, untilMs: 45_000 });
    for (let i = 0; i < 5; i++) s.send();
    await s.world.run(BOUND);
    return s.client.history();
  },
  async hiddenMidLogin(mutant) {
    let logins = 0;
    const s = setup(mutant, {
      wx: { latencyMs: (url) => (url.endsWith('/login') && ++logins === 1 ? 1_000_000 : 20) },
      config: { refreshTimeout: 2n * S, refreshAbandonAfter: 4n * S },
    });
    s.send();
    s.send();
    await s.world.run({ ...BOUND, untilMs: 100 });
    s.wx.hide();
    await s.world.run({ ...BOUND, untilMs: 10_000 });
    s.wx.show();
    await s.world.run({ ...BOUND, untilMs: 20_000 });
    return s.client.history();
  },
  randomWorld1: async (mutant) => (await randomRun(1, mutant)).client.history(),
  randomWorld2: async (mutant) => (await randomRun(2, mutant)).client.history(),
  randomWorld3: async (mutant) => (await randomRun(3, mutant)).client.history(),
};
