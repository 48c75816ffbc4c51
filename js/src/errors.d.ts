export type Kind =
  | 'RefreshUnavailable'
  | 'LoginRequired'
  | 'Overloaded'
  | 'AuthRejected'
  | 'DuplicateRequest'
  | 'UnknownGeneration'
  | 'Cancelled'
  | 'Transport';

/** Every failure a request ends with; `kind` says which. Never contains a token. */
export declare class TokenflightError extends Error {
  readonly kind: Kind;
}
export declare class RefreshUnavailable extends TokenflightError {
  readonly kind: 'RefreshUnavailable';
  readonly failure: 'Refresher' | 'TimedOut' | 'ExpiredOnArrival';
}
export declare class LoginRequired extends TokenflightError {
  readonly kind: 'LoginRequired';
}
export declare class Overloaded extends TokenflightError {
  readonly kind: 'Overloaded';
}
export declare class AuthRejected extends TokenflightError {
  readonly kind: 'AuthRejected';
  readonly sends: number;
}
export declare class DuplicateRequest extends TokenflightError {
  readonly kind: 'DuplicateRequest';
}
export declare class UnknownGeneration extends TokenflightError {
  readonly kind: 'UnknownGeneration';
}
export declare class Cancelled extends TokenflightError {
  readonly kind: 'Cancelled';
}
export declare class TransportError extends TokenflightError {
  readonly kind: 'Transport';
}
