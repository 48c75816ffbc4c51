//! What one run simulates: traffic, the token server, faults, and the
//! core's configuration. A scenario is plain data (JSON in regression
//! traces); every random choice of the run itself comes from `seed`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokenflight::{Config, ConfigError};

use crate::rng::Rng;

/// A latency distribution: `min_ms` plus an exponential tail of mean
/// `tail_ms`, and now and then (`slow`) a call `slow_factor` times slower.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// The floor, in milliseconds.
    pub min_ms: f64,
    /// Mean of the exponential part, in milliseconds.
    pub tail_ms: f64,
    /// Probability of a slow call.
    pub slow: f64,
    /// How much slower a slow call is.
    pub slow_factor: f64,
}

impl Latency {
    /// One round trip, in nanoseconds.
    pub(crate) fn draw(&self, rng: &mut Rng) -> u64 {
        let mut ms = self.min_ms + rng.exp(self.tail_ms);
        if rng.chance(self.slow) {
            ms *= self.slow_factor;
        }
        (ms * 1e6) as u64
    }
}

/// Faults, injected only while the run is in its fault phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// A refresh call is answered with a transient error (a 503).
    pub refresh_transient: f64,
    /// A refresh call hangs: never processed, never answered.
    pub refresh_hang: f64,
    /// A refresh call is processed (the refresh token rotates) but its
    /// answer is lost.
    pub refresh_drop: f64,
    /// An API call's answer is lost.
    pub api_drop: f64,
    /// Mean time between permanent revocations of the session (0: never).
    pub revoke_every_ms: u64,
}

/// The core's knobs, as the scenario sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreKnobs {
    /// [`Config::max_waiters`].
    pub max_waiters: usize,
    /// [`Config::max_auth_retries`].
    pub max_auth_retries: u32,
    /// [`Config::max_refresh_attempts`].
    pub max_refresh_attempts: u32,
    /// [`Config::refresh_timeout`], ms.
    pub refresh_timeout_ms: u64,
    /// [`Config::refresh_abandon_after`], ms.
    #[serde(default = "default_abandon_after_ms")]
    pub refresh_abandon_after_ms: u64,
    /// [`Config::backoff_initial`], ms.
    pub backoff_initial_ms: u64,
    /// [`Config::backoff_max`], ms.
    pub backoff_max_ms: u64,
    /// [`Config::cooldown`], ms.
    pub cooldown_ms: u64,
    /// [`Config::expiry_skew`], ms.
    pub expiry_skew_ms: u64,
    /// [`Config::skew_jitter`], ms.
    pub skew_jitter_ms: u64,
    /// [`Config::safety_margin`], ms (0 in files saved before it existed).
    #[serde(default = "default_safety_margin_ms")]
    pub safety_margin_ms: u64,
}

fn default_abandon_after_ms() -> u64 {
    Config::default().refresh_abandon_after.as_millis() as u64
}

/// Scenarios saved before the margin existed ran without one.
fn default_safety_margin_ms() -> u64 {
    0
}

impl CoreKnobs {
    /// The core configuration, seeded from the run's seed.
    pub fn config(&self, seed: u64) -> Config {
        let mut c = Config::default();
        c.max_waiters = self.max_waiters;
        c.max_auth_retries = self.max_auth_retries;
        c.max_refresh_attempts = self.max_refresh_attempts;
        c.refresh_timeout = ms(self.refresh_timeout_ms);
        c.refresh_abandon_after = ms(self.refresh_abandon_after_ms);
        c.backoff_initial = ms(self.backoff_initial_ms);
        c.backoff_max = ms(self.backoff_max_ms);
        c.cooldown = ms(self.cooldown_ms);
        c.expiry_skew = ms(self.expiry_skew_ms);
        c.skew_jitter = ms(self.skew_jitter_ms);
        c.safety_margin = ms(self.safety_margin_ms);
        c.seed = seed;
        c
    }
}

