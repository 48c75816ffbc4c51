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
///
/// The refresher's own error is shown as itself (its message and its
/// `source()` chain), so a chain printed by `anyhow` or a logger names it
/// once.
#[derive(Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshFailure<E> {
    /// The refresher's own error, from the last attempt.
    #[error(transparent)]
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
/// Its message says what happened to the request; the cause (how the
/// refresh failed, the refresher's own error and its causes) is its
/// [`source()`](std::error::Error::source), never repeated in the message,
/// so `anyhow`'s `{:#}` and middleware chains print each cause once. It
/// is a [`std::error::Error`] when the refresher's error `E` is one (its
/// message is there for any `E`).
///
/// # Examples
///
/// ```
/// use std::error::Error as _;
/// use std::sync::Arc;
/// use tokenflight::{Error, RefreshFailure};
///
/// let e: Error<std::io::Error> = Error::RefreshUnavailable(RefreshFailure::Refresher(
///     Arc::new(std::io::Error::other("connection reset")),
/// ));
/// assert_eq!(e.to_string(), "token refresh is failing, retry later");
/// assert_eq!(e.source().unwrap().to_string(), "connection reset");
/// assert!(e.is_retryable());
/// ```
#[derive(Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E> {
    /// Refreshing failed transiently too often; new requests fail fast until
    /// the cool-down ends, then the next one tries again.
    #[error("token refresh is failing, retry later")]
    RefreshUnavailable(#[source] RefreshFailure<E>),
    /// The refresher said the grant is gone: nothing works until a new login.
    #[error("token refresh was refused, a new login is needed")]
    LoginRequired(#[source] Arc<E>),
    /// `max_waiters` requests are already waiting for a token.
    #[error("too many requests are waiting for a token")]
    Overloaded,
    /// The server rejected every token this request was sent with, fresh ones
    /// included: the problem is not expiry (wrong scope, a revoked user...).
    ///
    /// The core and `reject` end such a request with it; `call` and the
    /// HTTP layers hand the caller the server's last rejection instead, as
    /// tower's retry returns its last response.
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
    /// A caller bug: the refresher asked its own handle for a token while
    /// refreshing. It would wait for itself forever, so that request fails
    /// at once instead. Only the handles end a request with it; the core
    /// cannot tell who asks.
    #[error("the refresher asked its own handle for a token")]
    Reentrant,
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
            Error::Reentrant => Error::Reentrant,
        }
    }
}

impl<E> Error<E> {
    /// Whether the same call may succeed if tried again later without a new
    /// login or a code change.
    ///
    /// | variant | retryable | why |
    /// |---|---|---|
    /// | [`RefreshUnavailable`](Error::RefreshUnavailable) | yes | the failures were transient (a network error, a timeout, a panic the handle survived); the next request after the cool-down refreshes again |
    /// | [`Overloaded`](Error::Overloaded) | yes | the waiters ahead of it get their token and leave |
    /// | [`LoginRequired`](Error::LoginRequired) | no | the grant is gone: only a new login (`set_token`) helps |
    /// | [`AuthRejected`](Error::AuthRejected) | no | fresh tokens were rejected too: the request itself (scope, user) is refused |
    /// | [`DuplicateRequest`](Error::DuplicateRequest), [`UnknownGeneration`](Error::UnknownGeneration) | no | a caller bug: the same call fails the same way |
    /// | [`Reentrant`](Error::Reentrant) | no | a refresher bug: it asks its own handle again on every refresh |
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::Error;
    ///
    /// assert!(Error::<std::io::Error>::Overloaded.is_retryable());
    /// assert!(!Error::<std::io::Error>::Reentrant.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::RefreshUnavailable(_) | Error::Overloaded => true,
            Error::LoginRequired(_)
            | Error::AuthRejected { .. }
            | Error::DuplicateRequest
            | Error::UnknownGeneration
            | Error::Reentrant => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message, then each cause down the `source()` chain.
    fn chain(e: &dyn std::error::Error) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut next = e.source();
        while let Some(cause) = next {
            out.push(cause.to_string());
            next = cause.source();
        }
        out
    }

    #[test]
    fn each_cause_is_in_the_chain_once_and_not_in_the_message() {
        let io = std::io::Error::other("connection reset");
        let e: Error<std::io::Error> =
            Error::RefreshUnavailable(RefreshFailure::Refresher(Arc::new(io)));
        assert_eq!(
            chain(&e),
            ["token refresh is failing, retry later", "connection reset"]
        );
        let e: Error<std::io::Error> = Error::RefreshUnavailable(RefreshFailure::TimedOut);
        assert_eq!(
            chain(&e),
            [
                "token refresh is failing, retry later",
                "refresh attempt timed out"
            ]
        );
        let e: Error<std::io::Error> =
            Error::LoginRequired(Arc::new(std::io::Error::other("invalid_grant")));
        assert_eq!(
            chain(&e),
            [
                "token refresh was refused, a new login is needed",
                "invalid_grant"
            ]
        );
        let e: Error<std::io::Error> = Error::AuthRejected { sends: 3 };
        assert_eq!(
            chain(&e),
            ["the server rejected the token on all 3 sends of this request"]
        );
    }

    #[test]
    fn retryable_is_right_for_every_variant() {
        type E = Error<std::io::Error>;
        let cause = || Arc::new(std::io::Error::other("x"));
        let table: [(E, bool); 10] = [
            (
                Error::RefreshUnavailable(RefreshFailure::Refresher(cause())),
                true,
            ),
            (Error::RefreshUnavailable(RefreshFailure::TimedOut), true),
            (
                Error::RefreshUnavailable(RefreshFailure::ExpiredOnArrival),
                true,
            ),
            (Error::Overloaded, true),
            (Error::LoginRequired(cause()), false),
            (Error::AuthRejected { sends: 1 }, false),
            (Error::AuthRejected { sends: 4 }, false),
            (Error::DuplicateRequest, false),
            (Error::UnknownGeneration, false),
            (Error::Reentrant, false),
        ];
        for (error, retryable) in table {
            assert_eq!(error.is_retryable(), retryable, "{error:?}");
        }
    }
}
