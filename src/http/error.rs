//! What a request through the layer can end with, other than a response.

use crate::HandleError;

/// A type-erased error, as the [`Classify`](super::Classify) futures and
/// the `tower` ecosystem pass them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a request through [`Auth`](super::Auth) ended without a response.
///
/// `E` is the refresher's error, `S` the inner service's. No variant ever
/// contains the token. Each wrapped error is the
/// [`source()`](std::error::Error::source), not part of the message, so a
/// chain printed by `anyhow` or a logger shows each cause once.
///
/// # Examples
///
/// ```
/// use std::error::Error as _;
/// use tokenflight::http::AuthError;
/// use tokenflight::Error;
///
/// let e: AuthError<std::io::Error, std::io::Error> = AuthError::Token(Error::Overloaded);
/// assert_eq!(e.to_string(), "no usable token");
/// assert_eq!(e.source().unwrap().to_string(), "too many requests are waiting for a token");
/// assert!(matches!(e.token_error(), Some(Error::Overloaded)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError<E, S> {
    /// The handle could not give the request a usable token: refreshing
    /// failed (transiently too often, or for good), or too many requests
    /// wait. (A request the server rejected on every send is not an error:
    /// the caller gets the last rejection, marked
    /// [`RetriesExhausted`](super::RetriesExhausted).)
    #[error("no usable token")]
    Token(#[source] HandleError<E>),
    /// The inner service failed (a connection error, say).
    #[error("the inner service failed")]
    Service(#[source] S),
    /// The token cannot be put in a header.
    #[error(transparent)]
    InvalidToken(#[from] InvalidToken),
    /// Reading the response to classify it failed.
    #[error("classifying the response failed")]
    Classify(#[source] BoxError),
}

impl<E, S> AuthError<E, S> {
    /// The handle's error, if that is why the request failed.
    pub fn token_error(&self) -> Option<&HandleError<E>> {
        match self {
            AuthError::Token(e) => Some(e),
            _ => None,
        }
    }
}

/// The token has bytes a header value cannot hold (a newline, say). The
/// token itself is never part of the message.
///
/// # Examples
///
/// ```
/// use tokenflight::http::{Bearer, Inject};
///
/// let mut headers = http::HeaderMap::new();
/// let err = Bearer.inject(&"bad\ntoken".to_string(), &mut headers).unwrap_err();
/// assert_eq!(err.to_string(), "the token is not a valid header value");
/// assert!(headers.is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, thiserror::Error)]
#[error("the token is not a valid header value")]
pub struct InvalidToken;
