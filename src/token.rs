//! What goes in and out of the core with a token in it. None of these types
//! ever print the token: `Debug` shows only its generation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{Generation, Timestamp};

/// A token a request may be sent with, and what the core needs to know about
/// that send if the server rejects it.
///
/// The token is shared (`Arc`) so that resuming a hundred thousand waiters
/// costs a reference count each, not a copy of the token.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Lease<T> {
    token: Arc<T>,
    generation: Generation,
    send: u32,
    niche: Niche,
}

/// A byte of a lease's padding with one valid value, so that the enums
/// around a lease keep their tags in it: a ticket, and the `Option` and
/// `Result` around it, are each as large as a lease, with no tag word of
/// their own to write and test on the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
enum Niche {
    Zero = 0,
}

impl<T> Lease<T> {
    pub(crate) fn new(token: Arc<T>, generation: Generation, send: u32) -> Self {
        Lease {
            token,
            generation,
            send,
            niche: Niche::Zero,
        }
    }

    /// A lease from its parts, for drivers that keep leases outside the core
    /// (persisted, or replayed from a conformance script). The core trusts
    /// nothing in it but its generation and send count: a lease naming a
    /// generation it never issued is answered with
    /// [`Error::UnknownGeneration`](crate::Error::UnknownGeneration).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokenflight::core::Lease;
    /// use tokenflight::Generation;
    ///
    /// let lease = Lease::from_parts(Arc::new("t1"), Generation(3), 2);
    /// assert_eq!((lease.generation(), lease.send()), (Generation(3), 2));
    /// ```
    pub fn from_parts(token: Arc<T>, generation: Generation, send: u32) -> Self {
        Lease::new(token, generation, send)
    }

    /// The token to put on the request.
    pub fn token(&self) -> &T {
        &self.token
    }

    /// The shared token, for callers that keep it beyond the lease.
    pub fn shared_token(&self) -> &Arc<T> {
        &self.token
    }

    /// Which generation the token is.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// Which send of its request this is: 1 for the first, 2 for the first
    /// retry, and so on.
    pub fn send(&self) -> u32 {
        self.send
    }

    /// The same token for the first send of another request; front-ends use
    /// it to hand out a published snapshot without touching the core.
    pub fn first_send(&self) -> Self {
        Lease::new(Arc::clone(&self.token), self.generation, 1)
    }
}

impl<T> fmt::Debug for Lease<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("token", &"<redacted>")
            .field("generation", &self.generation.0)
            .field("send", &self.send)
            .finish()
    }
}

/// A token obtained by a refresh or a login, with its expiry if the server
/// said one, and the refresh credential to use next time if it rotates one.
///
/// A server's `expires_in` goes in as it is ([`expires_in`](Fresh::expires_in)):
/// the handles timestamp it when the answer arrives. Absolute times go in
/// with [`expiring_at`](Fresh::expiring_at).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::{Credential, Fresh, Timestamp};
///
/// let fresh = Fresh::new("secret")
///     .expires_in(Duration::from_secs(60))
///     .with_credential(Credential::new("refresh-2"));
/// let stamped = fresh.clone().stamped(Timestamp::ZERO);
/// assert_eq!(stamped.expires_at(), Some(Timestamp::from_millis(60_000)));
/// assert!(!format!("{fresh:?}").contains("secret"));
/// assert!(!format!("{fresh:?}").contains("refresh-2"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fresh<T> {
    token: T,
    expires_at: Option<Timestamp>,
    /// A lifetime not yet turned into `expires_at`.
    lifetime: Option<Duration>,
    credential: Option<Credential>,
}

impl<T> Fresh<T> {
    /// A token without a known expiry: it is used until the server rejects it
    /// and never refreshed ahead of time.
    pub fn new(token: T) -> Self {
        Fresh {
            token,
            expires_at: None,
            lifetime: None,
            credential: None,
        }
    }

    /// The same token, known to expire at `at`.
    pub fn expiring_at(mut self, at: Timestamp) -> Self {
        self.expires_at = Some(at);
        self.lifetime = None;
        self
    }

    /// The same token, expiring `lifetime` after it arrives (a server's
    /// `expires_in`). The handles timestamp it when the refresher answers;
    /// a driver of the core calls [`stamped`](Fresh::stamped) itself.
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self.expires_at = None;
        self
    }

    /// The same token, with the refresh credential that the next refresh
    /// is to use (a rotated refresh token). The handles keep it with the
    /// token and hand it to the next refresh as
    /// [`Refresh::credential`](crate::Refresh::credential).
    pub fn with_credential(mut self, credential: Credential) -> Self {
        self.credential = Some(credential);
        self
    }

    /// The same token with a lifetime given by
    /// [`expires_in`](Fresh::expires_in) turned into an expiry, counted
    /// from `now`.
    pub fn stamped(mut self, now: Timestamp) -> Self {
        if let Some(lifetime) = self.lifetime.take() {
            self.expires_at = Some(now + lifetime);
        }
        self
    }

    /// When the token expires, if known (and [`stamped`](Fresh::stamped)).
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }

    /// The refresh credential that came with it, if any.
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    /// The token itself.
    pub fn token(&self) -> &T {
        &self.token
    }

    pub(crate) fn into_parts(self) -> (T, Option<Timestamp>) {
        (self.token, self.expires_at)
    }
}

impl<T> fmt::Debug for Fresh<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fresh")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("lifetime", &self.lifetime)
            .field("credential", &self.credential)
            .finish()
    }
}

/// A secret that gets the next token, e.g. an OAuth refresh token: opaque
/// to the handles, which keep the latest one with the token it came with
/// and hand it to the next refresh. Never shown by `Debug`.
///
/// # Examples
///
/// ```
/// use tokenflight::Credential;
///
/// let credential = Credential::new("rt-1");
/// assert_eq!(credential.expose(), "rt-1");
/// assert_eq!(format!("{credential:?}"), "Credential(<redacted>)");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credential(Arc<str>);

impl Credential {
    /// A credential holding `secret`.
    pub fn new(secret: impl Into<Arc<str>>) -> Self {
        Credential(secret.into())
    }

    /// The secret, to put on the refresh request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let lease = Lease::new(Arc::new("hunter2"), Generation(3), 1);
        let printed = format!("{lease:?} {:?}", Fresh::new("hunter2"));
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("generation: 3"), "{printed}");
    }
}
