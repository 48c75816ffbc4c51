// tokenflight for WeChat mini-programs, browsers and Node: one refresh per
// expiry, every rejected request retried with the new token, every request
// ended with one typed outcome.

export { createWxClient, defaultIsExpired, cookieHeader } from './wx.js';
export { createFetchClient } from './fetch.js';
export { Core } from './core.js';
export { defaultConfig, makeConfig, ConfigError } from './config.js';
export { LoginRefused } from './fresh.js';
export { Canceller } from './signal.js';
export { ms } from './time.js';
export {
  TokenflightError,
  RefreshUnavailable,
  LoginRequired,
  Overloaded,
  AuthRejected,
  DuplicateRequest,
  UnknownGeneration,
  Cancelled,
  TransportError,
} from './errors.js';
