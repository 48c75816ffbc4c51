//! Tuning knobs, with defaults that suit a typical OAuth API.

use std::time::Duration;

/// How the core bounds and paces its work.
///
/// Start from [`Config::default`] and change the fields you need; the core
/// checks the whole of it when a handle (or [`Core`](crate::core::Core)) is built.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::Config;
///
/// let mut config = Config::default();
/// config.refresh_timeout = Duration::from_secs(5);
/// config.max_waiters = 10_000;
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Config {
    /// Requests allowed to wait for a refresh at once; the next one fails at
    /// once with [`Error::Overloaded`](crate::Error::Overloaded). At least 1.
    pub max_waiters: usize,
    /// How often one request is re-sent after the server rejected its token;
    /// then it fails with [`Error::AuthRejected`](crate::Error::AuthRejected).
    pub max_auth_retries: u32,
    /// Refresh attempts in one round (from the first attempt until a token is
    /// adopted or refreshing gives up). At least 1.
    pub max_refresh_attempts: u32,
    /// An attempt that has not answered after this long counts as failed
    /// (the soft timeout): its round backs off or gives up, but the call
    /// stays outstanding, and the next attempt waits until it has answered
    /// or been given up for good (`refresh_abandon_after`).
    pub refresh_timeout: Duration,
    /// The hard limit: a refresher call that has not answered after this
    /// long is given up for good ([`Action::AbandonRefresh`](crate::Action::AbandonRefresh)),
    /// its future dropped, and the next attempt may start. At least
    /// `refresh_timeout`. Until then no second call reaches the token
    /// endpoint, which with rotating refresh tokens would revoke the session.
    pub refresh_abandon_after: Duration,
    /// Back-off before the second attempt of a round; it doubles per attempt.
    pub backoff_initial: Duration,
    /// The back-off never exceeds this.
    pub backoff_max: Duration,
    /// After refreshing gives up transiently, new requests fail fast for this
    /// long; the first request after it starts a new round.
    pub cooldown: Duration,
    /// A token is refreshed this long before its expiry (when it has one).
    pub expiry_skew: Duration,
    /// Up to this much is added to the skew at random per token, so that many
    /// clients with tokens from one moment do not refresh in lockstep.
    pub skew_jitter: Duration,
    /// A token counts as expired this long before its stated expiry, for
    /// clock skew between client and server and for the time a request
    /// takes to reach the server. Until then it is *usable*: it is handed
    /// out to every request, also while a refresh ahead of expiry runs. A
    /// token that arrives with less life than this counts as expired.
    pub safety_margin: Duration,
    /// Seeds every random choice (back-off and skew jitter): same seed and
    /// same inputs, same outputs.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_waiters: 1 << 17,
            max_auth_retries: 2,
            max_refresh_attempts: 3,
            refresh_timeout: Duration::from_secs(10),
            refresh_abandon_after: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            cooldown: Duration::from_secs(10),
            expiry_skew: Duration::from_secs(30),
            skew_jitter: Duration::from_secs(5),
            safety_margin: Duration::from_secs(5),
            seed: 0,
        }
    }
}

/// A [`Config`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_waiters` is zero: no request could ever wait for a refresh.
    #[error("max_waiters must be at least 1")]
    NoWaiters,
    /// `max_refresh_attempts` is zero: no refresh could ever start.
    #[error("max_refresh_attempts must be at least 1")]
    NoRefreshAttempts,
    /// `refresh_timeout` is zero: every attempt would time out at once.
    #[error("refresh_timeout must be longer than zero")]
    ZeroRefreshTimeout,
    /// `refresh_abandon_after` is shorter than `refresh_timeout`: a call
    /// would be given up for good before it even timed out.
    #[error("refresh_abandon_after ({abandon_after:?}) must not be shorter than refresh_timeout ({timeout:?})")]
    AbandonBeforeTimeout {
        /// The configured hard limit.
        abandon_after: Duration,
        /// The configured soft timeout.
        timeout: Duration,
    },
    /// `backoff_initial` exceeds `backoff_max`.
    #[error("backoff_initial ({initial:?}) must not exceed backoff_max ({max:?})")]
    BackoffInverted {
        /// The configured initial back-off.
        initial: Duration,
        /// The configured maximum back-off.
        max: Duration,
    },
}

