//! What one fleet run simulates: the processes and their traffic, the
//! shared store with its latency and faults, the lease, and the pauses and
//! crashes injected into lease holders. Plain data; every random choice of
//! the run comes from `seed`.

use crate::rng::Rng;
use crate::scenario::{CoreKnobs, Latency};

/// How the processes coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every refresh goes through the shared store's guard.
    #[default]
    Store,
    /// Each process's tokenflight refreshes on its own, from the
    /// credential every process was started with.
    NoStore,
}

/// A planted bug in the guard (the checks must catch each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// The holder does not re-read the store under the lease.
    SkipReread,
    /// The holder writes without compare-and-swap.
    BlindWrite,
    /// The guard hands the token to the handle before the store took it.
    PublishBeforePersist,
}

impl Bug {
    /// Every planted bug.
    pub const ALL: [Bug; 3] = [Bug::SkipReread, Bug::BlindWrite, Bug::PublishBeforePersist];

    /// The name the command line takes.
    pub fn name(self) -> &'static str {
        match self {
            Bug::SkipReread => "skip-reread",
            Bug::BlindWrite => "blind-write",
            Bug::PublishBeforePersist => "publish-before-persist",
        }
    }
}

/// One fleet run.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetScenario {
    /// Seeds every random choice of the run.
    pub seed: u64,
    /// Processes sharing the credential.
    pub processes: u32,
    /// Requests per virtual second, per process.
    pub rate: f64,
    /// Requests stop arriving after this long; the run then drains.
    pub duration_ms: u64,
    /// Access-token lifetime.
    pub ttl_ms: u64,
    /// API round trips.
    pub api_latency: Latency,
    /// Refresh round trips.
    pub refresh_latency: Latency,
    /// A refresh answered with a 503.
    pub refresh_transient: f64,
    /// One store operation, there and back.
    pub store_latency: Latency,
    /// A store operation fails (typed error, nothing done).
    pub store_fail: f64,
    /// The store is unreachable in `[start, end)` ms.
    pub store_outage_ms: Option<(u64, u64)>,
    /// The guard's lease.
    pub lease_ms: u64,
    /// The guard does not start a call with less lease left than this.
    pub min_window_ms: u64,
    /// A waiter gives up (transiently) after this long.
    pub wait_limit_ms: u64,
    /// A waiter re-reads the store this often (or when the generation
    /// changes, told with the store's latency).
    pub poll_ms: u64,
    /// Chance that a lease holder is paused at one of its steps.
    pub pause: f64,
    /// A pause lasts this many leases.
    pub pause_leases: (u64, u64),
    /// Chance that a lease holder is killed at one of its steps.
    pub crash: f64,
    /// A killed process restarts after this long.
    pub restart_ms: u64,
    /// At most this many pauses and crashes in all.
    pub max_faults: u32,
    /// The user gives up on a request after this long.
    pub client_timeout_ms: u64,
    /// After the session died the user logs in again after this long.
    pub relogin_ms: u64,
    /// Each process's core.
    pub core: CoreKnobs,
}

impl FleetScenario {
    /// The fleet the default report shows: 8 processes, a minute-long
    /// token, a flaky store with one outage, holders paused and killed.
    pub fn default_run(seed: u64) -> Self {
        FleetScenario {
            seed,
            processes: 8,
            rate: 20.0,
            duration_ms: 600_000,
            ttl_ms: 60_000,
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
                slow_factor: 10.0,
            },
            refresh_transient: 0.1,
            store_latency: Latency {
                min_ms: 1.0,
                tail_ms: 2.0,
                slow: 0.02,
                slow_factor: 50.0,
            },
            store_fail: 0.02,
            store_outage_ms: Some((200_000, 215_000)),
            lease_ms: 10_000,
            min_window_ms: 5_000,
            wait_limit_ms: 8_000,
            poll_ms: 20,
            pause: 0.15,
            pause_leases: (2, 3),
            crash: 0.15,
            restart_ms: 2_000,
            max_faults: 6,
            client_timeout_ms: 30_000,
            relogin_ms: 3_000,
            core: CoreKnobs::default(),
        }
    }

    /// A fleet drawn from `seed`, as the swarm runs them: its size,
    /// traffic, token lifetime, store faults and injected faults vary.
    pub fn draw(seed: u64) -> Self {
        let mut r = Rng::stream(seed, 40);
        let mut sc = FleetScenario::default_run(seed);
        sc.processes = r.between(2, 12) as u32;
        sc.rate = r.between(2, 30) as f64;
        sc.ttl_ms = r.pick(&[20_000, 40_000, 60_000, 120_000]);
        sc.duration_ms = sc.ttl_ms * r.between(3, 6);
        sc.refresh_transient = r.pick(&[0.0, 0.1, 0.3]);
        sc.store_fail = r.pick(&[0.0, 0.01, 0.05, 0.2]);
        sc.store_latency.min_ms = r.pick(&[0.2, 1.0, 5.0]);
        sc.store_latency.slow = r.pick(&[0.0, 0.02, 0.1]);
        sc.store_outage_ms = if r.chance(0.5) {
            let start = r.below(sc.duration_ms);
            Some((start, start + r.between(1_000, 30_000)))
        } else {
            None
        };
        sc.lease_ms = r.pick(&[3_000, 10_000]);
        sc.min_window_ms = sc.lease_ms / 2;
        sc.poll_ms = r.pick(&[5, 20, 100]);
        sc.pause = r.pick(&[0.0, 0.1, 0.3]);
        sc.crash = r.pick(&[0.0, 0.1, 0.3]);
        sc.max_faults = r.between(0, 8) as u32;
        sc
    }
}
