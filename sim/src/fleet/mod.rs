//! A fleet of processes on one credential: each process drives its own
//! real [`tokenflight::core::Core`] with many clients; with a store, every
//! refresh goes through the guard's protocol (`tokenflight::store::Guard`,
//! modelled step for step in `fleet/guard.rs`) over a shared
//! simulated store with latency, faults and an outage; holders are paused
//! past their lease and killed before and after the server answered. The
//! same fleet without a store shows what uncoordinated processes cost.
//!
//! ```
//! use tokenflight_sim::fleet::{self, FleetScenario, Mode};
//!
//! let mut sc = FleetScenario::default_run(7);
//! sc.duration_ms = 120_000;
//! sc.processes = 3;
//! let with = fleet::run(&sc, Mode::Store, None);
//! assert_eq!(with.violations(), 0, "{:?}", with.findings.first());
//! let without = fleet::run(&sc, Mode::NoStore, None);
//! assert!(without.reuses > 0);
//! ```

mod check;
mod guard;
mod scenario;
mod store;
mod world;

use std::fmt::Write as _;
use std::ops::Range;

pub use check::{Books, Cause, FleetFinding};
pub use scenario::{Bug, FleetScenario, Mode};
pub use store::{Op, Rec, Reply, SimStore, Stored, Write};

/// Runs the fleet of `sc` in `mode`, with a planted bug in the guard if
/// `bug` says so.
pub fn run(sc: &FleetScenario, mode: Mode, bug: Option<Bug>) -> Books {
    world::Fleet::new(sc, mode, bug).run()
}

/// One row's cell, from a run's books.
type Cell = Box<dyn Fn(&Books) -> String>;

/// The comparison table: the fleet with its store, and without.
pub fn table(with: &Books, without: &Books) -> String {
    let mut out = String::new();
    let rows: [(&str, Cell); 15] = [
        ("processes", Box::new(|b| b.processes.to_string())),
        ("requests", Box::new(|b| b.requests.to_string())),
        (
            "  answered / failed / given up / lost in a kill",
            Box::new(|b| {
                format!(
                    "{} / {} / {} / {}",
                    b.completed, b.failed, b.cancelled, b.lost
                )
            }),
        ),
        (
            "expiries (tokens replaced)",
            Box::new(|b| b.expiries.to_string()),
        ),
        (
            "refresh calls at the server",
            Box::new(|b| b.refresh_calls.to_string()),
        ),
        ("refresh-token reuses", Box::new(|b| b.reuses.to_string())),
        (
            "revocations (logins lost)",
            Box::new(|b| b.reuses.to_string()),
        ),
        ("logins", Box::new(|b| b.logins.to_string())),
        (
            "F1: second refresh for one expiry",
            Box::new(|b| b.f1.to_string()),
        ),
        (
            "  past a lease (documented limit)",
            Box::new(|b| {
                let mut s = b.limit_cases().to_string();
                if !b.limit.is_empty() {
                    let parts: Vec<String> =
                        b.limit.iter().map(|(c, n)| format!("{c:?} {n}")).collect();
                    let _ = write!(s, " ({})", parts.join(", "));
                }
                s
            }),
        ),
        ("F2: older over newer", Box::new(|b| store_only(b, b.f2))),
        ("F3: sent before stored", Box::new(|b| store_only(b, b.f3))),
        (
            "monitor violations (per process)",
            Box::new(|b| b.monitor.to_string()),
        ),
        (
            "pauses / kills before call / kills after answer",
            Box::new(|b| format!("{} / {} / {}", b.pauses, b.crashes[0], b.crashes[1])),
        ),
        (
            "recovered faults / restarts on the stored token",
            Box::new(|b| format!("{} / {}", b.recoveries, b.restarts_loaded)),
        ),
    ];
    let _ = writeln!(
        out,
        "{:<50} {:>22} {:>22}",
        "fleet", "with store", "without store"
    );
    for (name, cell) in &rows {
        let _ = writeln!(out, "{:<50} {:>22} {:>22}", name, cell(with), cell(without));
    }
    out
}

/// A store rule's count; without a store there is nothing to judge.
fn store_only(b: &Books, n: u64) -> String {
    if b.mode == Mode::Store {
        n.to_string()
    } else {
        "-".to_string()
    }
}

/// A fleet swarm's outcome.
#[derive(Debug, Clone, Default)]
pub struct SwarmOutcome {
    /// Seeds run.
    pub seeds: u64,
    /// Requests simulated.
    pub requests: u64,
    /// Expiries, second calls past a lease, reuses, summed.
    pub expiries: u64,
    /// Second calls past a lease (the documented limit).
    pub limit: u64,
    /// The same, by what kept the holder past its lease.
    pub limit_by_cause: std::collections::BTreeMap<Cause, u64>,
    /// Reuses at the server, all of them past a lease.
    pub reuses: u64,
    /// Failing seeds: the seed, the first finding, the replay line.
    pub failures: Vec<(u64, FleetFinding, String)>,
}

/// The command line that replays fleet seed `seed`.
pub fn replay(seed: u64, bug: Option<Bug>) -> String {
    let mut s = format!(
        "cargo run --release -p tokenflight-sim -- --fleet-seeds {seed}..{}",
        seed + 1
    );
    if let Some(b) = bug {
        let _ = write!(s, " --fleet-bug {}", b.name());
    }
    s
}

/// Runs the fleet drawn from every seed in `seeds`, with its store.
pub fn swarm(seeds: Range<u64>, bug: Option<Bug>) -> SwarmOutcome {
    let mut out = SwarmOutcome::default();
    for seed in seeds {
        let books = run(&FleetScenario::draw(seed), Mode::Store, bug);
        out.seeds += 1;
        out.requests += books.requests;
        out.expiries += books.expiries;
        out.limit += books.limit_cases();
        for (cause, n) in &books.limit {
            *out.limit_by_cause.entry(*cause).or_default() += n;
        }
        out.reuses += books.reuses;
        if let Some(f) = books.findings.first() {
            out.failures.push((seed, f.clone(), replay(seed, bug)));
        }
    }
    out
}
