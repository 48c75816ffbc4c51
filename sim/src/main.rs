//! `tokenflight-sim`: runs the simulator from the command line.
//!
//! With no arguments it runs the default scenario with tokenflight and the
//! recipe, prints the comparison table and writes the HTML report; it exits
//! non-zero if tokenflight broke any rule (the recipe's violations are the
//! point of the comparison, not a failure).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod fleet_report;
use tokenflight_sim::swarm::{self, Shape};
use tokenflight_sim::{
    html, judge, oracle, random_script, report, vectors, AlgoReport, RunOptions, Scenario,
};

#[derive(Parser, Debug)]
#[command(
    name = "tokenflight-sim",
    about = "Deterministic simulator: tokenflight's core against the mini-program recipe, with faults."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The seed of a single run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Swarm: run every seed in A..B, each with its own drawn scenario
    /// (tokenflight only).
    #[arg(long, value_name = "A..B", conflicts_with = "seed")]
    seeds: Option<String>,
    /// Fleet swarm: run the fleet (with its store) drawn from every seed
    /// in A..B, checked fleet-wide.
    #[arg(long, value_name = "A..B", conflicts_with_all = ["seed", "seeds"])]
    fleet_seeds: Option<String>,
    /// Plant this bug in the fleet's guard (skip-reread, blind-write,
    /// publish-before-persist).
    #[arg(long, value_name = "NAME")]
    fleet_bug: Option<String>,
    /// Leave the fleet comparison out of the default report.
    #[arg(long)]
    no_fleet: bool,
    /// Run the scenario drawn from the seed (as the swarm does) instead of
    /// the default one.
    #[arg(long)]
    drawn: bool,
    /// Largest drawn scenario, in requests.
    #[arg(long, default_value_t = swarm::DEFAULT_MAX_REQUESTS)]
    max_requests: u64,
    /// Override the number of requests of the scenario.
    #[arg(long)]
    requests: Option<u64>,
    /// Run a scenario read from this JSON file (a regression trace or a
    /// saved scenario).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["seeds", "drawn"])]
    scenario: Option<PathBuf>,
    /// Which algorithms to run (a swarm runs the core and the handle, or
    /// the one named).
    #[arg(long, value_enum, default_value_t = Algo::All)]
    algo: Algo,
    /// Write the event trace as JSON lines to FILE (one run; with both
    /// algorithms, tokenflight's lines come first).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Where to write the HTML report.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "target/tokenflight-sim/report.html"
    )]
    html: PathBuf,
    /// Do not write the HTML report.
    #[arg(long)]
    no_html: bool,
    /// Drive a core with this planted bug (needs `--features mutants`).
    #[arg(long, value_name = "NAME")]
    mutant: Option<String>,
    /// Plant this bug in the real handle's own driving code (needs
    /// `--features mutants`; DropTimedOutCall, StartBesideOutstandingCall,
    /// ForgetToWakeRound, ReportUnderLock).
    #[arg(long, value_name = "NAME")]
    handle_mutant: Option<String>,
    /// When tokenflight fails, shrink the failing run and save it as
    /// `sim/regressions/NAME.json`.
    #[arg(long, value_name = "NAME")]
    save_regression: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write the conformance vectors (ITF traces) to a directory.
    Vectors {
        /// Output directory.
        #[arg(long, default_value = "sim/vectors")]
        out: PathBuf,
    },
    /// Conformance oracle: reads scripts (one JSON object per line) on
    /// stdin, writes the real core's ITF trace for each (or a typed error
    /// line) on stdout.
    Oracle {
        /// Print how many scripts per second were answered on stderr.
        #[arg(long)]
        stats: bool,
    },
    /// Judge: reads a front-end's event history (one JSON event per line)
    /// on stdin and prints the checker's verdict on S1-S7 (and L1 with
    /// `--heal`); exits 1 on a violation, 2 on malformed input.
    Judge {
        /// The history is complete (the faults healed and the run ended):
        /// judge L1, every request that arrived must have ended.
        #[arg(long)]
        heal: bool,
        /// Print the verdict as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Writes random scripts (one JSON object per line) for differential
    /// testing: the same seed, the same scripts.
    Scripts {
        /// The first script's seed; script i has seed N + i.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// How many scripts.
        #[arg(long, default_value_t = 1_000)]
        count: u64,
    },
}

/// Which algorithms a run (or a swarm) drives.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Algo {
    /// The core, the real handle and the recipe (a swarm: the core and the
    /// handle).
    #[value(alias = "both")]
    All,
    /// The core, through the simulator's own driver.
    Tokenflight,
    /// The real async handle, on the lab.
    Handle,
    /// The recipe alone.
    Recipe,
}

impl Algo {
    fn core(self) -> bool {
        matches!(self, Algo::All | Algo::Tokenflight)
    }

    fn handle(self) -> bool {
        matches!(self, Algo::All | Algo::Handle)
    }