impl Default for CoreKnobs {
    fn default() -> Self {
        let c = Config::default();
        CoreKnobs {
            max_waiters: c.max_waiters,
            max_auth_retries: c.max_auth_retries,
            max_refresh_attempts: c.max_refresh_attempts,
            refresh_timeout_ms: c.refresh_timeout.as_millis() as u64,
            refresh_abandon_after_ms: c.refresh_abandon_after.as_millis() as u64,
            backoff_initial_ms: c.backoff_initial.as_millis() as u64,
            backoff_max_ms: c.backoff_max.as_millis() as u64,
            cooldown_ms: c.cooldown.as_millis() as u64,
            expiry_skew_ms: c.expiry_skew.as_millis() as u64,
            skew_jitter_ms: c.skew_jitter.as_millis() as u64,
            safety_margin_ms: c.safety_margin.as_millis() as u64,
        }
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// One simulated run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Seeds every random choice of the run.
    pub seed: u64,
    /// Requests to start, in all.
    pub requests: u64,
    /// Independent open-loop request streams.
    pub streams: u32,
    /// Requests per virtual second, all streams together.
    pub rate: f64,
    /// Mean time between bursts (0: no bursts).
    pub burst_every_ms: u64,
    /// Requests in one burst, all at the same instant.
    pub burst_size: u32,
    /// Faults are injected from the start until this time; then the run
    /// heals: refresh works and the server accepts fresh tokens.
    pub fault_ms: u64,
    /// Access-token lifetime.
    pub ttl_ms: u64,
    /// The lifetime varies by up to this much either way.
    pub ttl_jitter_ms: u64,
    /// The server's clock runs ahead: a token may die up to this much
    /// before the expiry it was announced with.
    pub early_expiry_ms: u64,
    /// Whether the client is told when a token expires (`expires_in`);
    /// without it only rejections reveal an expiry.
    pub announce_expiry: bool,
    /// API round trips.
    pub api_latency: Latency,
    /// Refresh round trips.
    pub refresh_latency: Latency,
    /// The HTTP client gives up on one call after this long.
    pub http_timeout_ms: u64,
    /// The user gives up on a request after this long (`None`: never).
    pub client_timeout_ms: Option<u64>,
    /// After the session is revoked the user logs in again after this long.
    pub relogin_ms: u64,
    /// Injected faults.
    pub faults: Faults,
    /// The core's configuration.
    pub core: CoreKnobs,
}

impl Scenario {
    /// The project's default run: a million requests from 200 streams, a
    /// token that lives about 15 s, two minutes of faults, then healed.
    pub fn default_run(seed: u64) -> Self {
        Scenario {
            seed,
            requests: 1_000_000,
            streams: 200,
            rate: 5_000.0,
            burst_every_ms: 20_000,
            burst_size: 300,
            fault_ms: 120_000,
            ttl_ms: 15_000,
            ttl_jitter_ms: 3_000,
            early_expiry_ms: 1_000,
            // As an OAuth token endpoint does (`expires_in`): what lets a
            // client refresh ahead of expiry. The recipe ignores it.
            announce_expiry: true,
            api_latency: Latency {
                min_ms: 20.0,
                tail_ms: 30.0,
                slow: 0.01,
                slow_factor: 10.0,
            },
            refresh_latency: Latency {
                min_ms: 50.0,
                tail_ms: 100.0,
                slow: 0.02,
                slow_factor: 20.0,
            },
            http_timeout_ms: 5_000,
            client_timeout_ms: Some(10_000),
            relogin_ms: 3_000,
            faults: Faults {
                refresh_transient: 0.25,
                refresh_hang: 0.03,
                refresh_drop: 0.0,
                api_drop: 0.001,
                revoke_every_ms: 40_000,
            },
            core: CoreKnobs {
                refresh_timeout_ms: 3_000,
                ..CoreKnobs::default()
            },
        }
    }

