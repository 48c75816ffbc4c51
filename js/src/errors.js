// What a request can end with. Every error has a `kind` (the reference
// core's error variant); none ever contains a token.

/** Base of every failure a request can end with. */
export class TokenflightError extends Error {
  constructor(kind, message, options) {
    super(message, options);
    this.name = 'TokenflightError';
    this.kind = kind;
  }
}

/** Refreshing keeps failing; retry later. `failure`: Refresher | TimedOut | ExpiredOnArrival. */
export class RefreshUnavailable extends TokenflightError {
  constructor(failure, cause) {
    const why = failure === 'TimedOut' ? 'refresh attempt timed out'
      : failure === 'ExpiredOnArrival' ? 'refresher returned an already expired token'
        : String(cause?.message ?? cause);
    super('RefreshUnavailable', `token refresh is failing, retry later: ${why}`, { cause });
    this.name = 'RefreshUnavailable';
    this.failure = failure;
  }
}

/** The refresh was refused: a new login is needed. */
export class LoginRequired extends TokenflightError {
  constructor(cause) {
    super('LoginRequired', 'token refresh was refused, a new login is needed', { cause });
    this.name = 'LoginRequired';
  }
}

/** Too many requests wait for a token. */
export class Overloaded extends TokenflightError {
  constructor() {
    super('Overloaded', 'too many requests are waiting for a token');
    this.name = 'Overloaded';
  }
}

/** The server rejected the token on every send. */
export class AuthRejected extends TokenflightError {
  constructor(sends) {
    super('AuthRejected', `the server rejected the token on all ${sends} sends of this request`);
    this.name = 'AuthRejected';
    this.sends = sends;
  }
}

/** The request id is already waiting. */
export class DuplicateRequest extends TokenflightError {
  constructor() {
    super('DuplicateRequest', 'request id is already waiting for a token');
    this.name = 'DuplicateRequest';
  }
}

/** A lease names a generation the core never issued. */
export class UnknownGeneration extends TokenflightError {
  constructor() {
    super('UnknownGeneration', 'lease names a token generation this core never issued');
    this.name = 'UnknownGeneration';
  }
}

/** Front-end only: the caller cancelled the request (or its page unloaded). */
export class Cancelled extends TokenflightError {
  constructor(reason) {
    super('Cancelled', 'the request was cancelled', { cause: reason });
    this.name = 'Cancelled';
  }
}

/** Front-end only: the transport failed (network error, wx.request fail). */
export class TransportError extends TokenflightError {
  constructor(cause) {
    super('Transport', `request failed: ${cause?.errMsg ?? cause?.message ?? cause}`, { cause });
    this.name = 'TransportError';
  }
}

/** The ITF error tag of a core error (the vectors' encoding). */
export function errorTag(e) {
  return e.kind === 'RefreshUnavailable' ? `RefreshUnavailable.${e.failure}` : e.kind;
}
