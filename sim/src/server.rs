//! The simulated token server: access tokens with a lifetime, validation,
//! and single-use rotating refresh tokens. Reusing a refresh token revokes
//! its whole family (every access and refresh token descended from one
//! login), as OAuth 2.1 servers do, so a double refresh is not waste but a
//! forced new login.
//!
//! Token and refresh-token ids are indices into the server's books; the
//! client never sees anything else.

use crate::rng::Rng;
use crate::scenario::Scenario;

/// What the server hands out on a login or a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The access token.
    pub access: u64,
    /// The refresh token to use next time (single use).
    pub refresh: u64,
    /// The expiry the server announces (`expires_in`), virtual nanoseconds.
    pub expires_at: u64,
}

/// The server's answer to a refresh it processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// New tokens.
    Granted(Grant),
    /// `invalid_grant`: the family is revoked (maybe by this very call, a
    /// reuse).
    InvalidGrant,
}

/// What the server says of a token an API call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted.
    Valid,
    /// Past its (server-side) expiry.
    Expired,
    /// Its family was revoked.
    Revoked,
}

struct Access {
    family: u32,
    /// When the server stops accepting it (may be before the announced
    /// expiry: the server's clock runs ahead).
    dies_at: u64,
}

struct RefreshToken {
    family: u32,
    used: bool,
    /// The answer to the call that used it reached the client: from then on
    /// the client knows its successor, so sending it again is a client bug.
    successor_seen: bool,
}

/// A reuse of a refresh token, as the server saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reuse {
    /// When.
    pub at: u64,
    /// The client had received the rotation answer for this token before
    /// reusing it: no lost answer excuses it.
    pub seen: bool,
}

/// The token server.
pub struct Server {
    access: Vec<Access>,
    families: Vec<Option<u64>>,
    refresh: Vec<RefreshToken>,
    rng: Rng,
    ttl: u64,
    ttl_jitter: u64,
    early: u64,
    /// Reuses seen, in order.
    pub reuses: Vec<Reuse>,
    /// Families revoked by a fault (not by a reuse).
    pub revocations: u64,
    /// Logins.
    pub logins: u64,
}

const MS: u64 = 1_000_000;

impl Server {
    /// A server for `scenario`.
    pub fn new(sc: &Scenario) -> Self {
        Server {
            access: Vec::new(),
            families: Vec::new(),
            refresh: Vec::new(),
            rng: Rng::stream(sc.seed, 3),
            ttl: sc.ttl_ms * MS,
            ttl_jitter: sc.ttl_jitter_ms * MS,
            early: sc.early_expiry_ms * MS,
            reuses: Vec::new(),
            revocations: 0,
            logins: 0,
        }
    }

    /// A new login: a new family.
    pub fn login(&mut self, now: u64) -> Grant {
        self.logins += 1;
        self.families.push(None);
        let family = (self.families.len() - 1) as u32;
        self.issue(family, now)
    }

    fn issue(&mut self, family: u32, now: u64) -> Grant {
        let lo = self.ttl.saturating_sub(self.ttl_jitter).max(MS);
        let ttl = self.rng.between(lo, self.ttl + self.ttl_jitter);
        let expires_at = now + ttl;
        let dies_at = expires_at - self.rng.below(self.early.min(ttl / 2) + 1);
        self.access.push(Access { family, dies_at });
        self.refresh.push(RefreshToken {
            family,
            used: false,
            successor_seen: false,
        });
        Grant {
            access: (self.access.len() - 1) as u64,
            refresh: (self.refresh.len() - 1) as u64,
            expires_at,
        }
    }

    /// Whether the client has received the answer that rotated `rt`.
    pub fn successor_seen(&self, rt: u64) -> bool {
        self.refresh
            .get(rt as usize)
            .is_some_and(|t| t.successor_seen)
    }

    /// Processes a refresh with refresh token `rt` at `now`; `seen` says
    /// whether the client had received `rt`'s rotation before it sent this
    /// call (what makes a reuse a client bug rather than a lost answer).
    pub fn refresh(&mut self, rt: u64, now: u64, seen: bool) -> Refreshed {
        let Some(token) = self.refresh.get_mut(rt as usize) else {
            return Refreshed::InvalidGrant;
        };
        let family = token.family;
        if self.families[family as usize].is_some() {
            return Refreshed::InvalidGrant;
        }
        if token.used {
            self.families[family as usize] = Some(now);
            self.reuses.push(Reuse { at: now, seen });
            return Refreshed::InvalidGrant;
        }
        token.used = true;
        Refreshed::Granted(self.issue(family, now))
    }

    /// The client received the answer of the call that used `rt`.
    pub fn answer_seen(&mut self, rt: u64) {
        if let Some(t) = self.refresh.get_mut(rt as usize) {
            t.successor_seen = true;
        }
    }

    /// What the server says of `access` at `at`. Revocation is judged by
    /// its time, so an answer computed later than `at` is still exact.
    pub fn verdict(&self, access: u64, at: u64) -> Verdict {
        let Some(a) = self.access.get(access as usize) else {
            return Verdict::Revoked;
        };
        if self.families[a.family as usize].is_some_and(|r| r <= at) {
            return Verdict::Revoked;
        }
        if at >= a.dies_at {
            return Verdict::Expired;
        }
        Verdict::Valid
    }

    /// Revokes the family of the most recent grant (a permanent fault).
    pub fn revoke_latest(&mut self, now: u64) {
        if let Some(f) = self.families.last_mut() {
            if f.is_none() {
                *f = Some(now);
                self.revocations += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Server {
        let mut sc = Scenario::default_run(1);
        sc.ttl_jitter_ms = 0;
        sc.early_expiry_ms = 0;
        Server::new(&sc)
    }

    #[test]
    fn tokens_expire_and_rotate() {
        let mut s = server();
        let g = s.login(0);
        assert_eq!(s.verdict(g.access, 0), Verdict::Valid);
        assert_eq!(s.verdict(g.access, g.expires_at), Verdict::Expired);
        let Refreshed::Granted(g2) = s.refresh(g.refresh, 5, false) else {
            panic!()
        };
        assert_ne!(g2.refresh, g.refresh);
        assert_eq!(s.verdict(g.access, 6), Verdict::Valid, "old token lives on");
    }

    #[test]
    fn reuse_revokes_the_family() {
        let mut s = server();
        let g = s.login(0);
        let Refreshed::Granted(g2) = s.refresh(g.refresh, 1, false) else {
            panic!()
        };
        s.answer_seen(g.refresh);
        assert!(s.successor_seen(g.refresh));
        assert_eq!(s.refresh(g.refresh, 2, true), Refreshed::InvalidGrant);
        assert_eq!(s.reuses, [Reuse { at: 2, seen: true }]);
        assert_eq!(s.verdict(g2.access, 2), Verdict::Revoked);
        assert_eq!(s.verdict(g2.access, 1), Verdict::Valid, "judged by time");
        assert_eq!(s.refresh(g2.refresh, 3, false), Refreshed::InvalidGrant);
        let g3 = s.login(4);
        assert_eq!(s.verdict(g3.access, 4), Verdict::Valid);
    }
}
