// The WeChat mini-program front-end: wx.request with one login per expiry.
//
// A request that comes back "expired" (HTTP 401, or the backend's body code,
// as in the well-known recipe: `code == '0002' && !success`) is retried with
// the new token; requests started while the login runs wait for it; every
// request ends in one typed outcome; the token is kept with setStorageSync,
// so the user logs in once. WeChat runs at most 10 wx.request at a time:
// requests share 9 slots, and the login always has the tenth, so it never
// waits behind the requests that wait for it.

import { Driver, Limiter, onAbort, systemClock } from './driver.js';
import { TransportError } from './errors.js';
import { LoginRefused, toFresh } from './fresh.js';
import { MUTANT } from './mutants.js';
import { Canceller } from './signal.js';

/** The recipe's test for "the login expired": HTTP 401, or body `code == '0002' && !success`. */
export function defaultIsExpired(res) {
  const d = res?.data;
  // eslint-disable-next-line eqeqeq -- the backend may send the code as a number or a string
  return res?.statusCode === 401 || (d != null && typeof d === 'object' && d.code == '0002' && !d.success);
}

/** The recipe's header: the session id as a cookie. */
export function cookieHeader(token) {
  return { Cookie: `JSESSIONID=${token}` };
}

/** wx.login as a promise of its code; a failure is transient (try again). */
function wxLogin(wx) {
  return new Promise((resolve, reject) => {
    wx.login({
      success: (res) => (res?.code ? resolve(res.code) : reject(new TransportError({ errMsg: 'wx.login gave no code' }))),
      fail: (err) => reject(new TransportError(err)),
    });
  });
}

/** wx.request as a promise; `signal` aborts the task. */
export function wxRequest(wx, options, signal) {
  return new Promise((resolve, reject) => {
    let off = () => {};
    const task = wx.request({
      ...options,
      success: (res) => {
        off();
        resolve(res);
      },
      fail: (err) => {
        off();
        reject(new TransportError(err));
      },
    });
    off = onAbort(signal, () => task?.abort?.());
  });
}

/**
 * @param {object} o
 * @param {object} o.wx the `wx` global (or a stand-in)
 * @param {(ctx: {code: string, request: (options) => Promise<object>}) => Promise<{token, expiresIn?}>} o.login
 *   trades a wx.login code for a session token at the app's backend, using
 *   `ctx.request` (the login's reserved connection); throw a LoginRefused
 *   (or any error with `permanent: true`) when the backend refuses for good
 * @param {(res) => boolean} [o.isExpired]
 * @param {(token: string) => object} [o.authorize] headers that carry the token
 * @param {string} [o.storageKey]
 * @param {number} [o.maxConcurrent] WeChat's limit on concurrent wx.request
 * @param {object} [o.config] core config (durations in ns)
 * @param {object} [o.clock]
 * @param {boolean} [o.history] record the run for the judge (`client.history()`)
 */
export function createWxClient(o) {
  const {
    wx,
    login,
    isExpired = defaultIsExpired,
    authorize = cookieHeader,
    storageKey = 'tokenflight.session',
    maxConcurrent = 10,
    config = {},
    clock = systemClock,
    history = false,
  } = o;
  const mutant = o[MUTANT] ?? null;
  const behind = mutant === 'RefreshBehindLimiter';
  const limiter = new Limiter(maxConcurrent, behind ? 0 : 1);
  const refresher = async (_attempt, signal) => {
    const code = await wxLogin(wx);
    // A call given up on while wx.login ran goes no further: the next call
    // may already hold the login's connection.
    if (signal?.aborted) throw new TransportError({ errMsg: 'login abandoned' });
    const release = behind ? await limiter.take() : limiter.takeReserved();
    try {
      // A login the core gave up on for good has its request aborted.
      const request = (options) => wxRequest(wx, options, signal);
      return toFresh(await login({ code, request }), clock.now());
    } finally {
      release();
    }
  };
  const driver = new Driver({
    config,
    clock,
    refresher,
    history,
    limiter,
    mutant,
    onToken: ({ token, expiresAt }) => {
      try {
        wx.setStorageSync(storageKey, { token, expiresAt: expiresAt === null ? null : expiresAt.toString() });
      } catch {
        // Storage full or unavailable: the session still works, only the
        // next launch logs in again.
      }
    },
  });
  const saved = safeGet(wx, storageKey);
  if (saved && typeof saved.token === 'string') {
    driver.setToken({ token: saved.token, expiresAt: saved.expiresAt ? BigInt(saved.expiresAt) : null });
  }
  // Timers do not run while the app is hidden: look at the time on return.
  wx.onAppShow?.(() => driver.tick());

  const send = (options) => (lease, signal) => {
    const header = { ...options.header, ...authorize(lease.token) };
    const { signal: _s, ...rest } = options;
    return wxRequest(wx, { ...rest, header }, signal).then((res) =>
      (isExpired(res) ? { expired: true } : { value: res }));
  };
  const request = (options) => driver.request(send(options), options.signal);
  return {
    /** Like wx.request, as a promise of its success result; rejects with a TokenflightError. */
    request,
    /** Requests tied to a page: `unload()` cancels every one still running. */
    scope() {
      const c = new Canceller();
      return {
        request: (options) => request({ ...options, signal: options.signal ?? c.signal }),
        unload: () => c.abort(),
      };
    },
    /** Forget the session (logout): the next request logs in again. */
    logout() {
      driver.invalidate();
      try {
        wx.removeStorageSync(storageKey);
      } catch {
        // nothing stored
      }
    },
    /** The recorded run as JSON lines for the judge (with `history: true`). */
    history: () => driver.history?.text() ?? '',
    driver,
  };
}

function safeGet(wx, key) {
  try {
    return wx.getStorageSync(key);
  } catch {
    return null;
  }
}

export { LoginRefused };