    fn recipe(self) -> bool {
        matches!(self, Algo::All | Algo::Recipe)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tokenflight-sim: {e}");
            ExitCode::from(2)
        }
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn run(cli: Cli) -> Res<ExitCode> {
    if let Some(Command::Vectors { out }) = &cli.command {
        let n = vectors::write_all(out)?;
        println!("wrote {n} conformance traces to {}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    match &cli.command {
        Some(Command::Oracle { stats }) => return oracle_run(*stats),
        Some(Command::Judge { heal, json }) => return judge_run(*heal, *json),
        Some(Command::Scripts { seed, count }) => {
            let mut out = BufWriter::new(std::io::stdout().lock());
            for script in random_script::draw_many(*seed, *count) {
                serde_json::to_writer(&mut out, &script.to_json())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    if let Some(range) = &cli.fleet_seeds {
        let (a, b) = parse_range(range)?;
        return fleet_report::swarm(a, b, cli.fleet_bug.as_deref());
    }
    let make = swarm::core_maker(cli.mutant.as_deref())?;
    let planted = swarm::planted(cli.mutant.as_deref(), cli.handle_mutant.as_deref())?;
    if let Some(range) = &cli.seeds {
        let (a, b) = parse_range(range)?;
        return swarm_run(&cli, a, b, &make, planted);
    }
    let (sc, shape) = scenario(&cli)?;
    let opts_for = |name: &str| -> Res<RunOptions> {
        let mut opts = RunOptions::default();
        if !cli.no_html {
            opts.timeline = Some(html::window(&sc));
        }
        if let Some(path) = &cli.trace {
            let first = if cli.algo.core() {
                "tokenflight"
            } else if cli.algo.handle() {
                "handle"
            } else {
                "recipe"
            };
            let file = if name == first {
                File::create(path)?
            } else {
                File::options().append(true).open(path)?
            };
            opts.trace = Some(Box::new(BufWriter::with_capacity(1 << 20, file)));
        }
        Ok(opts)
    };
    let started = wall_clock();
    let mut reports: Vec<AlgoReport> = Vec::new();
    // Each path's own simulated requests per second of wall time.
    let mut rates: Vec<(&'static str, u64, f64)> = Vec::new();
    let mut timed = |reports: &mut Vec<AlgoReport>, run: &dyn Fn() -> Res<AlgoReport>| {
        let t0 = wall_clock();
        let report = run()?;
        let secs = wall_clock().saturating_sub(t0).as_secs_f64();
        rates.push((report.algorithm, report.stats.requests, secs));
        reports.push(report);
        Res::Ok(())
    };
    if cli.algo.core() {
        timed(&mut reports, &|| {
            Ok(tokenflight_sim::run_tokenflight_with(
                &sc,
                opts_for("tokenflight")?,
                &make,
            ))
        })?;
    }
    if cli.algo.handle() {
        timed(&mut reports, &|| {
            Ok(tokenflight_sim::run_handle_with(
                &sc,
                opts_for("handle")?,
                planted,
            ))
        })?;
    }
    if cli.algo.recipe() {
        timed(&mut reports, &|| {
            Ok(tokenflight_sim::run_recipe(&sc, opts_for("recipe")?))
        })?;
    }
    let wall = wall_clock().saturating_sub(started).as_secs_f64();
    let simulated: u64 = reports.iter().map(|r| r.stats.requests).sum();
    let throughput = simulated as f64 / wall.max(1e-9);
    let broken: Vec<&AlgoReport> = reports
        .iter()
        .filter(|r| r.algorithm != "recipe" && r.violation_count() > 0)
        .collect();
    let failed = !broken.is_empty();

    let html_path = if cli.no_html {
        None
    } else {
        let page = html::page(&sc, &reports, throughput);
        if let Some(dir) = cli.html.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&cli.html, page)?;
        Some(cli.html.clone())
    };

    let refs: Vec<&AlgoReport> = reports.iter().collect();
    if cli.json {
        let summary = report::json_summary(&sc, &refs, wall, throughput);
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "scenario: {} requests, {} streams, {:.0} req/s, token ttl {} ms ± {} ms, faults for {} ms then healed (seed {}{})",
            sc.requests,
            sc.streams,
            sc.rate,
            sc.ttl_ms,
            sc.ttl_jitter_ms,
            sc.fault_ms,
            sc.seed,
            match shape {
                Shape::Default => "",
                Shape::Drawn => ", drawn",
                Shape::File => ", from file",
            }
        );
        println!();
        print!("{}", report::table(&refs));
        println!();
        print!("{}", report::violations_by_rule(&refs));
        for r in &reports {
            for f in r
                .violations
                .iter()
                .take(if r.algorithm == "recipe" { 3 } else { 10 })
            {
                println!(
                    "  {} {} [{}] at {:.3} ms: {}",
                    r.algorithm, f.rule, f.source, f.at_ms, f.detail
                );
            }
        }
        println!();
        println!(
            "simulated {simulated} requests in {wall:.2} s of wall time: {:.2} M requests/s",
            throughput / 1e6
        );
        for (algorithm, requests, secs) in &rates {
            println!(
                "  {algorithm}: {requests} requests in {secs:.2} s: {:.2} M requests/s",
                *requests as f64 / secs.max(1e-9) / 1e6
            );
        }
        if let Some(p) = &html_path {
            println!("HTML report: {}", absolute(p).display());
        }
    }
    let fleet_failed = shape == Shape::Default
        && !cli.no_fleet
        && !cli.json
        && fleet_report::default_table(cli.seed);
    if failed {
        for r in &broken {
            let mut replay = swarm::replay_command_for(
                &sc,
                shape,
                cli.max_requests,
                cli.mutant.as_deref(),
                r.algorithm,
            );
            if let (Some(m), "handle") = (&cli.handle_mutant, r.algorithm) {
                replay = swarm::with_handle_mutant(&replay, m);
            }
            eprintln!(
                "{} broke the contract on seed {}; replay: {replay}",
                r.algorithm, sc.seed
            );
        }
        let core_broke = broken.iter().any(|r| r.algorithm == "tokenflight");
        if let (Some(name), true) = (&cli.save_regression, core_broke) {
            let path = swarm::shrink_and_save(&sc, name, cli.mutant.as_deref(), &make)?;
            eprintln!("shrunk and saved: {}", path.display());
        }
        return Ok(ExitCode::FAILURE);
    }
    if fleet_failed {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn judge_run(heal: bool, json: bool) -> Res<ExitCode> {
    match judge::judge(std::io::stdin().lock(), heal) {
        Ok(verdict) => {
            if json {
                println!("{}", verdict.to_json());
            } else {
                print!("{verdict}");
            }
            Ok(ExitCode::from(u8::from(!verdict.ok())))
        }
        Err(e) => {
            if json {
                let v = serde_json::json!({"error": e.kind, "line": e.line, "detail": e.detail});
                println!("{v}");
            }
            eprintln!("tokenflight-sim judge: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

fn oracle_run(stats: bool) -> Res<ExitCode> {
    let started = wall_clock();
    let stdin = std::io::stdin().lock();
    let out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let batch = oracle::run_batch(stdin, out)?;
    if stats {
        let wall = wall_clock().saturating_sub(started).as_secs_f64();
        let scripts = batch.traces + batch.errors;
        eprintln!(
            "oracle: {scripts} scripts ({} traces, {} errors, {} inputs) in {wall:.3} s: {:.0} scripts/s",
            batch.traces,
            batch.errors,
            batch.inputs,
            scripts as f64 / wall.max(1e-9)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn scenario(cli: &Cli) -> Res<(Scenario, Shape)> {
    let (mut sc, shape) = if let Some(path) = &cli.scenario {
        (swarm::load_scenario(path)?, Shape::File)
    } else if cli.drawn {
        (Scenario::draw(cli.seed, cli.max_requests), Shape::Drawn)
    } else {
        (Scenario::default_run(cli.seed), Shape::Default)
    };
    if let Some(n) = cli.requests {
        sc.requests = n;
    }
    Ok((sc, shape))
}

fn swarm_run(
    cli: &Cli,
    a: u64,
    b: u64,
    make: &swarm::Maker,
    planted: tokenflight_sim::Planted,
) -> Res<ExitCode> {
    let started = wall_clock();
    let mutant = cli.mutant.as_deref();
    let mut outcome = swarm::SwarmOutcome::default();
    if cli.algo != Algo::Handle {
        outcome.absorb(swarm::run(a..b, cli.max_requests, make, mutant, true));
    }
    if cli.algo.handle() {
        let handle = swarm::run_handle(a..b, cli.max_requests, planted, true);
        outcome.absorb(handle);
    }
    let wall = wall_clock().saturating_sub(started).as_secs_f64();
    let rate = outcome.requests as f64 / wall.max(1e-9);
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        println!(
            "swarm{}: {} seeds, {} requests, {} failing; {:.2} M requests/s",
            match cli.algo {
                Algo::All => " (core and handle)",
                Algo::Handle => " (handle)",
                _ => " (core)",
            },
            outcome.seeds,
            outcome.requests,
            outcome.failures.len(),
            rate / 1e6
        );
    }
    for f in &outcome.failures {
        eprintln!(
            "{} seed {} broke {}: {}",
            f.algorithm, f.seed, f.rule, f.detail
        );
        eprintln!("  replay: {}", f.replay);
    }
    let first_core = outcome
        .failures
        .iter()
        .find(|f| f.algorithm == "tokenflight");
    if let (Some(first), Some(name)) = (first_core, &cli.save_regression) {
        let sc = Scenario::draw(first.seed, cli.max_requests);
        let path = swarm::shrink_and_save(&sc, name, cli.mutant.as_deref(), make)?;
        eprintln!("shrunk and saved: {}", path.display());
    }
    Ok(if outcome.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn parse_range(s: &str) -> Res<(u64, u64)> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("expected A..B, got {s:?}"))?;
    let (a, b): (u64, u64) = (a.trim().parse()?, b.trim().parse()?);
    if b <= a {
        return Err(format!("empty seed range {s:?}").into());
    }
    Ok((a, b))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Wall-clock time, used only to measure the simulator's own throughput;
/// nothing in a run reads it.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> std::time::Duration {
    use std::sync::OnceLock;
    use std::time::Instant;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}
