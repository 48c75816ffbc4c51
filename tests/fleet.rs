//! Real processes sharing one credential through a store, against the real
//! token server (single-use rotating refresh tokens; a reuse revokes the
//! login): the test binary starts copies of itself as the fleet's workers.
//!
//! Each scenario logs in once, then runs rounds: the server expires every
//! access token, and every worker fires its requests at once, so every
//! process meets the expiry. Counted at the server: refreshes, reuses,
//! per-request successes. Faults: `kill -9` of the lease holder before and
//! after the server answered, `SIGSTOP` of the holder past its lease, Redis
//! killed and restarted, the store's files deleted and corrupted, and a
//! restart of the whole fleet. Every wait is bounded.

// Real processes and a real server keep real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::TempDir;
use tokenflight::store::{
    FileStore, GuardOptions, LeaseGrant, Owner, Record, RedisStore, Renewal, Scope, Secret, Store,
    StoreError, Swap,
};
use tokenflight::{Clock, Config, Fresh, Generation, Handle, RefreshError, Reply};
use tokenserver::{Knobs, TokenServer, REQUEST_ID};

const SCOPE: &str = "fleet-user";
const PATIENCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- worker

/// One process of the fleet; does nothing unless started by a scenario.
#[test]
#[ignore = "a fleet worker: started by the fleet scenarios, not by cargo test"]
fn worker() {
    let Ok(dir) = std::env::var("TF_DIR") else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} unset"));
    let coord = PathBuf::from(dir);
    let index: u32 = env("TF_INDEX").parse().unwrap();
    let first_round: u32 = env("TF_FIRST_ROUND").parse().unwrap();
    let rounds: u32 = env("TF_ROUNDS").parse().unwrap();
    let requests: u32 = env("TF_REQUESTS").parse().unwrap();
    let lease = Duration::from_millis(env("TF_LEASE_MS").parse().unwrap());
    let url = env("TF_URL");
    let store = env("TF_STORE");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _enter = runtime.enter();
    let slow_lease = std::env::var("TF_SLOW_LEASE").is_ok_and(|v| v == "1");
    if let (Some(path), true) = (store.strip_prefix("file:"), slow_lease) {
        run_worker(
            SlowLease(FileStore::open(path).unwrap()),
            &coord,
            index,
            first_round,
            rounds,
            requests,
            lease,
            &url,
            &runtime,
        );
    } else if let Some(path) = store.strip_prefix("file:") {
        run_worker(
            FileStore::open(path).unwrap(),
            &coord,
            index,
            first_round,
            rounds,
            requests,
            lease,
            &url,
            &runtime,
        );
    } else if let Some(redis) = store.strip_prefix("redis:") {
        let store = RedisStore::open(redis)
            .unwrap()
            .with_timeout(Duration::from_millis(300));
        run_worker(
            store,
            &coord,
            index,
            first_round,
            rounds,
            requests,
            lease,
            &url,
            &runtime,
        );
    } else {
        panic!("unknown store {store}");
    }
}

/// A store whose lease is slow to take. A guard that skips the re-read
/// under the lease refreshes again only if the holder publishes between a
/// waiter's read and its lease; with the lease taking 30 ms that window is
/// most of every poll, not a microsecond, so the planted bug shows on any
/// machine, loaded or not.
#[derive(Clone)]
struct SlowLease<S>(S);

impl<S: Store> Store for SlowLease<S> {
    fn load(&self, scope: &Scope) -> Result<Option<Record>, StoreError> {
        self.0.load(scope)
    }

    fn swap(
        &self,
        scope: &Scope,
        expected: Generation,
        record: &Record,
    ) -> Result<Swap, StoreError> {
        self.0.swap(scope, expected, record)
    }

    fn try_lease(
        &self,
        scope: &Scope,
        owner: &Owner,
        ttl: Duration,
    ) -> Result<Option<LeaseGrant>, StoreError> {
        std::thread::sleep(Duration::from_millis(30));
        self.0.try_lease(scope, owner, ttl)
    }

