// The fetch front-end, for browsers and Node: one refresh per expiry, every
// request rejected with 401 retried with the new token.

import { Driver, systemClock } from './driver.js';
import { toFresh } from './fresh.js';
import { MUTANT } from './mutants.js';

/**
 * @param {object} o
 * @param {typeof fetch} o.fetch
 * @param {(ctx: {signal}) => Promise<{token, expiresIn?}>} o.refresh gets a new
 *   token; throw an error with `permanent: true` (e.g. LoginRefused) when a
 *   login is needed; `ctx.signal` aborts when the call is given up for good
 * @param {(res: Response) => boolean | Promise<boolean>} [o.isExpired] default: status 401
 * @param {(token) => object} [o.authorize] headers that carry the token (default: Bearer)
 * @param {{token, expiresIn?}} [o.token] a token to start with
 * @param {(fresh: {token, expiresAt: bigint|null}) => void} [o.onToken] persist each new token
 */
export function createFetchClient(o) {
  const {
    fetch,
    refresh,
    isExpired = (res) => res.status === 401,
    authorize = (token) => ({ Authorization: `Bearer ${token}` }),
    config = {},
    clock = systemClock,
    history = false,
    onToken,
  } = o;
  const driver = new Driver({
    config,
    clock,
    history,
    onToken,
    mutant: o[MUTANT] ?? null,
    refresher: async (_attempt, signal) => toFresh(await refresh({ signal }), clock.now()),
  });
  if (o.token) driver.setToken(toFresh(o.token, clock.now()));
  const send = (input, init) => async (lease, signal) => {
    const headers = new Headers(init.headers);
    for (const [k, v] of Object.entries(authorize(lease.token))) headers.set(k, v);
    const res = await fetch(input, { ...init, headers, signal });
    if (await isExpired(res)) {
      await res.body?.cancel?.();
      return { expired: true };
    }
    return { value: res };
  };
  return {
    /** Like fetch; rejects with a TokenflightError instead of answering 401. */
    fetch: (input, init = {}) => driver.request(send(input, init), init.signal),
    logout: () => driver.invalidate(),
    history: () => driver.history?.text() ?? '',
    driver,
  };
}
