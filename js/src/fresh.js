// What a refresher or login hands back, as the core takes it.

/**
 * `{token, expiresIn?: seconds}` or `{token, expiresAt?: bigint ns on the
 * client's clock}` as `{token, expiresAt: bigint|null}`.
 */
export function toFresh(result, now) {
  if (!result || result.token === undefined || result.token === null) {
    throw Object.assign(new Error('the refresher returned no token'), { permanent: false });
  }
  let expiresAt = null;
  if (typeof result.expiresAt === 'bigint') expiresAt = result.expiresAt;
  else if (typeof result.expiresIn === 'number' && Number.isFinite(result.expiresIn)) {
    expiresAt = now + BigInt(Math.max(0, Math.round(result.expiresIn * 1e3))) * 1_000_000n;
  }
  return { token: result.token, expiresAt };
}

/** A refresher error that needs a new login (the core's permanent failure). */
export class LoginRefused extends Error {
  constructor(message = 'the backend refused the login', options) {
    super(message, options);
    this.name = 'LoginRefused';
    this.permanent = true;
  }
}
