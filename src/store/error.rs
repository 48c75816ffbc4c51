//! The stores' errors. None of them ever contains a token or a credential:
//! they name paths, operations and generations, and chain their cause
//! through `source()`.

use std::path::PathBuf;
use std::time::Duration;

use super::MalformedRecord;

/// Why a store could not be read or written.
///
/// # Examples
///
/// ```
/// use std::error::Error as _;
/// use tokenflight::store::StoreError;
///
/// let e = StoreError::Io {
///     op: "read",
///     path: "/tmp/x".into(),
///     source: std::io::Error::other("disk on fire"),
/// };
/// assert_eq!(e.to_string(), "cannot read /tmp/x");
/// assert_eq!(e.source().unwrap().to_string(), "disk on fire");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was being done (`read`, `write`, `lock`, …).
        op: &'static str,
        /// On which file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The record file and its last good copy are both unreadable. Neither
    /// is overwritten until a login writes a new record.
    #[error("the token store {} is corrupt", path.display())]
    Corrupt {
        /// The record file.
        path: PathBuf,
        /// The parser's error (it never quotes the file's content).
        #[source]
        source: MalformedRecord,
    },
    /// The Redis server could not be reached or refused the command.
    #[cfg(feature = "redis")]
    #[error("redis store: cannot {op}")]
    Redis {
        /// What was being done.
        op: &'static str,
        /// The client's error.
        #[source]
        source: ::redis::RedisError,
    },
    /// Redis holds something under the scope's key that is not a record.
    #[error("the token store holds an unreadable record for scope {scope}")]
    Unreadable {
        /// The scope's name.
        scope: String,
        /// The parser's error.
        #[source]
        source: MalformedRecord,
    },
}

/// Why a guarded refresh failed; the handle gets it inside its
/// [`RefreshError`](crate::RefreshError).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::store::GuardError;
///
/// let e: GuardError<std::io::Error> = GuardError::Busy { waited: Duration::from_secs(2) };
/// assert_eq!(e.to_string(), "another process held the refresh lease for 2s without a new token");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError<E> {
    /// The store failed (a transient failure: the handle backs off and
    /// tries again; no refresh was made without the store).
    #[error("token store failed")]
    Store(#[source] StoreError),
    /// The user's refresher failed.
    #[error("refresher failed")]
    Refresher(#[source] E),
    /// Another process kept the lease for the whole wait without a new
    /// generation appearing (transient).
    #[error("another process held the refresh lease for {waited:?} without a new token")]
    Busy {
        /// How long this call waited.
        waited: Duration,
    },
    /// The new token could not be persisted because a newer generation
    /// won the compare-and-swap and that one is not usable; nothing was
    /// published (transient).
    #[error("a newer token generation won the store; this refresh was not kept")]
    Fenced,
    /// The scope was logged out, or another process's refresh was refused
    /// for good: only a login helps (permanent). The user's refresher is not
    /// called, so a refused credential is not spent again.
    #[error("the scope is logged out; a login is needed")]
    LoggedOut,
}

impl<E> From<StoreError> for GuardError<E> {
    fn from(e: StoreError) -> Self {
        GuardError::Store(e)
    }
}
