//! What a store keeps per credential scope. Nothing here prints a token or
//! a credential: `Debug` shows generations, expiries and owners only.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::UnixMillis;
use crate::Generation;

/// Which credential a record belongs to (an account, an audience, a tenant,
/// …): distinct scopes never share a record, a lease or a refresh.
///
/// # Examples
///
/// ```
/// use tokenflight::store::Scope;
///
/// assert_eq!(Scope::new("alice@example.com").as_str(), "alice@example.com");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(String);

impl Scope {
    /// A scope named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Scope(name.into())
    }

    /// The scope's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name made safe as a file name or a key part: anything outside
    /// `[A-Za-z0-9._-]` becomes `%XX`, so two scopes never map to one file.
    pub(crate) fn escaped(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        for b in self.0.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
}

/// A secret string (an access token, a refresh credential): `Debug` and
/// `Display` never show it; [`expose`](Secret::expose) does, for the one
/// place that needs it.
///
/// # Examples
///
/// ```
/// use tokenflight::store::Secret;
///
/// let s = Secret::from("hunter2");
/// assert_eq!(s.expose(), "hunter2");
/// assert!(!format!("{s:?}").contains("hunter2"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Who wrote a record or holds a lease: the process id and a number unique
/// within the process, so two attempts of one process are two owners.
///
/// # Examples
///
/// ```
/// use tokenflight::store::Owner;
///
/// assert_ne!(Owner::unique(), Owner::unique());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Owner(String);

impl Owner {
    /// A tag no other call, in this process or another, has (pid, a process
    /// counter and the start time, which tells a reused pid apart).
    pub fn unique() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Owner(format!(
            "{}-{}-{n}",
            std::process::id(),
            process_start().as_u64()
        ))
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn process_start() -> UnixMillis {
    static START: std::sync::OnceLock<UnixMillis> = std::sync::OnceLock::new();
    *START.get_or_init(UnixMillis::now)
}

/// A token as stored: the access token, the rotating credential the user's
/// refresher needs next (a refresh token), and the expiry.
///
/// # Examples
///
/// ```
/// use tokenflight::store::{StoredToken, UnixMillis};
///
/// let t = StoredToken::new("at", Some("rt".into()), Some(UnixMillis::from_u64(1_000)));
/// assert_eq!(t.credential().unwrap().expose(), "rt");
/// assert!(!format!("{t:?}").contains("rt\""));
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    access_token: Secret,
    credential: Option<Secret>,
    expires_at: Option<UnixMillis>,
}

impl StoredToken {
    /// A token with its credential and its expiry, if known.
    pub fn new(
        access_token: impl Into<Secret>,
        credential: Option<Secret>,
        expires_at: Option<UnixMillis>,
    ) -> Self {
        StoredToken {
            access_token: access_token.into(),
            credential,
            expires_at,
        }
    }

    /// The access token.
    pub fn access_token(&self) -> &Secret {
        &self.access_token
    }

    /// The rotating credential, if the token came with one.
    pub fn credential(&self) -> Option<&Secret> {
        self.credential.as_ref()
    }

    /// When the access token expires, if known.
    pub fn expires_at(&self) -> Option<UnixMillis> {
        self.expires_at
    }
}

impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("access_token", &self.access_token)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// One scope's record: its generation, who wrote it, and the token (none
/// after a logout: the generation stays, so it never goes backwards).
///
/// # Examples
///
/// ```
/// use tokenflight::store::{Owner, Record, StoredToken};
/// use tokenflight::Generation;
///
/// let r = Record::new(Generation(3), Owner::unique(), Some(StoredToken::new("at", None, None)));
/// assert_eq!(r.generation(), Generation(3));
/// let json = r.to_json();
/// assert_eq!(Record::from_json(&json).unwrap(), r);
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    generation: u64,
    owner: Owner,
    token: Option<StoredToken>,
}

impl Record {
    /// A record of `generation`, written by `owner`.
    pub fn new(generation: Generation, owner: Owner, token: Option<StoredToken>) -> Self {
        Record {
            generation: generation.0,
            owner,
            token,
        }
    }

    /// The fleet-wide generation of this record (not a handle's own count).
    pub fn generation(&self) -> Generation {
        Generation(self.generation)
    }

    /// Who wrote it.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The token, unless the scope is logged out.
    pub fn token(&self) -> Option<&StoredToken> {
        self.token.as_ref()
    }

    /// The record as the JSON both backends store.
    pub fn to_json(&self) -> String {
        // Only strings and integers: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses what [`to_json`](Record::to_json) wrote.
    ///
    /// # Errors
    ///
    /// [`MalformedRecord`]: where the input stopped making sense, never
    /// what it held (so never a token).
    pub fn from_json(json: &str) -> Result<Self, MalformedRecord> {
        Record::from_slice(json.as_bytes())
    }

    pub(crate) fn from_slice(json: &[u8]) -> Result<Self, MalformedRecord> {
        serde_json::from_slice(json).map_err(|e| MalformedRecord {
            line: e.line(),
            column: e.column(),
        })
    }
}

/// A record that does not parse. Unlike the parser's own error, it keeps
/// only the position: a parser message may quote a value, and a value may
/// be a token.
///
/// # Examples
///
/// ```
/// use tokenflight::store::Record;
///
/// let e = Record::from_json(r#"{"generation": "hunter2"}"#).unwrap_err();
/// assert!(!e.to_string().contains("hunter2"));
/// assert_eq!(e.to_string(), "malformed token record at line 1, column 24");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed token record at line {line}, column {column}")]
pub struct MalformedRecord {
    line: usize,
    column: usize,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("generation", &self.generation)
            .field("owner", &self.owner)
            .field("token", &self.token)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let r = Record::new(
            Generation(1),
            Owner::unique(),
            Some(StoredToken::new(
                "hunter2",
                Some("swordfish".into()),
                Some(UnixMillis::from_u64(5)),
            )),
        );
        let printed = format!("{r:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("swordfish"));
        assert!(printed.contains("generation: 1"), "{printed}");
    }

    #[test]
    fn escaped_scopes_stay_distinct() {
        assert_eq!(Scope::new("a/b").escaped(), "a%2Fb");
        assert_ne!(Scope::new("a/b").escaped(), Scope::new("a%2Fb").escaped());
        assert_eq!(Scope::new("ok-1.x_y").escaped(), "ok-1.x_y");
    }
}
