//! Errors: what a request can end with, and how a refresh can fail.
//!
//! Every error is `Clone + PartialEq` so one refresh failure can be handed to
//! every waiter; the refresher's own error is shared through an `Arc`. No
//! error ever contains a token.

use std::sync::Arc;

/// How a refresh attempt failed, as the refresher classifies it.
///
/// The classification decides what happens next, so it belongs to the code
/// that knows the server: a network error, a 5xx or a timeout is
/// [`Transient`](RefreshError::Transient) and is retried with back-off; a
/// revoked grant (`invalid_grant`, a reused rotating refresh token) is
/// [`Permanent`](RefreshError::Permanent): only a new login helps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RefreshError<E> {
    /// Worth retrying later.
    Transient(E),
    /// Retrying cannot help until a new login (`set_token`).
    Permanent(E),
}

/// Why refreshing gave up after its transient failures.
#[derive(Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshFailure<E> {
    /// The refresher's own error, from the last attempt.
    #[error("{0}")]
    Refresher(Arc<E>),
    /// The last attempt did not answer within the refresh timeout.
    #[error("refresh attempt timed out")]
    TimedOut,
    /// The refresher returned a token that had already expired, or would
    /// within the safety margin.
    #[error("refresher returned an already expired token")]
    ExpiredOnArrival,
}

/// The error a request ends with.
///
/// # Examples
///
/// ```
/// use tokenflight::Error;
///
/// let e: Error<std::io::Error> = Error::Overloaded;
/// assert_eq!(e.to_string(), "too many requests are waiting for a token");
/// ```
#[derive(Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E> {
    /// Refreshing failed transiently too often; new requests fail fast until
    /// the cool-down ends, then the next one tries again.
    #[error("token refresh is failing, retry later: {0}")]
    RefreshUnavailable(RefreshFailure<E>),
    /// The refresher said the grant is gone: nothing works until a new login.
    #[error("token refresh was refused, a new login is needed: {0}")]
    LoginRequired(Arc<E>),
    /// `max_waiters` requests are already waiting for a token.
    #[error("too many requests are waiting for a token")]
    Overloaded,
    /// The server rejected every token this request was sent with, fresh ones
    /// included: the problem is not expiry (wrong scope, a revoked user...).
    #[error("the server rejected the token on all {sends} sends of this request")]
    AuthRejected {
        /// How many times the request was sent.
        sends: u32,
    },
    /// A caller bug: this request id is already waiting.
    #[error("request id is already waiting for a token")]
    DuplicateRequest,
    /// A caller bug: the lease names a generation this core never issued.
    #[error("lease names a token generation this core never issued")]
    UnknownGeneration,
}

// Written out because `derive(Clone)` would demand `E: Clone`, and the
// refresher's error is shared through an `Arc` precisely so it need not be.
impl<E> Clone for RefreshFailure<E> {
    fn clone(&self) -> Self {
        match self {
            RefreshFailure::Refresher(e) => RefreshFailure::Refresher(Arc::clone(e)),
            RefreshFailure::TimedOut => RefreshFailure::TimedOut,
            RefreshFailure::ExpiredOnArrival => RefreshFailure::ExpiredOnArrival,
        }
    }
}

impl<E> Clone for Error<E> {
    fn clone(&self) -> Self {
        match self {
            Error::RefreshUnavailable(f) => Error::RefreshUnavailable(f.clone()),
            Error::LoginRequired(e) => Error::LoginRequired(Arc::clone(e)),
            Error::Overloaded => Error::Overloaded,
            Error::AuthRejected { sends } => Error::AuthRejected { sends: *sends },
            Error::DuplicateRequest => Error::DuplicateRequest,
            Error::UnknownGeneration => Error::UnknownGeneration,
        }
    }
}

impl<E> Error<E> {
    /// Whether the same call may succeed if tried again later without a new
    /// login.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::RefreshUnavailable(_) | Error::Overloaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_carry_the_cause() {
        let e: Error<String> = Error::RefreshUnavailable(RefreshFailure::Refresher(Arc::new(
            "connection reset".to_string(),
        )));
        assert_eq!(
            e.to_string(),
            "token refresh is failing, retry later: connection reset"
        );
        let e: Error<String> = Error::AuthRejected { sends: 3 };
        assert!(e.to_string().starts_with("the server rejected"));
        assert!(!e.is_retryable());
    }
}