impl Config {
    /// Checks that the configuration can work.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_waiters == 0 {
            return Err(ConfigError::NoWaiters);
        }
        if self.max_refresh_attempts == 0 {
            return Err(ConfigError::NoRefreshAttempts);
        }
        if self.refresh_timeout.is_zero() {
            return Err(ConfigError::ZeroRefreshTimeout);
        }
        if self.refresh_abandon_after < self.refresh_timeout {
            return Err(ConfigError::AbandonBeforeTimeout {
                abandon_after: self.refresh_abandon_after,
                timeout: self.refresh_timeout,
            });
        }
        if self.backoff_initial > self.backoff_max {
            return Err(ConfigError::BackoffInverted {
                initial: self.backoff_initial,
                max: self.backoff_max,
            });
        }
        Ok(())
    }

    /// The most sends one request may have: its first and its retries.
    pub fn max_sends(&self) -> u32 {
        self.max_auth_retries.saturating_add(1)
    }
}

/// Builder-style setters, so that a configuration is one expression from
/// outside the crate (`Config` is `#[non_exhaustive]`, so a struct literal
/// is not): `Config::default().with_refresh_timeout(..).with_max_waiters(..)`.
/// Nothing is checked until the handle (or core) is built.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::{Config, ConfigError};
///
/// let config = Config::default()
///     .with_refresh_timeout(Duration::from_secs(5))
///     .with_max_waiters(10_000)
///     .with_seed(7);
/// assert_eq!(config.refresh_timeout, Duration::from_secs(5));
/// assert_eq!(Config::default().with_max_waiters(0).validate(), Err(ConfigError::NoWaiters));
/// ```
impl Config {
    /// Sets [`max_waiters`](Config::max_waiters).
    pub fn with_max_waiters(mut self, max_waiters: usize) -> Self {
        self.max_waiters = max_waiters;
        self
    }

    /// Sets [`max_auth_retries`](Config::max_auth_retries).
    pub fn with_max_auth_retries(mut self, max_auth_retries: u32) -> Self {
        self.max_auth_retries = max_auth_retries;
        self
    }

    /// Sets [`max_refresh_attempts`](Config::max_refresh_attempts).
    pub fn with_max_refresh_attempts(mut self, max_refresh_attempts: u32) -> Self {
        self.max_refresh_attempts = max_refresh_attempts;
        self
    }

    /// Sets [`refresh_timeout`](Config::refresh_timeout).
    pub fn with_refresh_timeout(mut self, refresh_timeout: Duration) -> Self {
        self.refresh_timeout = refresh_timeout;
        self
    }

    /// Sets [`backoff_initial`](Config::backoff_initial) and
    /// [`backoff_max`](Config::backoff_max).
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// Sets [`cooldown`](Config::cooldown).
    pub fn with_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Sets [`expiry_skew`](Config::expiry_skew) and
    /// [`skew_jitter`](Config::skew_jitter).
    pub fn with_expiry_skew(mut self, skew: Duration, jitter: Duration) -> Self {
        self.expiry_skew = skew;
        self.skew_jitter = jitter;
        self
    }

    /// Sets [`seed`](Config::seed): fixes every random choice (tests,
    /// simulations). Left at zero, each handle draws its own from the OS.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn each_unworkable_setting_is_named() {
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.max_waiters = 0), ConfigError::NoWaiters);
        assert_eq!(
            bad(|c| c.max_refresh_attempts = 0),
            ConfigError::NoRefreshAttempts
        );
        assert_eq!(
            bad(|c| c.refresh_timeout = Duration::ZERO),
            ConfigError::ZeroRefreshTimeout
        );
        assert_eq!(
            bad(|c| c.refresh_abandon_after = Duration::from_secs(9)),
            ConfigError::AbandonBeforeTimeout {
                abandon_after: Duration::from_secs(9),
                timeout: Duration::from_secs(10),
            }
        );
        assert!(matches!(
            bad(|c| c.backoff_initial = Duration::from_secs(60)),
            ConfigError::BackoffInverted { .. }
        ));
    }

    #[test]
    fn max_sends_saturates() {
        let c = Config {
            max_auth_retries: u32::MAX,
            ..Config::default()
        };
        assert_eq!(c.max_sends(), u32::MAX);
    }
}
