//! Swarm runs, replay commands, shrinking and regression traces.
//!
//! A swarm runs many seeds, each with its own scenario drawn from the seed
//! ([`Scenario::draw`]), and judges tokenflight on every one. A failing run
//! is shrunk — fewer requests, fewer streams, faults switched off one by
//! one — to a smaller scenario that still breaks the same rule, and can be
//! saved as a named regression trace under `sim/regressions/`, which a test
//! replays forever after.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokenflight::Config;

use crate::flight::SimCore;
use crate::handle::Planted;
use crate::scenario::{Scenario, ScenarioError};
use crate::world::{AlgoReport, RunOptions};

/// Makes the core a run drives (the real one, or one with a planted bug).
pub type Maker = dyn Fn(Config) -> SimCore;

/// The largest drawn scenario by default, in requests.
pub const DEFAULT_MAX_REQUESTS: u64 = 20_000;

/// Where a scenario came from, for the replay command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `Scenario::default_run(seed)`.
    Default,
    /// `Scenario::draw(seed, max_requests)`.
    Drawn,
    /// Read from a file.
    File,
}

/// The maker for `--mutant NAME`, or the real core without one.
///
/// # Errors
///
/// An unknown mutant name, or a mutant asked for in a build without the
/// `mutants` feature.
pub fn core_maker(mutant: Option<&str>) -> Result<Box<Maker>, String> {
    match mutant {
        None => Ok(Box::new(|c| SimCore::new(c).expect("valid config"))),
        Some(name) => mutant_maker(name),
    }
}

#[cfg(feature = "mutants")]
fn mutant_maker(name: &str) -> Result<Box<Maker>, String> {
    use tokenflight::core::Mutant;
    let m = Mutant::ALL
        .into_iter()
        .find(|m| format!("{m:?}") == name)
        .ok_or_else(|| {
            let all: Vec<String> = Mutant::ALL.iter().map(|m| format!("{m:?}")).collect();
            format!("unknown mutant {name:?}; one of {}", all.join(", "))
        })?;
    Ok(Box::new(move |c| {
        SimCore::with_mutant(c, m).expect("valid config")
    }))
}

// The planted bugs exist only in a build with the feature.
#[cfg(not(feature = "mutants"))]
fn mutant_maker(_: &str) -> Result<Box<Maker>, String> {
    Err("--mutant needs a build with `--features mutants`".into())
}

/// The one-line command that replays a run of the core.
pub fn replay_command(
    sc: &Scenario,
    shape: Shape,
    max_requests: u64,
    mutant: Option<&str>,
) -> String {
    replay_command_for(sc, shape, max_requests, mutant, "tokenflight")
}

/// The one-line command that replays a run of `algorithm` (`tokenflight`,
/// the core, or `handle`).
pub fn replay_command_for(
    sc: &Scenario,
    shape: Shape,
    max_requests: u64,
    mutant: Option<&str>,
    algorithm: &str,
) -> String {
    let features = if mutant.is_some() {
        " --features mutants"
    } else {
        ""
    };
    let mut cmd = format!(
        "cargo run --release -p tokenflight-sim{features} -- --seed {}",
        sc.seed
    );
    let base = match shape {
        Shape::Default => Some(Scenario::default_run(sc.seed)),
        Shape::Drawn => {
            cmd.push_str(&format!(" --drawn --max-requests {max_requests}"));
            Some(Scenario::draw(sc.seed, max_requests))
        }
        Shape::File => None,
    };
    if let Some(base) = base {
        if base.requests != sc.requests {
            cmd.push_str(&format!(" --requests {}", sc.requests));
        }
    }
    if let Some(m) = mutant {
        cmd.push_str(&format!(" --mutant {m}"));
    }
    cmd.push_str(" --algo ");
    cmd.push_str(algorithm);
    cmd
}

