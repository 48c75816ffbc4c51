// Types of the sans-IO core. Times are u64 nanoseconds as BigInt.

/** Durations in nanoseconds; every field optional (defaults of the reference core). */
export interface Config {
  maxWaiters?: number;
  maxAuthRetries?: number;
  maxRefreshAttempts?: number;
  refreshTimeout?: bigint;
  refreshAbandonAfter?: bigint;
  backoffInitial?: bigint;
  backoffMax?: bigint;
  cooldown?: bigint;
  expirySkew?: bigint;
  skewJitter?: bigint;
  safetyMargin?: bigint;
  seed?: bigint;
}

export type FullConfig = Readonly<Required<Config>>;

export interface Lease<T = string> {
  token: T;
  generation: bigint;
  send: number;
}

export interface Fresh<T = string> {
  token: T;
  expiresAt: bigint | null;
}

export type Next<T = string> =
  | { type: 'Send'; lease: Lease<T> }
  | { type: 'Wait' }
  | { type: 'Fail'; error: import('./errors.js').TokenflightError };

export type Action<T = string> =
  | { type: 'StartRefresh'; attempt: bigint }
  | { type: 'AbandonRefresh'; attempt: bigint }
  | { type: 'Resume'; id: bigint; lease: Lease<T> }
  | { type: 'Fail'; id: bigint; error: import('./errors.js').TokenflightError };

export type RefreshResult<T = string> =
  | { ok: Fresh<T> }
  | { transient: unknown }
  | { permanent: unknown };

export type Phase = 'Idle' | 'Refreshing' | 'Failed';

/**
 * The refresh coordinator. Drive it: every input takes `now` (ns) first;
 * after every input drain `pollAction()` and carry out each action at once;
 * call `timeout(now)` when `pollTimeout()` comes due.
 */
export declare class Core<T = string> {
  constructor(config?: Config);
  readonly config: FullConfig;
  acquire(now: bigint, id: bigint): Next<T>;
  reject(now: bigint, id: bigint, lease: Lease<T>): Next<T>;
  cancel(now: bigint, id: bigint): boolean;
  refreshed(now: bigint, attempt: bigint, result: RefreshResult<T>): void;
  timeout(now: bigint): void;
  setToken(now: bigint, fresh: Fresh<T>): void;
  invalidate(now: bigint, generation: bigint): void;
  pollAction(): Action<T> | null;
  pollTimeout(): bigint | null;
  phase(): Phase;
  generation(): bigint;
  now(): bigint;
  waiters(): number;
  inFlight(): bigint | null;
  outstandingCall(): bigint | null;
  leaseUsable(now: bigint, lease: Lease<T>): boolean;
  snapshot(): { lease: Lease<T>; validUntil: bigint } | null;
}