    /// A scenario drawn at random from `seed`, for swarm runs: each seed its
    /// own traffic, fault rates, token lifetimes and core configuration.
    /// `max_requests` bounds the run's size.
    pub fn draw(seed: u64, max_requests: u64) -> Self {
        let mut r = Rng::stream(seed, 0x5CE7);
        let requests = r.between(max_requests / 4, max_requests).max(1);
        let rate = r.pick(&[50.0, 200.0, 1_000.0, 5_000.0]);
        let ttl_ms = r.pick(&[500, 2_000, 10_000, 60_000]);
        let span_ms = (requests as f64 / rate * 1000.0) as u64;
        let maybe = |r: &mut Rng, ps: &[f64]| {
            let p = r.pick(ps);
            if r.chance(0.5) {
                p
            } else {
                0.0
            }
        };
        let faults = Faults {
            refresh_transient: maybe(&mut r, &[0.1, 0.3, 0.6, 0.9]),
            refresh_hang: maybe(&mut r, &[0.02, 0.1, 0.3]),
            refresh_drop: maybe(&mut r, &[0.02, 0.1, 0.3]),
            api_drop: maybe(&mut r, &[0.001, 0.01, 0.1]),
            revoke_every_ms: if r.chance(0.3) {
                r.between(ttl_ms, ttl_ms * 20)
            } else {
                0
            },
        };
        let backoff_initial_ms = r.pick(&[1, 50, 200]);
        let refresh_timeout_ms = r.pick(&[100, 1_000, 5_000]);
        let core = CoreKnobs {
            max_waiters: r.pick(&[4, 64, 1 << 17]),
            max_auth_retries: r.pick(&[0, 1, 2, 5]),
            max_refresh_attempts: r.pick(&[1, 2, 3, 6]),
            refresh_timeout_ms,
            refresh_abandon_after_ms: refresh_timeout_ms * r.pick(&[1, 3, 20]),
            backoff_initial_ms,
            backoff_max_ms: backoff_initial_ms * r.pick(&[1, 8, 40]),
            cooldown_ms: r.pick(&[0, 500, 5_000]),
            expiry_skew_ms: r.pick(&[0, 100, 5_000]),
            skew_jitter_ms: r.pick(&[0, 50, 1_000]),
            safety_margin_ms: r.pick(&[0, 20, 100]).min(ttl_ms / 4),
        };
        let lat = |r: &mut Rng, base: f64| Latency {
            min_ms: base * r.pick(&[0.2, 1.0, 3.0]),
            tail_ms: base * r.pick(&[0.5, 2.0, 10.0]),
            slow: r.pick(&[0.0, 0.01, 0.05]),
            slow_factor: r.pick(&[5.0, 50.0]),
        };
        Scenario {
            seed,
            requests,
            streams: r.pick(&[1, 4, 32, 200]),
            rate,
            burst_every_ms: if r.chance(0.5) {
                r.between(200, 20_000)
            } else {
                0
            },
            burst_size: r.pick(&[5, 50, 500]),
            fault_ms: span_ms * r.between(2, 8) / 10,
            ttl_ms,
            ttl_jitter_ms: ttl_ms * r.below(50) / 100,
            early_expiry_ms: if r.chance(0.5) {
                ttl_ms * r.below(30) / 100
            } else {
                0
            },
            announce_expiry: r.chance(0.5),
            api_latency: lat(&mut r, 20.0),
            refresh_latency: lat(&mut r, 50.0),
            http_timeout_ms: r.pick(&[200, 2_000, 10_000]),
            client_timeout_ms: if r.chance(0.5) {
                Some(r.pick(&[300, 3_000, 30_000]))
            } else {
                None
            },
            relogin_ms: r.pick(&[0, 500, 5_000]),
            faults,
            core,
        }
    }