/// One failing seed of a swarm.
#[derive(Debug, Clone, Serialize)]
pub struct SwarmFailure {
    /// Which path failed: `tokenflight` (the core) or `handle`.
    pub algorithm: &'static str,
    /// The seed.
    pub seed: u64,
    /// The first rule it broke.
    pub rule: String,
    /// What happened.
    pub detail: String,
    /// How to replay it.
    pub replay: String,
}

/// What a swarm found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SwarmOutcome {
    /// Seeds run.
    pub seeds: u64,
    /// Requests simulated.
    pub requests: u64,
    /// The failing seeds.
    pub failures: Vec<SwarmFailure>,
}

impl SwarmOutcome {
    /// Adds another path's swarm over the same seeds.
    pub fn absorb(&mut self, other: SwarmOutcome) {
        self.seeds = self.seeds.max(other.seeds);
        self.requests += other.requests;
        self.failures.extend(other.failures);
    }
}

/// Runs tokenflight (made by `make`, with planted bug `mutant` if any, for
/// the replay line) on the drawn scenario of every seed in `seeds`; a
/// progress bar on stderr if `progress`.
pub fn run(
    seeds: Range<u64>,
    max_requests: u64,
    make: &Maker,
    mutant: Option<&str>,
    progress: bool,
) -> SwarmOutcome {
    let run = |sc: &Scenario| crate::run_tokenflight_with(sc, RunOptions::default(), make);
    swarm_of(seeds, max_requests, mutant, progress, &run)
}

/// Runs the real handle (with core bug `planted`, named `mutant` for the
/// replay line) on the drawn scenario of every seed in `seeds`.
pub fn run_handle(
    seeds: Range<u64>,
    max_requests: u64,
    planted: Planted,
    progress: bool,
) -> SwarmOutcome {
    let run = |sc: &Scenario| crate::run_handle_with(sc, RunOptions::default(), planted);
    #[cfg(feature = "mutants")]
    let core = planted.core.map(|m| format!("{m:?}"));
    #[cfg(not(feature = "mutants"))]
    let core: Option<String> = None;
    #[allow(unused_mut)]
    let mut out = swarm_of(seeds, max_requests, core.as_deref(), progress, &run);
    #[cfg(feature = "mutants")]
    if let Some(m) = planted.handle {
        for f in &mut out.failures {
            f.replay = with_handle_mutant(&f.replay, &format!("{m:?}"));
        }
    }
    out
}

/// A replay command with the handle's own planted bug `name` added.
pub fn with_handle_mutant(replay: &str, name: &str) -> String {
    let mut cmd = if replay.contains("--features mutants") {
        replay.to_string()
    } else {
        replay.replacen(
            "-p tokenflight-sim",
            "-p tokenflight-sim --features mutants",
            1,
        )
    };
    cmd.push_str(" --handle-mutant ");
    cmd.push_str(name);
    cmd
}

/// What `--mutant CORE` and `--handle-mutant HANDLE` plant in the handle.
///
/// # Errors
///
/// An unknown name, or a planted bug asked for in a build without the
/// `mutants` feature.
#[cfg(feature = "mutants")]
pub fn planted(core: Option<&str>, handle: Option<&str>) -> Result<Planted, String> {
    fn named<M: std::fmt::Debug + Copy>(
        kind: &str,
        all: &[M],
        name: Option<&str>,
    ) -> Result<Option<M>, String> {
        let Some(name) = name else {
            return Ok(None);
        };
        let found = all.iter().copied().find(|m| format!("{m:?}") == name);
        found.map(Some).ok_or_else(|| {
            let names: Vec<String> = all.iter().map(|m| format!("{m:?}")).collect();
            format!("unknown {kind} {name:?}; one of {}", names.join(", "))
        })
    }
    Ok(Planted {
        core: named("mutant", &tokenflight::core::Mutant::ALL, core)?,
        handle: named(
            "handle mutant",
            &tokenflight::check::HandleMutant::ALL,
            handle,
        )?,
    })
}

