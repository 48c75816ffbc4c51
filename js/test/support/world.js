// A simulated mini-program world on a virtual clock: an event queue that
// always runs the earliest event (ties in the order scheduled), a fake `wx`
// (request with latency, failures and WeChat's 10-task limit; login;
// storage; app hide/show) and an app backend with expiring sessions.

const MS = 1_000_000n;

/** Lets every pending promise callback run (they all run before a macrotask). */
export const settle = () => new Promise((r) => setImmediate(r));

export class World {
  constructor() {
    this.t = 0n;
    this.q = [];
    this.seq = 0;
    this.hidden = false;
    this.suspended = [];
    this.clock = {
      now: () => this.t,
      set: (at, fn) => this.at(at, fn, { app: true }),
      clear: (h) => this.cancel(h),
    };
  }

  /** Runs `fn` at virtual time `at` (ns). App timers do not run while hidden. */
  at(at, fn, { app = false } = {}) {
    const ev = { at: at < this.t ? this.t : at, seq: this.seq++, fn, app, cancelled: false };
    this.q.push(ev);
    return ev;
  }

  after(ms, fn) {
    return this.at(this.t + BigInt(Math.round(ms * 1e6)), fn);
  }

  cancel(ev) {
    if (ev) ev.cancelled = true;
  }

  /** Runs events in time order until none is left (or `untilMs`, or `maxEvents`). */
  async run({ untilMs = Infinity, maxEvents = 100_000 } = {}) {
    const until = untilMs === Infinity ? null : BigInt(untilMs) * MS;
    await settle();
    for (let n = 0; n < maxEvents; n++) {
      this.q = this.q.filter((e) => !e.cancelled);
      if (this.q.length === 0) break;
      this.q.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.seq - b.seq));
      const ev = this.q[0];
      if (until !== null && ev.at > until) {
        this.t = until;
        break;
      }
      this.q.shift();
      this.t = ev.at;
      if (ev.app && this.hidden) {
        this.suspended.push(ev);
        continue;
      }
      ev.fn();
      await settle();
    }
    if (until !== null && this.t < until) this.t = until;
  }

  nowMs() {
    return Number(this.t / MS);
  }
}

/**
 * The app's backend: `/login` trades a wx.login code for a session that
 * lives `ttlMs`; a newer login ends the older session (one session per
 * user). Other URLs answer 200 with `{success: true}` to a live session,
 * and "expired" otherwise, as `expiredAs` says: 'body' (the recipe's
 * `{code: '0002', success: false}`) or 'status' (HTTP 401).
 */
export class Backend {
  constructor(world, { ttlMs = 60_000, expiredAs = 'body', loginFails = () => false, rejectAll = () => false } = {}) {
    this.world = world;
    this.ttlMs = ttlMs;
    this.expiredAs = expiredAs;
    this.loginFails = loginFails;
    this.rejectAll = rejectAll;
    this.sessions = 0;
    this.current = null;
    this.logins = 0;
    this.served = 0;
  }

  /** Ends the current session now (the server's clock is ahead, or it was revoked). */
  expireNow() {
    if (this.current) this.current.expiresAt = this.world.t;
  }

  handle({ url, header, data }) {
    if (url.endsWith('/login')) {
      this.logins += 1;
      if (this.loginFails(this.logins)) return { statusCode: 500, data: { success: false, code: '9999' } };
      const token = `s${++this.sessions}`;
      this.current = { token, expiresAt: this.world.t + BigInt(this.ttlMs) * MS };
      return { statusCode: 200, data: { success: true, token, expiresIn: this.ttlMs / 1000 } };
    }
    const token = /JSESSIONID=(\S+)/.exec(header?.Cookie ?? '')?.[1] ?? header?.Authorization?.replace('Bearer ', '');
    const live = this.current && token === this.current.token && this.world.t < this.current.expiresAt;
    if (!live || this.rejectAll(this.served)) {
      return this.expiredAs === 'status'
        ? { statusCode: 401, data: { success: false } }
        : { statusCode: 200, data: { code: '0002', success: false } };
    }
    this.served += 1;
    return { statusCode: 200, data: { success: true, echo: data } };
  }
}

/**
 * A fake `wx`: request goes to `backend` after `latencyMs(url)`; more than
 * `maxTasks` at once fail at once as WeChat's do; login answers a code after
 * `loginMs` unless `loginFails(n)`.
 */
export function fakeWx(world, backend, { latencyMs = () => 20, maxTasks = 10, loginMs = 30, loginFails = () => false, dropped = () => false } = {}) {
  const storage = new Map();
  const showListeners = [];
  const wx = {
    active: 0,
    maxActive: 0,
    overLimit: 0,
    logins: 0,
    requests: 0,
    storage,
    request(opts) {
      const fail = (errMsg) => world.after(0, () => opts.fail?.({ errMsg }));
      if (wx.active >= maxTasks) {
        wx.overLimit += 1;
        fail('request:fail exceed max task count');
        return { abort() {} };
      }
      wx.requests += 1;
      wx.active += 1;
      wx.maxActive = Math.max(wx.maxActive, wx.active);
      let done = false;
      const finish = () => {
        if (done) return false;
        done = true;
        wx.active -= 1;
        return true;
      };
      const lost = dropped(wx.requests, opts.url);
      const ev = world.after(latencyMs(opts.url), () => {
        if (!finish()) return;
        if (lost) opts.fail?.({ errMsg: 'request:fail timeout' });
        else opts.success?.(backend.handle(opts));
      });
      return {
        abort() {
          if (!finish()) return;
          world.cancel(ev);
          fail('request:fail abort');
        },
      };
    },
    login(opts) {
      wx.logins += 1;
      const n = wx.logins;
      const ms = typeof loginMs === 'function' ? loginMs(n) : loginMs;
      world.after(ms, () => (loginFails(n) ? opts.fail?.({ errMsg: 'login:fail' }) : opts.success?.({ code: `code${n}` })));
    },
    getStorageSync: (k) => (storage.has(k) ? storage.get(k) : ''),
    setStorageSync: (k, v) => storage.set(k, JSON.parse(JSON.stringify(v))),
    removeStorageSync: (k) => storage.delete(k),
    onAppShow: (fn) => showListeners.push(fn),
    showToast() {},
    /** The app goes to the background: its timers stop. */
    hide() {
      world.hidden = true;
    },
    /** Back in the foreground: show listeners run, suspended timers fire. */
    show() {
      world.hidden = false;
      for (const fn of showListeners) fn();
      for (const ev of world.suspended.splice(0)) world.at(world.t, ev.fn, { app: true });
    },
  };
  return wx;
}

/** The app's login callback: the code to the backend, its answer as a session. */
export async function appLogin({ code, request }) {
  const res = await request({ url: 'https://api.example.com/login', method: 'POST', data: { code } });
  if (res.statusCode !== 200 || !res.data.success) {
    throw Object.assign(new Error(`login failed: ${res.statusCode}`), { permanent: false });
  }
  return { token: res.data.token, expiresIn: res.data.expiresIn };
}
