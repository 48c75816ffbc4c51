import type { Config, Lease } from './core.js';

export { Core, Config, Lease, Fresh, Next, Action, Phase, RefreshResult } from './core.js';
export { defaultConfig, makeConfig, ConfigError } from './config.js';
export * from './errors.js';

/** AbortSignal-like: a real AbortSignal works, so does `new Canceller().signal`. */
export interface SignalLike {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener?(type: 'abort', listener: () => void): void;
}

export declare class Canceller {
  readonly signal: SignalLike;
  abort(reason?: unknown): void;
}

/** A refresher error that needs a new login (`permanent: true`). */
export declare class LoginRefused extends Error {
  readonly permanent: true;
}

/** A session as a login or refresh hands it back. */
export interface Session {
  token: string;
  /** Seconds from now; omit for a token with no known expiry. */
  expiresIn?: number;
}

/** The client's clock: ns now, and one-shot timers at an absolute ns time. */
export interface Clock {
  now(): bigint;
  set(at: bigint, fn: () => void): unknown;
  clear(handle: unknown): void;
}

export declare function ms(n: number | bigint): bigint;

// ---- WeChat ----------------------------------------------------------------

export interface WxRequestOptions {
  url: string;
  method?: string;
  data?: unknown;
  header?: Record<string, string>;
  timeout?: number;
  dataType?: string;
  responseType?: string;
  /** Cancels the request (a waiting one, or its wx.request task). */
  signal?: SignalLike;
  [other: string]: unknown;
}

export interface WxResponse {
  statusCode: number;
  data: any;
  header?: Record<string, string>;
  [other: string]: unknown;
}

export interface WxLike {
  request(options: any): { abort?(): void } | void;
  login(options: { success(res: { code: string }): void; fail(err: unknown): void }): void;
  getStorageSync(key: string): any;
  setStorageSync(key: string, value: any): void;
  removeStorageSync?(key: string): void;
  onAppShow?(fn: () => void): void;
}

export interface WxClientOptions {
  wx: WxLike;
  /** Trades a wx.login code for a session at the app's backend, with `request` (the login's own connection). */
  login(ctx: { code: string; request(options: WxRequestOptions): Promise<WxResponse> }): Promise<Session>;
  /** Default: HTTP 401, or body `code == '0002' && !success`. */
  isExpired?(res: WxResponse): boolean;
  /** Headers that carry the token. Default: `Cookie: JSESSIONID=<token>`. */
  authorize?(token: string): Record<string, string>;
  storageKey?: string;
  /** WeChat's limit on concurrent wx.request (10); one is kept for the login. */
  maxConcurrent?: number;
  config?: Config;
  clock?: Clock;
  /** Record the run in the judge's vocabulary (`client.history()`). */
  history?: boolean;
}

export interface WxClient {
  /** Like wx.request, as a promise of its success result. Rejects with a TokenflightError. */
  request(options: WxRequestOptions): Promise<WxResponse>;
  /** Requests tied to a page: call `unload()` from onUnload. */
  scope(): { request(options: WxRequestOptions): Promise<WxResponse>; unload(): void };
  /** Forget the session: the next request logs in again. */
  logout(): void;
  history(): string;
}

export declare function createWxClient(options: WxClientOptions): WxClient;
export declare function defaultIsExpired(res: WxResponse): boolean;
export declare function cookieHeader(token: string): Record<string, string>;

// ---- fetch -----------------------------------------------------------------

export interface FetchClientOptions {
  fetch: typeof fetch;
  /** Gets a new token; throw a LoginRefused when a new login is needed. */
  refresh(ctx: { signal: SignalLike }): Promise<Session>;
  /** Default: status 401. */
  isExpired?(res: Response): boolean | Promise<boolean>;
  /** Default: `Authorization: Bearer <token>`. */
  authorize?(token: string): Record<string, string>;
  /** A session to start with (e.g. from storage). */
  token?: Session;
  /** Called with every new token, to persist it. */
  onToken?(fresh: { token: string; expiresAt: bigint | null }): void;
  config?: Config;
  clock?: Clock;
  history?: boolean;
}

export interface FetchClient {
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  logout(): void;
  history(): string;
}

export declare function createFetchClient(options: FetchClientOptions): FetchClient;

export type { Lease as TokenLease };
