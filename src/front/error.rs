//! The handles' errors: how a refresh failed as the handles see it
//! ([`Fault`]), what their calls end with ([`HandleError`]), and why a
//! handle could not be built ([`BuildError`]).

use crate::{ConfigError, Error, RefreshError};

/// Why a refresh attempt brought no token, as the handles report it to the
/// core: the refresher's own error, or a failure of the refresher itself.
///
/// The refresher's error is shown as itself: its message, and its own
/// `source()` chain.
///
/// The handles' errors are [`Error<Fault<E>>`](Error): a transient refresher
/// error that exhausted its retries arrives as
/// `Error::RefreshUnavailable(RefreshFailure::Refresher(fault))`.
///
/// # Examples
///
/// ```
/// use tokenflight::Fault;
///
/// let f: Fault<std::io::Error> = Fault::Panicked("boom".into());
/// assert_eq!(f.to_string(), "the refresher panicked: boom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Fault<E> {
    /// The refresher returned this error.
    #[error(transparent)]
    Refresher(E),
    /// The refresher panicked (with this message). Counted as a transient
    /// failure: the attempt is retried with back-off like any other, and
    /// when the retries run out every waiter gets the error; the handle
    /// stays usable.
    #[error("the refresher panicked: {0}")]
    Panicked(String),
}

/// What a handle's calls end with: the core's [`Error`] over the handles'
/// [`Fault`].
pub type HandleError<E> = Error<Fault<E>>;

/// Why a handle could not be built.
///
/// # Examples
///
/// ```
/// use tokenflight::{BuildError, Config, ConfigError};
///
/// let e = BuildError::Config(ConfigError::NoWaiters);
/// assert_eq!(e.to_string(), "max_waiters must be at least 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configuration backs off between refresh attempts, but the handle
    /// has no timer to end a back-off with: waiters would hang. Give the
    /// handle a timer, or set `backoff_initial` and `backoff_max` to zero.
    #[error("back-off needs a timer: give the handle one, or set the back-off to zero")]
    TimerRequired,
}

/// The error a request gets when the refresher asks its own handle for a
/// token (see [`Error::Reentrant`]).
pub(crate) fn reentrant<E>() -> HandleError<E> {
    Error::Reentrant
}

/// The refresher's error as the core sees it.
pub(crate) fn lift<E>(error: RefreshError<E>) -> RefreshError<Fault<E>> {
    match error {
        RefreshError::Transient(e) => RefreshError::Transient(Fault::Refresher(e)),
        RefreshError::Permanent(e) => RefreshError::Permanent(Fault::Refresher(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::sync::Arc;

    use super::*;
    use crate::RefreshFailure;

    /// A refresher's error with a cause of its own.
    #[derive(Debug, thiserror::Error)]
    #[error("token endpoint unreachable")]
    struct Unreachable(#[source] std::io::Error);

    #[test]
    fn a_refreshers_error_and_its_causes_each_appear_once_in_the_chain() {
        let fault = Fault::Refresher(Unreachable(std::io::Error::other("connection refused")));
        let e: HandleError<Unreachable> =
            Error::RefreshUnavailable(RefreshFailure::Refresher(Arc::new(fault)));
        let mut chain = vec![e.to_string()];
        let mut next = e.source();
        while let Some(cause) = next {
            chain.push(cause.to_string());
            next = cause.source();
        }
        assert_eq!(
            chain,
            [
                "token refresh is failing, retry later",
                "token endpoint unreachable",
                "connection refused",
            ]
        );
        assert!(Fault::<Unreachable>::Panicked("boom".into())
            .source()
            .is_none());
    }
}