    fn release(&self, scope: &Scope, owner: &Owner) -> Result<bool, StoreError> {
        self.0.release(scope, owner)
    }

    fn poll_interval(&self) -> Duration {
        self.0.poll_interval()
    }
}

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Waits (bounded) until `path` exists; `false` if the scenario said stop.
fn wait_for(path: &Path) -> bool {
    let deadline = Instant::now() + PATIENCE;
    let stop = path.with_file_name("stop");
    while !path.exists() {
        if stop.exists() {
            return false;
        }
        assert!(Instant::now() < deadline, "{} never came", path.display());
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// The test hook: the first process whose refresher runs while `hook-armed`
/// exists claims it and stops where the scenario wants the signal.
fn claim_hook(coord: &Path) -> Option<String> {
    let armed = coord.join("hook-armed");
    let kind = std::fs::read_to_string(&armed).ok()?;
    let claimed = coord.join(format!("hook-claimed-{}", std::process::id()));
    std::fs::rename(&armed, &claimed).ok()?;
    Some(kind)
}

/// Tells the scenario where we are, and waits (bounded) until it has sent
/// its signal: however slow the machine, the signal lands here.
fn stop_here(coord: &Path, phase: &str) {
    let pid = std::process::id();
    std::fs::write(coord.join(format!("holder-{phase}-{pid}")), b"").unwrap();
    let ack = coord.join(format!("signalled-{pid}"));
    let deadline = Instant::now() + PATIENCE;
    while !ack.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[allow(clippy::too_many_arguments)]
fn run_worker<S: Store + Clone>(
    store: S,
    coord: &Path,
    index: u32,
    first_round: u32,
    rounds: u32,
    requests: u32,
    lease: Duration,
    url: &str,
    runtime: &tokio::runtime::Runtime,
) {
    let http = reqwest::Client::new();
    let calls = Arc::new(AtomicU32::new(0));
    let token_url = format!("{url}/token");
    let (hook_dir, counted, client) = (coord.to_path_buf(), Arc::clone(&calls), http.clone());
    let refresher = move |clock: Clock, credential: Option<Secret>| {
        let (client, url, coord, counted) = (
            client.clone(),
            token_url.clone(),
            hook_dir.clone(),
            Arc::clone(&counted),
        );
        async move {
            let hook = claim_hook(&coord);
            if hook.as_deref() == Some("kill-before") {
                stop_here(&coord, "before");
            }
            let Some(credential) = credential else {
                return Err(RefreshError::Permanent(Refused("no refresh token".into())));
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let body = serde_json::json!({ "refresh_token": credential.expose() }).to_string();
            let sent = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let response = sent.map_err(|e| RefreshError::Transient(Refused(e.to_string())))?;
            let status = response.status().as_u16();
            let text = response
                .text()
                .await
                .map_err(|e| RefreshError::Transient(Refused(e.to_string())))?;
            if matches!(hook.as_deref(), Some("kill-after" | "pause-after")) {
                stop_here(&coord, "after");
            }
            match status {
                200 => {
                    let grant: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let ttl = Duration::from_millis(grant["expires_in_ms"].as_u64().unwrap());
                    let access = grant["access_token"].as_str().unwrap().to_string();
                    let refresh = grant["refresh_token"].as_str().unwrap().to_string();
                    let token = Fresh::new(access).expiring_at(clock.after(ttl));
                    Ok(Renewal::new(token).rotating(refresh))
                }
                400 => Err(RefreshError::Permanent(Refused("invalid_grant".into()))),
                _ => Err(RefreshError::Transient(Refused(format!("status {status}")))),
            }
        }
    };
    let mut options = GuardOptions::default();
    options.lease_ttl = lease;
    options.min_call_window = lease / 4;
    options.wait_limit = lease * 8;
    options.safety_margin = Duration::from_secs(1);
    match std::env::var("TF_MUTANT").as_deref() {
        Ok("skip-reread") => options.mutant_skip_reread = true,
        Ok("blind-write") => options.mutant_blind_write = true,
        _ => {}
    }
    let guard = store
        .guard(Scope::new(SCOPE), refresher)
        .with_options(options);
    let clock = Clock::system();
    let mut config = Config::default();
    config.max_refresh_attempts = 12;
    config.backoff_initial = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(200);
    config.refresh_timeout = lease * 10;
    config.cooldown = Duration::from_millis(50);
    let handle = Handle::builder(guard.refresher())
        .config(config)
        .clock(clock.clone())
        .build()
        .unwrap();
    // A restart needs no login: the token comes from the store.
    if let Some(token) = guard.load(&clock).unwrap() {
        handle.set_token(token);
    }
    for round in first_round..first_round + rounds {
        if !wait_for(&coord.join(format!("go-{round}"))) {
            return;
        }
        let data = format!("{url}/api/data");
        let answers = runtime.block_on(async {
            let tasks: Vec<_> = (0..requests)
                .map(|i| {
                    let (handle, http, data) = (handle.clone(), http.clone(), data.clone());
                    let id = format!("w{index}-p{}-r{round}-{i}", std::process::id());
                    tokio::spawn(async move {
                        handle
                            .call(|token: &String| {
                                // The test server's tokens end in a serial:
                                // which token answered, without printing it.
                                let serial = token.rsplit('-').next().unwrap_or("").to_string();
                                let request = http
                                    .get(&data)
                                    .header(REQUEST_ID, &id)
                                    .header("authorization", format!("Bearer {token}"));
                                async move {
                                    match request.send().await {
                                        Ok(r) if r.status().as_u16() == 401 => {
                                            Reply::Rejected(Err(format!("status {}", r.status())))
                                        }
                                        Ok(r) if r.status().is_success() => {
                                            let v: serde_json::Value =
                                                serde_json::from_str(&r.text().await.unwrap())
                                                    .unwrap();
                                            let generation = v["generation"].as_u64().unwrap();
                                            Reply::Done(Ok((generation, serial)))
                                        }
                                        Ok(r) => Reply::Done(Err(format!("status {}", r.status()))),
                                        Err(e) => Reply::Done(Err(e.to_string())),
                                    }
                                }
                            })
                            .await
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for task in tasks {
                answers.push(task.await.unwrap());
            }
            answers
        });
        let mut ok = 0u32;
        let mut errors = BTreeMap::<String, u32>::new();
        let mut server_generations = std::collections::BTreeSet::new();
        let mut tokens = std::collections::BTreeSet::new();
        for answer in answers {
            match answer {
                Ok(Ok((generation, serial))) => {
                    ok += 1;
                    server_generations.insert(generation);
                    tokens.insert(serial);
                }
                Ok(Err(e)) => *errors.entry(e).or_default() += 1,
                Err(e) => *errors.entry(short(&e)).or_default() += 1,
            }
        }
        let report = serde_json::json!({
            "pid": std::process::id(),
            "ok": ok,
            "errors": errors,
            "server_generations": server_generations,
            "tokens": tokens,
            "store_generation": guard.held().0,
            "refresher_calls": calls.load(Ordering::SeqCst),
        });
        let tmp = coord.join(format!("done-{index}-{round}.tmp"));
        std::fs::write(&tmp, report.to_string()).unwrap();
        std::fs::rename(&tmp, coord.join(format!("done-{index}-{round}"))).unwrap();
    }
}

fn short<E: std::error::Error>(e: &E) -> String {
    common::chain(e).join(": ")
}

// ---------------------------------------------------------------- scenarios

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    File,
    Redis,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    /// `kill -9` of the lease holder before it called the server.
    KillBefore,
    /// `kill -9` of the lease holder after the server answered, before it
    /// stored the rotated refresh token.
    KillAfter,
    /// `SIGSTOP` of the holder after the server answered, for three leases,
    /// then `SIGCONT`.
    PauseAfter,
    /// Redis killed as the round starts, restarted 300 ms later.
    RedisRestart,
    /// The record files deleted, and in the next round corrupted.
    FileLost,
}

struct Fleet {
    coord: TempDir,
    store_arg: String,
    url: String,
    lease: Duration,
    mutant: &'static str,
    slow_lease: bool,
    workers: Vec<(u32, Child)>,
    next_index: u32,
}

impl Fleet {
    fn spawn(&mut self, count: u32, first_round: u32, rounds: u32, requests: u32) {
        for _ in 0..count {
            let index = self.next_index;
            self.next_index += 1;
            let log = std::fs::File::create(self.coord.0.join(format!("log-{index}"))).unwrap();
            let child = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "worker",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("TF_DIR", &self.coord.0)
                .env("TF_INDEX", index.to_string())
                .env("TF_FIRST_ROUND", first_round.to_string())
                .env("TF_ROUNDS", rounds.to_string())
                .env("TF_REQUESTS", requests.to_string())
                .env("TF_LEASE_MS", self.lease.as_millis().to_string())
                .env("TF_URL", &self.url)
                .env("TF_STORE", &self.store_arg)
                .env("TF_MUTANT", self.mutant)
                .env("TF_SLOW_LEASE", if self.slow_lease { "1" } else { "0" })
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap();
            self.workers.push((index, child));
        }
    }

    /// Waits (bounded) for every live worker's report of `round`.
    fn reports(&mut self, round: u32) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut reports = Vec::new();
            let mut missing = 0;
            for (index, child) in &mut self.workers {
                let path = self.coord.0.join(format!("done-{index}-{round}"));
                match std::fs::read_to_string(&path) {
                    Ok(text) => reports.push(serde_json::from_str(&text).unwrap()),
                    Err(_) => {
                        if let Ok(Some(status)) = child.try_wait() {
                            let log =
                                std::fs::read_to_string(self.coord.0.join(format!("log-{index}")))
                                    .unwrap_or_default();
                            panic!("worker {index} exited ({status}) before round {round}:\n{log}");
                        }
                        missing += 1;
                    }
                }
            }
            if missing == 0 {
                return reports;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: {missing} reports missing"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn pid_of_marker(&self, prefix: &str) -> u32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            for entry in std::fs::read_dir(&self.coord.0).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().to_string();
                if let Some(pid) = name.strip_prefix(prefix) {
                    return pid.parse().unwrap();
                }
            }
            assert!(Instant::now() < deadline, "no {prefix}* marker");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stops or kills `pid` where it waits in `stop_here`, then lets it on.
    fn signal(&self, pid: u32, signal: &str) {
        kill(signal, pid);
        // `kill` returns once the signal is queued, not once it has acted:
        // on a loaded machine a thread of the target runs on for a while,
        // and would see the acknowledgement and go past its stop.
        let deadline = Instant::now() + PATIENCE;
        while !halted(pid) {
            assert!(Instant::now() < deadline, "{pid} ignored kill {signal}");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::fs::write(self.coord.0.join(format!("signalled-{pid}")), b"").unwrap();
    }

    fn resume(&self, pid: u32) {
        kill("-CONT", pid);
    }

    /// Reaps a worker killed by a scenario; its reports are no longer due.
    fn forget(&mut self, pid: u32) {
        if let Some(at) = self.workers.iter().position(|(_, c)| c.id() == pid) {
            let (_, mut child) = self.workers.remove(at);
            let _ = child.wait();
        }
    }

    fn finish(&mut self) {
        for (index, child) in &mut self.workers {
            let deadline = Instant::now() + PATIENCE;
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(status.success(), "worker {index}: {status}");
                    break;
                }
                assert!(Instant::now() < deadline, "worker {index} did not end");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.workers.clear();
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.workers {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a scenario saw, for the assertions and the printed figures.
#[derive(Debug, Default)]
#[allow(dead_code)] // printed for the record, not all asserted
struct Figures {
    processes: u32,
    expiries: u32,
    answered: u64,
    failed: u64,
    refreshes: u64,
    reuse: u64,
    grace_reuses: u64,
    logins: u64,
    duplicated: usize,
    killed: u32,
    recovered_rounds: u32,
    final_generation: u64,
    /// The most distinct tokens that answered requests in one round, over
    /// all processes: 1 when every process published the same generation.
    tokens_per_round: usize,
    errors: BTreeMap<String, u64>,
}

struct Plan {
    backend: Backend,
    fault: Fault,
    processes: u32,
    rounds: u32,
    requests: u32,
    /// The round the fault strikes in.
    at: u32,
    reuse_grace: Duration,
    /// Then a whole new fleet for this many more rounds, from the store.
    restarted_rounds: u32,
    /// A planted bug in every worker's guard (`""`: none).
    mutant: &'static str,
    /// The file store behind a lease that is slow to take (`SlowLease`).
    slow_lease: bool,
    /// The guard's lease. Where no holder is meant to lose it, long enough
    /// that a loaded machine never makes a holder outlive it; where the
    /// scenario takes a holder away, short, since the others wait it out.
    lease: Duration,
}

fn run(plan: Plan) -> Figures {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(TokenServer::start(Knobs {
            access_ttl: Duration::from_secs(600),
            reuse_grace: plan.reuse_grace,
            ..Knobs::default()
        }))
        .unwrap();
    let coord = TempDir::new("fleet");
    let store_dir = coord.0.join("store");
    let redis_dir = coord.0.join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap();
    let mut redis = (plan.backend == Backend::Redis).then(|| RedisServer::start(redis_dir));
    let store_arg = match &redis {
        Some(r) => format!("redis:{}", r.url()),
        None => format!("file:{}", store_dir.display()),
    };
    let lease = plan.lease;

    // Log in once, through the store.
    let grant: serde_json::Value = runtime.block_on(async {
        let r = reqwest::Client::new()
            .post(server.url("/login"))
            .body("{}")
            .send()
            .await
            .unwrap();
        serde_json::from_str(&r.text().await.unwrap()).unwrap()
    });
    let clock = Clock::system();
    let login = Fresh::new(grant["access_token"].as_str().unwrap().to_string())
        .expiring_at(clock.after(Duration::from_secs(600)));
    let credential = Some(Secret::from(grant["refresh_token"].as_str().unwrap()));
    let no_refresher = |_c: Clock, _s: Option<Secret>| async {
        Err::<Renewal, _>(RefreshError::Permanent(std::io::Error::other("login only")))
    };
    match &redis {
        Some(r) => RedisStore::open(&r.url())
            .unwrap()
            .guard(Scope::new(SCOPE), no_refresher)
            .login(&clock, login, credential),
        None => FileStore::open(&store_dir)
            .unwrap()
            .guard(Scope::new(SCOPE), no_refresher)
            .login(&clock, login, credential),
    }
    .unwrap();

    let mut fleet = Fleet {
        coord,
        store_arg,
        url: server.url(""),
        lease,
        mutant: plan.mutant,
        slow_lease: plan.slow_lease,
        workers: Vec::new(),
        next_index: 0,
    };
    let mut figures = Figures {
        processes: plan.processes,
        ..Figures::default()
    };
    fleet.spawn(plan.processes, 1, plan.rounds, plan.requests);
    let total_rounds = plan.rounds + plan.restarted_rounds;
    for round in 1..=total_rounds {
        if round == plan.rounds + 1 {
            // Every process restarted: a new fleet, no new login.
            fleet.finish();
            fleet.spawn(plan.processes, round, plan.restarted_rounds, plan.requests);
        }
        server.expire_access_tokens();
        figures.expiries += 1;
        let striking = round == plan.at && plan.fault != Fault::None;
        if striking {
            match plan.fault {
                Fault::KillBefore => {
                    std::fs::write(fleet.coord.0.join("hook-armed"), "kill-before").unwrap()
                }
                Fault::KillAfter => {
                    std::fs::write(fleet.coord.0.join("hook-armed"), "kill-after").unwrap()
                }
                Fault::PauseAfter => {
                    std::fs::write(fleet.coord.0.join("hook-armed"), "pause-after").unwrap()
                }
                Fault::FileLost => {
                    for name in [format!("{SCOPE}.json"), format!("{SCOPE}.json.bak")] {
                        std::fs::remove_file(store_dir.join(name)).unwrap();
                    }
                }
                Fault::RedisRestart => redis.as_mut().unwrap().kill(),
                Fault::None => {}
            }
        }
        if plan.fault == Fault::FileLost && round == plan.at + 1 {
            for name in [format!("{SCOPE}.json"), format!("{SCOPE}.json.bak")] {
                std::fs::write(store_dir.join(name), b"{\"generation\": 7, \"tru").unwrap();
            }
        }
        std::fs::write(fleet.coord.0.join(format!("go-{round}")), b"").unwrap();
        if striking {
            match plan.fault {
                Fault::KillBefore => {
                    let pid = fleet.pid_of_marker("holder-before-");
                    fleet.signal(pid, "-KILL");
                    fleet.forget(pid);
                    figures.killed += 1;
                }
                Fault::KillAfter => {
                    let pid = fleet.pid_of_marker("holder-after-");
                    fleet.signal(pid, "-KILL");
                    fleet.forget(pid);
                    figures.killed += 1;
                }
                Fault::PauseAfter => {
                    let pid = fleet.pid_of_marker("holder-after-");
                    let before = stored_generation(&store_dir, redis.as_ref());
                    fleet.signal(pid, "-STOP");
                    // A fixed pause is not "past its lease" on a loaded
                    // machine: held until another process has taken over
                    // (its call presents the spent credential again) and,
                    // where the server honours that, stored its generation.
                    let taken_over = || {
                        let s = server.stats();
                        s.reuse + s.grace_reuses > 0
                            && (plan.reuse_grace.is_zero()
                                || stored_generation(&store_dir, redis.as_ref()) > before)
                    };
                    let deadline = Instant::now() + PATIENCE;
                    while !taken_over() {
                        assert!(
                            Instant::now() < deadline,
                            "nobody took the lease over: {:?}",
                            server.stats()
                        );
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    fleet.resume(pid);
                }
                Fault::RedisRestart => {
                    std::thread::sleep(Duration::from_millis(300));
                    redis.as_mut().unwrap().restart();
                }
                Fault::FileLost | Fault::None => {}
            }
        }
        let reports = fleet.reports(round);
        let mut round_ok = true;
        let mut tokens = std::collections::BTreeSet::new();
        for report in &reports {
            for t in report["tokens"].as_array().unwrap() {
                tokens.insert(t.as_str().unwrap().to_string());
            }
            figures.answered += report["ok"].as_u64().unwrap();
            for (e, n) in report["errors"].as_object().unwrap() {
                let n = n.as_u64().unwrap();
                figures.failed += n;
                round_ok = false;
                *figures.errors.entry(e.clone()).or_default() += n;
            }
            figures.final_generation = figures
                .final_generation
                .max(report["store_generation"].as_u64().unwrap());
        }
        figures.tokens_per_round = figures.tokens_per_round.max(tokens.len());
        if striking && round_ok {
            figures.recovered_rounds += 1;
        }
        if !round_ok {
            // The session is dead (the documented limit): the rest of the
            // fleet stops instead of waiting for rounds that won't come.
            std::fs::write(fleet.coord.0.join("stop"), b"").unwrap();
            break;
        }
    }
    fleet.finish();
    let stats = server.stats();
    figures.refreshes = stats.refreshes;
    figures.reuse = stats.reuse;
    figures.grace_reuses = stats.grace_reuses;
    figures.logins = stats.logins;
    figures.duplicated = stats.duplicated().len();
    // Every request the server counted as answered was reported once.
    assert_eq!(stats.successes(), figures.answered, "{figures:?}");
    println!("{:?} {:?}: {figures:?}", plan.backend, plan.fault);
    figures
}

fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// Whether every thread of `pid` is stopped, or the process is dead.
fn halted(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|task| {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            return true;
        };
        // The state follows the parenthesised command name.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        matches!(state, Some('T' | 't' | 'Z' | 'X') | None)
    })
}

/// The generation the store holds now (0: none readable).
fn stored_generation(store_dir: &Path, redis: Option<&RedisServer>) -> u64 {
    let scope = Scope::new(SCOPE);
    let record = match redis {
        Some(r) => RedisStore::open(&r.url()).unwrap().load(&scope),
        None => FileStore::open(store_dir).unwrap().load(&scope),
    };
    record.ok().flatten().map_or(0, |r| r.generation().0)
}

fn plan(backend: Backend, fault: Fault) -> Plan {
    Plan {
        backend,
        fault,
        processes: 4,
        rounds: 4,
        requests: 50,
        at: 2,
        reuse_grace: Duration::ZERO,
        restarted_rounds: 0,
        mutant: "",
        slow_lease: false,
        lease: match fault {
            Fault::None | Fault::RedisRestart | Fault::FileLost => Duration::from_secs(5),
            Fault::KillBefore | Fault::KillAfter | Fault::PauseAfter => {
                Duration::from_millis(1_500)
            }
        },
    }
}

fn assert_clean(f: &Figures, refreshes: u64) {
    assert_eq!(f.refreshes, refreshes, "one refresh per expiry: {f:?}");
    assert_eq!((f.reuse, f.duplicated, f.failed), (0, 0, 0), "{f:?}");
    assert_eq!(f.logins, 1, "logged in once: {f:?}");
    assert_eq!(
        f.tokens_per_round, 1,
        "every process on the same token: {f:?}"
    );
}

fn one_refresh_per_expiry_across_processes_and_restarts(backend: Backend) {
    let f = run(Plan {
        processes: 8,
        requests: 100,
        restarted_rounds: 2,
        ..plan(backend, Fault::None)
    });
    assert_eq!(f.expiries, 6);
    assert_clean(&f, 6);
    assert_eq!(f.answered, 8 * 100 * 6);
}

#[test]
fn file_one_refresh_per_expiry_across_processes_and_restarts() {
    one_refresh_per_expiry_across_processes_and_restarts(Backend::File);
}

#[test]
fn redis_one_refresh_per_expiry_across_processes_and_restarts() {
    one_refresh_per_expiry_across_processes_and_restarts(Backend::Redis);
}

fn a_holder_killed_before_the_server_answered_is_taken_over(backend: Backend) {
    let f = run(plan(backend, Fault::KillBefore));
    assert_eq!(f.killed, 1);
    assert_eq!(f.recovered_rounds, 1, "{f:?}");
    assert_clean(&f, 4);
}

#[test]
fn file_a_holder_killed_before_the_server_answered_is_taken_over() {
    a_holder_killed_before_the_server_answered_is_taken_over(Backend::File);
}

#[test]
fn redis_a_holder_killed_before_the_server_answered_is_taken_over() {
    a_holder_killed_before_the_server_answered_is_taken_over(Backend::Redis);
}

/// The documented limit, measured: the holder dies after the server rotated
/// the refresh token and before storing it. Without a grace window the
/// taker-over spends the old one: one reuse, the login is revoked, every
/// waiting request fails (none hangs) and no other process spends it again.
/// With a grace window the taker-over's reuse is honoured and the fleet
/// goes on.
fn a_holder_killed_after_the_server_answered(backend: Backend) {
    let f = run(plan(backend, Fault::KillAfter));
    assert_eq!((f.killed, f.recovered_rounds), (1, 0), "{f:?}");
    assert_eq!(
        (f.reuse, f.grace_reuses),
        (1, 0),
        "one reuse, not one per process: {f:?}"
    );
    assert!(f.failed > 0 && f.duplicated == 0, "{f:?}");
    assert!(
        f.errors.keys().all(|e| e.contains("login is needed")),
        "{f:?}"
    );

    let f = run(Plan {
        reuse_grace: Duration::from_secs(10),
        ..plan(backend, Fault::KillAfter)
    });
    assert_eq!((f.killed, f.recovered_rounds), (1, 1), "{f:?}");
    assert_eq!(f.grace_reuses, 1, "{f:?}");
    // The dead holder's orphaned rotation plus one per expiry.
    assert_clean(&f, 5);
}

#[test]
fn file_a_holder_killed_after_the_server_answered() {
    a_holder_killed_after_the_server_answered(Backend::File);
}

#[test]
fn redis_a_holder_killed_after_the_server_answered() {
    a_holder_killed_after_the_server_answered(Backend::Redis);
}

/// A holder paused past its lease after the server answered: another takes
/// over (a grace reuse), and when the paused one resumes its write is fenced
/// by the generation CAS: it adopts the newer token instead of publishing
/// its own, and every request, its own included, is answered once.
fn a_holder_paused_past_its_lease_is_fenced(backend: Backend) {
    // Without a grace window the taker-over's reuse revokes the login: the
    // documented limit (a lease cannot recall a request already sent). One
    // reuse, and the refused credential is not spent again by the others.
    let f = run(plan(backend, Fault::PauseAfter));
    assert_eq!(
        (f.reuse, f.grace_reuses, f.recovered_rounds),
        (1, 0, 0),
        "{f:?}"
    );
    assert!(f.failed > 0 && f.duplicated == 0, "{f:?}");
    assert_eq!(f.tokens_per_round, 1, "{f:?}");

    let f = run(Plan {
        reuse_grace: Duration::from_secs(10),
        ..plan(backend, Fault::PauseAfter)
    });
    assert_eq!(f.recovered_rounds, 1, "{f:?}");
    assert_eq!(f.grace_reuses, 1, "{f:?}");
    assert_clean(&f, 5);
}

#[test]
fn file_a_holder_paused_past_its_lease_is_fenced() {
    a_holder_paused_past_its_lease_is_fenced(Backend::File);
}

#[test]
fn redis_a_holder_paused_past_its_lease_is_fenced() {
    a_holder_paused_past_its_lease_is_fenced(Backend::Redis);
}

#[test]
fn redis_killed_and_restarted_mid_run_costs_no_second_refresh() {
    let f = run(plan(Backend::Redis, Fault::RedisRestart));
    assert_eq!(f.recovered_rounds, 1, "{f:?}");
    assert_clean(&f, 4);
}

#[test]
fn file_deleted_then_corrupted_mid_run_costs_no_second_refresh() {
    let f = run(Plan {
        rounds: 5,
        ..plan(Backend::File, Fault::FileLost)
    });
    assert_eq!(f.recovered_rounds, 1, "{f:?}");
    assert_clean(&f, 5);
}

/// The checks above bite: a guard that does not re-read the store under the
/// lease refreshes once per process (F1), and one that writes without the
/// compare-and-swap lets a resumed paused holder publish its own token over
/// the newer one, so two tokens answer in one round (F2).
#[test]
fn the_fleet_checks_catch_a_guard_without_reread_or_without_compare_and_swap() {
    // The slow lease alone costs no second refresh; with the bug, it shows.
    let f = run(Plan {
        slow_lease: true,
        ..plan(Backend::File, Fault::None)
    });
    assert_clean(&f, 4);
    let f = run(Plan {
        mutant: "skip-reread",
        slow_lease: true,
        ..plan(Backend::File, Fault::None)
    });
    assert!(f.refreshes > u64::from(f.expiries), "{f:?}");

    let f = run(Plan {
        mutant: "blind-write",
        reuse_grace: Duration::from_secs(10),
        ..plan(Backend::File, Fault::PauseAfter)
    });
    assert!(f.tokens_per_round > 1, "{f:?}");
}
