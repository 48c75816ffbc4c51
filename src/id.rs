//! Identifiers: newtypes so that a request, a refresh attempt and a token
//! generation can never be confused for one another.

use std::fmt;

/// One logical call by a user of the library.
///
/// Ids are chosen by the caller (a front-end counts them), because a request
/// that took its token from the lock-free fast path never talks to the core
/// until its token is rejected. Ids only have to be unique among the requests
/// waiting at one time; front-ends and the simulator never reuse them at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// One refresh attempt, numbered by the core from 1 upwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RefreshId(pub u64);

/// Counts tokens: 0 means "no token yet"; each adopted refresh or
/// `set_token` adds one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Generation(pub u64);

impl Generation {
    /// No token has been obtained yet.
    pub const NONE: Generation = Generation(0);

    /// The generation after this one (saturating: 2^64 refreshes never happen,
    /// but no input may make the core panic).
    pub fn next(self) -> Generation {
        Generation(self.0.saturating_add(1))
    }
}

impl RefreshId {
    pub(crate) fn next(self) -> RefreshId {
        RefreshId(self.0.saturating_add(1))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request #{}", self.0)
    }
}

impl fmt::Display for RefreshId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refresh #{}", self.0)
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "generation {}", self.0)
    }
}
