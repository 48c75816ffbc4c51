//! A deterministic simulator for tokenflight.
//!
//! One run is a [`Scenario`] and a seed: request streams arrive on a
//! virtual clock, a simulated token server hands out expiring access tokens
//! and single-use rotating refresh tokens, the network has latency and
//! faults, and an algorithm coordinates the refreshes: the real
//! [`tokenflight::core::Core`] (driven the way a front-end drives it, watched by
//! the shared [`tokenflight::check::Recorder`]), or a faithful port of the
//! mini-program recipe the project grew from (judged by the same
//! [`tokenflight::check::Monitor`]). Besides the shared checker the
//! simulator keeps its own books: outcomes per request, refresh calls as
//! the server sees them (overlaps, refresh-token reuse), and a watchdog that
//! every request outstanding when the faults heal ends within a bounded
//! virtual time.
//!
//! The real async handle ([`tokenflight::Handle`]) runs in the same world
//! ([`run_handle`]): on the lab's deterministic executor, with the world's
//! virtual time as its clock and timer, the world's token endpoint as its
//! refresher, and judged by the same `Monitor` from the events the handle
//! itself reports.
//!
//! There are no threads, no sleeping and no clock reads in a run: events
//! come out of a queue earliest first (ties in the order they were
//! scheduled), and every random choice comes from the seed, so a seed
//! replays a run byte for byte.

mod fast_script;
pub mod fleet;
pub mod flight;
pub mod handle;
pub mod html;
pub mod itf;
pub mod judge;
pub mod oracle;
mod queue;
pub mod random_script;
pub mod recipe;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod script;
pub mod server;
pub mod swarm;
pub mod timeline;
pub mod trace;
pub mod vectors;
pub mod world;

pub use flight::{SimCore, SimError, Tok};
pub use handle::Planted;
pub use report::{Finding, Stats};
pub use scenario::Scenario;
pub use world::{AlgoReport, Outcome, RunOptions};

/// Runs the real core on `sc`.
pub fn run_tokenflight(sc: &Scenario, opts: RunOptions) -> AlgoReport {
    run_tokenflight_with(sc, opts, |config| {
        SimCore::new(config).expect("scenario knobs make a valid config")
    })
}

/// Runs a core made by `make` (say, one with a planted bug) on `sc`.
pub fn run_tokenflight_with(
    sc: &Scenario,
    opts: RunOptions,
    make: impl FnOnce(tokenflight::Config) -> SimCore,
) -> AlgoReport {
    let core = make(sc.core.config(sc.seed));
    let tracing = opts.trace.is_some();
    world::run(sc, flight::Flight::new(core, tracing), opts)
}

/// Runs the real async handle ([`tokenflight::Handle`]) on `sc`, on the
/// lab's deterministic executor with the world's virtual time.
pub fn run_handle(sc: &Scenario, opts: RunOptions) -> AlgoReport {
    run_handle_with(sc, opts, Planted::default())
}

/// Runs the real async handle with bugs planted in it (with the `mutants`
/// feature; without it, asking for one panics).
pub fn run_handle_with(sc: &Scenario, opts: RunOptions, planted: Planted) -> AlgoReport {
    let tracing = opts.trace.is_some();
    let handle = handle::HandleFlight::new(sc.core.config(sc.seed), planted, tracing);
    world::run(sc, handle, opts)
}

/// Runs the recipe port on `sc`.
pub fn run_recipe(sc: &Scenario, opts: RunOptions) -> AlgoReport {
    world::run(sc, recipe::Recipe::new(), opts)
}
