//! What a refresher is told: [`Refresh`].

use std::fmt;
use std::sync::Arc;

use super::clock::Clock;
use crate::{Credential, Generation};

/// What a refresh call is for: the token it replaces (if any), that token's
/// generation, the refresh credential that came with the latest token, and
/// the handle's clock.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::{blocking, Credential, Fresh, Generation, Refresh, RefreshError};
///
/// // A server that rotates its refresh token with every access token.
/// let handle = blocking::Handle::new(Default::default(), |refresh: Refresh<String>| {
///     let next = match refresh.credential() {
///         Some(rt) => format!("{}+", rt.expose()),
///         None => "rt".to_string(),
///     };
///     let token = format!("access for {:?}", refresh.generation());
///     Ok::<_, RefreshError<()>>(
///         Fresh::new(token)
///             .expires_in(Duration::from_secs(3600))
///             .with_credential(Credential::new(next)),
///     )
/// })
/// .unwrap();
/// let first = handle.ticket().unwrap();
/// assert_eq!(first.generation(), Generation(1));
/// let second = handle.reject(first).unwrap();
/// assert_eq!(second.generation(), Generation(2));
/// ```
#[derive(Clone)]
pub struct Refresh<T> {
    pub(crate) current: Option<Arc<T>>,
    pub(crate) generation: Generation,
    pub(crate) credential: Option<Credential>,
    pub(crate) clock: Clock,
}

impl<T> Refresh<T> {
    /// What a first call is told: no token yet, no credential; for calling
    /// a refresher outside a handle (tests, a custom driver).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight::{Clock, Generation, Refresh};
    ///
    /// let first: Refresh<String> = Refresh::new(Clock::system());
    /// assert_eq!((first.current(), first.generation()), (None, Generation::NONE));
    /// ```
    pub fn new(clock: Clock) -> Self {
        Refresh {
            current: None,
            generation: Generation::NONE,
            credential: None,
            clock,
        }
    }

    /// The token this call is to replace: `None` before the first.
    pub fn current(&self) -> Option<&T> {
        self.current.as_deref()
    }

    /// Its generation ([`Generation::NONE`] before the first token).
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The refresh credential that came with the latest token (from a
    /// refresh or a login), if any.
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    /// The handle's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}

impl<T> fmt::Debug for Refresh<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refresh")
            .field("current", &self.current.as_ref().map(|_| "<redacted>"))
            .field("generation", &self.generation.0)
            .field("credential", &self.credential)
            .finish()
    }
}
