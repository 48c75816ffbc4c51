//! The fleet part of the command line: the table in the default report,
//! and the fleet swarm.

use std::process::ExitCode;

use tokenflight_sim::fleet::{self, Bug, FleetScenario, Mode};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Prints the fleet table of the default fleet; true if the fleet with a
/// store broke a rule.
pub(crate) fn default_table(seed: u64) -> bool {
    let sc = FleetScenario::default_run(seed);
    let with = fleet::run(&sc, Mode::Store, None);
    let without = fleet::run(&sc, Mode::NoStore, None);
    println!();
    println!(
        "fleet: {} processes × {:.0} req/s for {} s, token ttl {} s, lease {} s, store failing {:.0}% of operations and down {}",
        sc.processes,
        sc.rate,
        sc.duration_ms / 1000,
        sc.ttl_ms / 1000,
        sc.lease_ms / 1000,
        sc.store_fail * 100.0,
        sc.store_outage_ms.map_or("never".to_string(), |(a, b)| format!("{} s–{} s", a / 1000, b / 1000)),
    );
    print!("{}", fleet::table(&with, &without));
    for f in with.findings.iter().take(5) {
        println!(
            "  fleet with store {} at {} ms: {}",
            f.rule, f.at_ms, f.detail
        );
    }
    let broke = with.violations() > 0;
    if broke {
        eprintln!(
            "the fleet broke a rule; replay: {}",
            fleet::replay(seed, None)
        );
    }
    broke
}

/// `--fleet-seeds A..B`: every seed draws its own fleet.
pub(crate) fn swarm(a: u64, b: u64, bug: Option<&str>) -> Res<ExitCode> {
    let bug = match bug {
        None => None,
        Some(name) => Some(
            Bug::ALL
                .into_iter()
                .find(|b| b.name() == name)
                .ok_or_else(|| format!("no fleet bug named {name:?}"))?,
        ),
    };
    let out = fleet::swarm(a..b, bug);
    println!(
        "fleet swarm: {} seeds, {} requests, {} expiries, {} second calls past a lease ({}), {} reuses; {} failing",
        out.seeds,
        out.requests,
        out.expiries,
        out.limit,
        out.limit_by_cause
            .iter()
            .map(|(c, n)| format!("{c:?} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        out.reuses,
        out.failures.len()
    );
    for (seed, f, replay) in out.failures.iter().take(10) {
        eprintln!(
            "fleet seed {seed} broke {} at {} ms: {}",
            f.rule, f.at_ms, f.detail
        );
        eprintln!("  replay: {replay}");
    }
    Ok(if out.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