    /// How long after healing every request that was outstanding must have
    /// ended: enough for the slowest legitimate path (a refresh round
    /// started before healing that still sits out its timeouts and
    /// back-offs, a cool-down, a re-login, and the retries of one request),
    /// with room to spare. The watchdog fails the run past it.
    pub fn watchdog_ms(&self) -> u64 {
        let c = &self.core;
        // The next attempt starts once the back-off has ended and the call
        // is over: answered (by the HTTP timeout at the latest) or given up.
        let call_over = c.refresh_abandon_after_ms.min(self.http_timeout_ms);
        let attempt = call_over.max(c.refresh_timeout_ms) + c.backoff_max_ms;
        let round = u64::from(c.max_refresh_attempts) * attempt;
        let sends = u64::from(c.max_auth_retries + 1);
        let call = self.http_timeout_ms;
        2 * (2 * round + c.cooldown_ms + self.relogin_ms + sends * call) + 10_000
    }
}

/// Why a scenario read from outside (a file, a regression trace) cannot be
/// run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The text is not JSON of a scenario or a regression trace.
    #[error("not a scenario or a regression trace: {0}")]
    Malformed(String),
    /// A number outside what a run can simulate.
    #[error("{field} is {value}, but must be {bound}")]
    OutOfRange {
        /// The field, as named in the JSON.
        field: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        bound: &'static str,
    },
    /// The core's knobs make a configuration that cannot work.
    #[error("the core's knobs cannot work: {0}")]
    Config(#[from] ConfigError),
}

/// The longest time a scenario may name, in milliseconds (a little over a
/// day): a run's virtual clock counts nanoseconds in a `u64`, and the
/// watchdog's horizon (a sum of such times, multiplied by the attempts and
/// sends of a request) must stay far from its end.
pub const MAX_MS: u64 = 100_000_000;
/// The most refresh attempts per round and retries per request.
pub const MAX_TRIES: u32 = 1_000;
/// The most request streams, and requests in one burst.
pub const MAX_STREAMS: u32 = 1_000_000;
/// The longest mean or floor of a latency, in milliseconds (about 17
/// minutes); with the exponential tail and `slow_factor` a draw stays far
/// below the end of the clock.
pub const MAX_LATENCY_MS: f64 = 1_000_000.0;
/// The largest `slow_factor`.
pub const MAX_SLOW_FACTOR: f64 = 1_000.0;
/// The longest span of arrivals, `requests / rate`, in seconds (about 3
/// years of virtual time).
pub const MAX_SPAN_S: f64 = 1e8;

impl Scenario {
    /// Checks that a run of this scenario can be simulated: every time fits
    /// the virtual clock, every probability is one, rates and latencies are
    /// finite, and the core's knobs make a valid configuration. Scenarios
    /// made in code are valid; one read from a file may not be.
    ///
    /// # Errors
    ///
    /// The first field found out of range, or the configuration's error.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight_sim::Scenario;
    ///
    /// let mut sc = Scenario::default_run(1);
    /// assert!(sc.validate().is_ok());
    /// sc.faults.api_drop = 1.5;
    /// assert!(sc.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let ms = |field: &'static str, v: u64| check(field, v, v <= MAX_MS, "at most 10^8 ms");
        let p = |field: &'static str, v: f64| {
            check(field, v, (0.0..=1.0).contains(&v), "a probability, 0 to 1")
        };
        ms("fault_ms", self.fault_ms)?;
        ms("ttl_ms", self.ttl_ms)?;
        ms("ttl_jitter_ms", self.ttl_jitter_ms)?;
        ms("early_expiry_ms", self.early_expiry_ms)?;
        ms("burst_every_ms", self.burst_every_ms)?;
        ms("http_timeout_ms", self.http_timeout_ms)?;
        ms("client_timeout_ms", self.client_timeout_ms.unwrap_or(0))?;
        ms("relogin_ms", self.relogin_ms)?;
        ms("faults.revoke_every_ms", self.faults.revoke_every_ms)?;
        let c = &self.core;
        ms("core.refresh_timeout_ms", c.refresh_timeout_ms)?;
        ms("core.refresh_abandon_after_ms", c.refresh_abandon_after_ms)?;
        ms("core.safety_margin_ms", c.safety_margin_ms)?;
        ms("core.backoff_initial_ms", c.backoff_initial_ms)?;
        ms("core.backoff_max_ms", c.backoff_max_ms)?;
        ms("core.cooldown_ms", c.cooldown_ms)?;
        ms("core.expiry_skew_ms", c.expiry_skew_ms)?;
        ms("core.skew_jitter_ms", c.skew_jitter_ms)?;
        p("faults.refresh_transient", self.faults.refresh_transient)?;
        p("faults.refresh_hang", self.faults.refresh_hang)?;
        p("faults.refresh_drop", self.faults.refresh_drop)?;
        p("faults.api_drop", self.faults.api_drop)?;
        for (name, l) in [
            ("api_latency", &self.api_latency),
            ("refresh_latency", &self.refresh_latency),
        ] {
            let lat = |v: f64| (0.0..=MAX_LATENCY_MS).contains(&v);
            check(name, l.min_ms, lat(l.min_ms), "min_ms from 0 to 10^6")?;
            check(name, l.tail_ms, lat(l.tail_ms), "tail_ms from 0 to 10^6")?;
            p(name, l.slow)?;
            let factor = (0.0..=MAX_SLOW_FACTOR).contains(&l.slow_factor);
            check(name, l.slow_factor, factor, "slow_factor from 0 to 1000")?;
        }
        let streams = (1..=MAX_STREAMS).contains(&self.streams);
        check("streams", self.streams, streams, "from 1 to 10^6")?;
        let burst = self.burst_size <= MAX_STREAMS;
        check("burst_size", self.burst_size, burst, "at most 10^6")?;
        // Each stream's mean gap between arrivals is at most 10^6 s.
        let rate = self.rate.is_finite() && self.rate * 1e6 >= f64::from(self.streams);
        check(
            "rate",
            self.rate,
            rate,
            "finite and at least streams / 10^6",
        )?;
        let span = self.requests as f64 / self.rate;
        check(
            "requests",
            self.requests,
            span <= MAX_SPAN_S,
            "at most rate * 10^8 s",
        )?;
        let tries = |field: &'static str, v: u32| check(field, v, v <= MAX_TRIES, "at most 1000");
        tries("core.max_refresh_attempts", c.max_refresh_attempts)?;
        tries("core.max_auth_retries", c.max_auth_retries)?;
        c.config(self.seed).validate()?;
        Ok(())
    }
}

