// The core's tuning knobs (durations in ns, BigInt) and their validation.

import { U64_MAX, U32_MAX } from './time.js';

/** The reference core's defaults. */
export function defaultConfig() {
  return {
    maxWaiters: 1 << 17,
    maxAuthRetries: 2,
    maxRefreshAttempts: 3,
    refreshTimeout: 10_000_000_000n,
    refreshAbandonAfter: 60_000_000_000n,
    backoffInitial: 100_000_000n,
    backoffMax: 5_000_000_000n,
    cooldown: 10_000_000_000n,
    expirySkew: 30_000_000_000n,
    skewJitter: 5_000_000_000n,
    safetyMargin: 5_000_000_000n,
    seed: 0n,
  };
}

/** A configuration that cannot work. `kind` names the rule it breaks. */
export class ConfigError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'ConfigError';
    this.kind = kind;
  }
}

const DURATIONS = [
  'refreshTimeout', 'refreshAbandonAfter', 'backoffInitial', 'backoffMax', 'cooldown', 'expirySkew', 'skewJitter', 'safetyMargin',
];

/** Fills defaults, checks types and ranges, and the reference core's rules. */
export function makeConfig(partial = {}) {
  const c = { ...defaultConfig(), ...partial };
  for (const k of DURATIONS) {
    if (typeof c[k] !== 'bigint' || c[k] < 0n || c[k] > U64_MAX) {
      throw new ConfigError('Type', `${k} must be a u64 BigInt of nanoseconds`);
    }
  }
  for (const k of ['maxAuthRetries', 'maxRefreshAttempts']) {
    if (!Number.isInteger(c[k]) || c[k] < 0 || c[k] > U32_MAX) {
      throw new ConfigError('Type', `${k} must be a u32`);
    }
  }
  if (!Number.isSafeInteger(c.maxWaiters) || c.maxWaiters < 0) {
    throw new ConfigError('Type', 'maxWaiters must be a non-negative integer');
  }
  c.seed = BigInt.asUintN(64, BigInt(c.seed));
  if (c.maxWaiters === 0) throw new ConfigError('NoWaiters', 'max_waiters must be at least 1');
  if (c.maxRefreshAttempts === 0) {
    throw new ConfigError('NoRefreshAttempts', 'max_refresh_attempts must be at least 1');
  }
  if (c.refreshTimeout === 0n) {
    throw new ConfigError('ZeroRefreshTimeout', 'refresh_timeout must be longer than zero');
  }
  if (c.refreshAbandonAfter < c.refreshTimeout) {
    throw new ConfigError('AbandonBeforeTimeout', 'refresh_abandon_after must not be shorter than refresh_timeout');
  }
  if (c.backoffInitial > c.backoffMax) {
    throw new ConfigError('BackoffInverted', 'backoff_initial must not exceed backoff_max');
  }
  return Object.freeze(c);
}

/** 1 + max_auth_retries, saturating at u32. */
export function maxSends(c) {
  return Math.min(c.maxAuthRetries + 1, U32_MAX);
}