/// What `--mutant CORE` and `--handle-mutant HANDLE` plant in the handle:
/// nothing, in a build without the `mutants` feature.
///
/// # Errors
///
/// A planted bug asked for.
#[cfg(not(feature = "mutants"))]
pub fn planted(core: Option<&str>, handle: Option<&str>) -> Result<Planted, String> {
    match (core, handle) {
        (None, None) => Ok(Planted::default()),
        _ => Err("--mutant and --handle-mutant need a build with `--features mutants`".into()),
    }
}

fn swarm_of(
    seeds: Range<u64>,
    max_requests: u64,
    mutant: Option<&str>,
    progress: bool,
    run: &dyn Fn(&Scenario) -> AlgoReport,
) -> SwarmOutcome {
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(seeds.end - seeds.start);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} seeds, {msg} failing, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message("0");
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut out = SwarmOutcome {
        seeds: 0,
        requests: 0,
        failures: Vec::new(),
    };
    for seed in seeds {
        let sc = Scenario::draw(seed, max_requests);
        let r = run(&sc);
        out.seeds += 1;
        out.requests += r.stats.requests;
        if let Some((rule, detail)) = first_failure(&r) {
            out.failures.push(SwarmFailure {
                algorithm: r.algorithm,
                seed,
                rule,
                detail,
                replay: replay_command_for(&sc, Shape::Drawn, max_requests, mutant, r.algorithm),
            });
            bar.set_message(out.failures.len().to_string());
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    out
}

/// The first rule `r` broke and what happened, if any.
pub fn first_failure(r: &AlgoReport) -> Option<(String, String)> {
    if r.violation_count() == 0 {
        return None;
    }
    let (rule, _) = r.rule_counts.iter().find(|(_, n)| *n > 0)?;
    let detail = r
        .violations
        .first()
        .map_or_else(String::new, |f| format!("[{}] {}", f.source, f.detail));
    Some((rule.clone(), detail))
}

fn breaks(sc: &Scenario, rule: &str, make: &Maker) -> bool {
    let r = crate::run_tokenflight_with(sc, RunOptions::default(), make);
    r.rule_counts.iter().any(|(k, n)| k == rule && *n > 0)
}

/// Smaller variants of `sc`, most aggressive first.
fn candidates(sc: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    let mut push = |f: &dyn Fn(&mut Scenario)| {
        let mut c = sc.clone();
        f(&mut c);
        if c != *sc {
            out.push(c);
        }
    };
    for div in [16, 4, 2] {
        push(&|c| c.requests = (c.requests / div).max(1));
    }
    push(&|c| c.requests = c.requests * 3 / 4);
    push(&|c| c.requests = c.requests.saturating_sub(1).max(1));
    push(&|c| c.streams = 1);
    push(&|c| c.burst_every_ms = 0);
    push(&|c| c.faults.revoke_every_ms = 0);
    push(&|c| c.faults.refresh_hang = 0.0);
    push(&|c| c.faults.refresh_drop = 0.0);
    push(&|c| c.faults.refresh_transient = 0.0);
    push(&|c| c.faults.api_drop = 0.0);
    push(&|c| c.client_timeout_ms = None);
    push(&|c| c.early_expiry_ms = 0);
    push(&|c| c.ttl_jitter_ms = 0);
    push(&|c| c.fault_ms /= 2);
    push(&|c| c.burst_size = (c.burst_size / 2).max(1));
    out
}

/// Shrinks a scenario on which tokenflight (made by `make`) breaks a rule
/// to a smaller one that still breaks the same rule. Returns it with the
/// rule, or `None` if `sc` does not fail at all.
pub fn shrink(sc: &Scenario, make: &Maker) -> Option<(Scenario, String)> {
    let r = crate::run_tokenflight_with(sc, RunOptions::default(), make);
    let (rule, _) = first_failure(&r)?;
    let mut best = sc.clone();
    let mut budget = 400;
    'outer: while budget > 0 {
        for c in candidates(&best) {
            budget -= 1;
            if breaks(&c, &rule, make) {
                best = c;
                continue 'outer;
            }
            if budget == 0 {
                break;
            }
        }
        break;
    }
    Some((best, rule))
}