fn check(
    field: &'static str,
    value: impl std::fmt::Display,
    ok: bool,
    bound: &'static str,
) -> Result<(), ScenarioError> {
    if ok {
        Ok(())
    } else {
        Err(ScenarioError::OutOfRange {
            field,
            value: value.to_string(),
            bound,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_configs_are_valid_and_repeat() {
        for seed in 0..200 {
            let a = Scenario::draw(seed, 5_000);
            assert_eq!(a, Scenario::draw(seed, 5_000));
            assert!(a.requests >= 1 && a.requests <= 5_000);
            assert_eq!(a.validate(), Ok(()), "{a:?}");
        }
        assert_eq!(Scenario::default_run(0).validate(), Ok(()));
    }

    #[test]
    fn numbers_a_run_cannot_simulate_are_named() {
        let field = |f: fn(&mut Scenario)| {
            let mut sc = Scenario::default_run(1);
            f(&mut sc);
            match sc.validate() {
                Err(ScenarioError::OutOfRange { field, .. }) => field,
                other => panic!("{other:?}"),
            }
        };
        // From a file: times that overflow the virtual clock's nanoseconds
        // (a fault phase of u64::MAX ms, arrivals at a rate of 0), draws
        // that mean nothing (NaN, infinite, negative probabilities).
        assert_eq!(field(|sc| sc.fault_ms = u64::MAX), "fault_ms");
        assert_eq!(field(|sc| sc.rate = 0.0), "rate");
        assert_eq!(field(|sc| sc.rate = f64::NAN), "rate");
        assert_eq!(field(|sc| sc.streams = 0), "streams");
        assert_eq!(
            field(|sc| sc.api_latency.tail_ms = f64::INFINITY),
            "api_latency"
        );
        assert_eq!(field(|sc| sc.faults.api_drop = -0.5), "faults.api_drop");
        assert_eq!(
            field(|sc| sc.core.max_refresh_attempts = u32::MAX),
            "core.max_refresh_attempts"
        );
        let mut sc = Scenario::default_run(1);
        sc.core.max_waiters = 0;
        assert!(matches!(sc.validate(), Err(ScenarioError::Config(_))));
    }
}