/// A saved regression: a shrunk failing scenario, replayed by a test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Regression {
    /// Its name (the file name without `.json`).
    pub name: String,
    /// The planted bug it was found with, if any (the real core must pass
    /// it; the mutant must still fail it).
    pub mutant: Option<String>,
    /// The rule the failing run broke.
    pub rule: String,
    /// The first violation, as found.
    pub detail: String,
    /// The scenario.
    pub scenario: Scenario,
}

/// The directory of committed regression traces.
pub fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions")
}

/// Shrinks the failing `sc` and saves it as regression `name`.
///
/// # Errors
///
/// `sc` does not fail, or the file cannot be written.
pub fn shrink_and_save(
    sc: &Scenario,
    name: &str,
    mutant: Option<&str>,
    make: &Maker,
) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let (small, rule) = shrink(sc, make).ok_or("the run does not fail: nothing to save")?;
    let r = crate::run_tokenflight_with(&small, RunOptions::default(), make);
    let detail = first_failure(&r).map(|(_, d)| d).unwrap_or_default();
    let reg = Regression {
        name: name.to_string(),
        mutant: mutant.map(str::to_string),
        rule,
        detail,
        scenario: small,
    };
    let dir = regressions_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&reg)? + "\n")?;
    Ok(path)
}

/// Reads a scenario from a JSON file: a bare scenario or a regression.
///
/// # Errors
///
/// The file cannot be read, or [`parse_scenario`]'s error.
pub fn load_scenario(path: &Path) -> Result<Scenario, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    Ok(parse_scenario(&text)?)
}

/// Reads a scenario from JSON text: a bare scenario or a regression trace.
/// Only a scenario that [`Scenario::validate`] accepts is returned, so any
/// text either runs or is refused here with a typed error.
///
/// # Errors
///
/// [`ScenarioError::Malformed`] for text that is neither, or the scenario's
/// validation error.
///
/// # Examples
///
/// ```
/// use tokenflight_sim::scenario::ScenarioError;
/// use tokenflight_sim::swarm::parse_scenario;
///
/// let text = serde_json::to_string(&tokenflight_sim::Scenario::default_run(3)).unwrap();
/// assert_eq!(parse_scenario(&text).unwrap().seed, 3);
/// assert!(matches!(parse_scenario("{"), Err(ScenarioError::Malformed(_))));
/// ```
pub fn parse_scenario(text: &str) -> Result<Scenario, ScenarioError> {
    let sc = match serde_json::from_str::<Regression>(text) {
        Ok(reg) => reg.scenario,
        Err(_) => serde_json::from_str::<Scenario>(text)
            .map_err(|e| ScenarioError::Malformed(e.to_string()))?,
    };
    sc.validate()?;
    Ok(sc)
}

/// Reads a regression trace from JSON text; its scenario must be valid.
///
/// # Errors
///
/// [`ScenarioError::Malformed`] for text that is not a regression trace, or
/// its scenario's validation error.
pub fn parse_regression(text: &str) -> Result<Regression, ScenarioError> {
    let reg: Regression =
        serde_json::from_str(text).map_err(|e| ScenarioError::Malformed(e.to_string()))?;
    reg.scenario.validate()?;
    Ok(reg)
}

/// Every committed regression.
///
/// # Errors
///
/// A file that cannot be read or parsed.
pub fn load_regressions() -> Result<Vec<Regression>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(regressions_dir()) else {
        return Ok(out);
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p)?;
        out.push(parse_regression(&text).map_err(|e| format!("{}: {e}", p.display()))?);
    }
    Ok(out)
}
