//! The simulated world both algorithms live in: virtual time, the event
//! queue, the request streams, the network and the token server, and the
//! simulator's own books (outcomes per request, server-side checks, the
//! watchdog). An `Algorithm` (the core, or the recipe) is plugged in and reacts to what arrives.

use std::collections::BTreeSet;

use serde::Serialize;
use tokenflight::check::{Event, Rule};

use crate::queue::Queue;
use crate::report::{Finding, LatencyStats, Stats};
use crate::rng::Rng;
use crate::scenario::Scenario;
use crate::server::{Grant, Refreshed, Server, Verdict};
use crate::timeline::Timeline;
use crate::trace::Trace;

pub(crate) const MS: u64 = 1_000_000;

/// How a request ended, in the simulator's own books.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The server's answer reached the caller.
    Completed,
    /// A typed error reached the caller.
    Failed,
    /// The caller gave up.
    Cancelled,
    /// The caller got something it cannot tell from success (the recipe's
    /// swallowed errors: `undefined`, or the "expired" response itself).
    Lost,
}

/// The answer to an API call, as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiAnswer {
    Ok,
    Rejected,
    /// No answer: the HTTP client timed out.
    NoAnswer,
}

/// The answer to a refresh call, as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshAnswer {
    Granted(Grant),
    /// A 503: nothing happened at the server.
    Transient,
    InvalidGrant,
    /// The HTTP client timed out (the call hung, or its answer was lost).
    NoAnswer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Answered,
    Transient,
    Hang,
    Drop,
}

pub(crate) enum Ev {
    Arrive {
        stream: u32,
    },
    Burst,
    ApiDone {
        id: u32,
        send: u32,
        token: u64,
        at_server: u64,
    },
    ApiLost {
        id: u32,
        send: u32,
    },
    RefreshAtServer {
        call: u32,
    },
    RefreshDone {
        call: u32,
    },
    ClientTimeout {
        id: u32,
    },
    Timer {
        at: u64,
    },
    Revoke,
    Relogin,
    Heal,
    Watchdog,
}

struct Req {
    arrived: u64,
    send: u32,
    last_send_at: u64,
    outcome: Option<Outcome>,
    timeout_armed: bool,
}

struct Call {
    rt: u64,
    /// The client had seen `rt`'s rotation when it sent this call.
    seen: bool,
    /// The client gave the call up for good (dropped its future); the
    /// endpoint may still be at work on it.
    dropped: bool,
    fate: Fate,
    result: Option<Refreshed>,
    done: bool,
    needless: bool,
    replacing: Option<u64>,
}

/// What an algorithm under simulation does when something reaches it.
pub(crate) trait Algorithm {
    /// Its name in reports and traces.
    const NAME: &'static str;
    /// The user logged in at time zero.
    fn start(&mut self, w: &mut World, login: Grant);
    fn arrive(&mut self, w: &mut World, id: u32);
    fn api_answer(&mut self, w: &mut World, id: u32, answer: ApiAnswer);
    fn refresh_answer(&mut self, w: &mut World, call: u32, answer: RefreshAnswer);
    fn client_timeout(&mut self, w: &mut World, id: u32);
    fn timer(&mut self, w: &mut World, at: u64);
    fn relogin(&mut self, w: &mut World, login: Grant);
    /// The run is over: the checker's verdict, as findings and per-rule
    /// counts (in [`tokenflight::check::Rule::ALL`] order).
    fn finish(&mut self, w: &mut World) -> (Vec<Finding>, [u64; Rule::ALL.len()]);
}

/// Options of one run beyond its scenario.
#[derive(Default)]
pub struct RunOptions {
    /// Write the run's trace here.
    pub trace: Option<Box<dyn std::io::Write>>,
    /// Record a timeline of requests arriving in this window (virtual ns).
    pub timeline: Option<(u64, u64)>,
}

/// The result of running one algorithm on one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct AlgoReport {
    /// Which algorithm.
    pub algorithm: &'static str,
    /// The numbers.
    pub stats: Stats,
    /// Violations per rule (S1..S7, L1) and of the simulator's own checks.
    pub rule_counts: Vec<(String, u64)>,
    /// The first violations, in order.
    pub violations: Vec<Finding>,
    /// The timeline, if one was asked for.
    #[serde(skip)]
    pub timeline: Option<Timeline>,
}

impl AlgoReport {
    /// Total violations of every kind.
    pub fn violation_count(&self) -> u64 {
        self.rule_counts.iter().map(|(_, n)| n).sum()
    }
}

/// The world.
pub struct World {
    pub(crate) sc: Scenario,
    pub(crate) now: u64,
    queue: Queue<Ev>,
    arrivals: Rng,
    net: Rng,
    pub(crate) server: Server,
    reqs: Vec<Req>,
    calls: Vec<Call>,
    pub(crate) stats: Stats,
    latencies: Vec<u64>,
    /// Of those, requests that arrived while faults were injected, and
    /// after.
    latencies_fault: Vec<u64>,
    latencies_healthy: Vec<u64>,
    pub(crate) trace: Option<Trace>,
    pub(crate) timeline: Option<Timeline>,
    fault_end: u64,
    healed: bool,
    relogin_pending: bool,
    /// A refresh while the token has more than this left is needless.
    proactive_window: u64,
    replaced: BTreeSet<u64>,
    at_heal: Vec<u32>,
    findings: Vec<Finding>,
    overlaps: u64,
    seen_reuses: u64,
    watchdog_hits: u64,
    last_arrival: u64,
}

impl World {
    fn new(sc: &Scenario, opts: &mut RunOptions, name: &'static str) -> Self {
        World {
            sc: sc.clone(),
            now: 0,
            queue: Queue::new(),
            arrivals: Rng::stream(sc.seed, 1),
            net: Rng::stream(sc.seed, 2),
            server: Server::new(sc),
            reqs: Vec::with_capacity(sc.requests.min(1 << 24) as usize),
            calls: Vec::new(),
            stats: Stats::default(),
            latencies: Vec::with_capacity(sc.requests.min(1 << 24) as usize),
            latencies_fault: Vec::new(),
            latencies_healthy: Vec::new(),
            trace: opts.trace.take().map(|out| Trace::new(out, name)),
            timeline: opts.timeline.map(|(a, b)| Timeline::new(a, b, sc.rate)),
            fault_end: sc.fault_ms * MS,
            healed: false,
            relogin_pending: false,
            proactive_window: 0,
            replaced: BTreeSet::new(),
            at_heal: Vec::new(),
            findings: Vec::new(),
            overlaps: 0,
            seen_reuses: 0,
            watchdog_hits: 0,
            last_arrival: 0,
        }
    }

    /// Whether faults are being injected now.
    pub(crate) fn faulty(&self) -> bool {
        self.now < self.fault_end
    }

    /// Judges refreshes while more than `window` of a token's life is left
    /// as needless.
    pub(crate) fn judge_refreshes(&mut self, window: u64) {
        self.proactive_window = window;
    }

    /// The client gave refresh call `call` up for good: it dropped the
    /// call's future. The endpoint may still process it (and rotate its
    /// refresh token), so until its time is up it still counts as
    /// outstanding at the endpoint.
    pub(crate) fn drop_call(&mut self, call: u32) {
        if let Some(c) = self.calls.get_mut(call as usize) {
            c.dropped = true;
            self.stats.calls_dropped += 1;
        }
    }

    pub(crate) fn trace_event(&mut self, event: &Event) {
        let now = self.now;
        if let Some(t) = &mut self.trace {
            t.event(now, event);
        }
    }

    pub(crate) fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    fn finding(&mut self, source: &str, rule: &str, detail: String) {
        if self.findings.len() < 16 {
            self.findings.push(Finding {
                source: source.to_string(),
                rule: rule.to_string(),
                at_ms: self.now as f64 / MS as f64,
                detail,
            });
        }
    }

    /// Sends request `id` to the API with access token `token` (generation
    /// `generation`, for the timeline).
    pub(crate) fn send_api(&mut self, id: u32, token: u64, generation: u64) {
        let now = self.now;
        let faulty = self.faulty();
        let rtt = self.sc.api_latency.draw(&mut self.net);
        // A call slower than the HTTP timeout is given up on like a lost one.
        let drop = (faulty && self.net.chance(self.sc.faults.api_drop))
            || rtt > self.sc.http_timeout_ms * MS;
        let r = &mut self.reqs[id as usize];
        r.send += 1;
        r.last_send_at = now;
        let send = r.send;
        self.stats.sends += 1;
        if let Some(tl) = &mut self.timeline {
            tl.send(id, now, generation);
        }
        let answer_at = if drop {
            let at = now + self.sc.http_timeout_ms * MS;
            self.queue.push(at, Ev::ApiLost { id, send });
            at
        } else {
            let at = now + rtt;
            let at_server = now + rtt / 2;
            self.queue.push(
                at,
                Ev::ApiDone {
                    id,
                    send,
                    token,
                    at_server,
                },
            );
            at
        };
        if self.deadline(id).is_some_and(|d| answer_at > d) {
            self.arm_timeout(id);
        }
    }

    fn deadline(&self, id: u32) -> Option<u64> {
        let ct = self.sc.client_timeout_ms?;
        Some(self.reqs[id as usize].arrived + ct * MS)
    }

    /// Makes sure the caller of `id` gives up at its deadline if it has not
    /// ended by then.
    pub(crate) fn arm_timeout(&mut self, id: u32) {
        let Some(deadline) = self.deadline(id) else {
            return;
        };
        let r = &mut self.reqs[id as usize];
        if !r.timeout_armed {
            r.timeout_armed = true;
            self.queue
                .push(deadline.max(self.now), Ev::ClientTimeout { id });
        }
    }

    /// Whether `id` has not ended yet.
    pub(crate) fn live(&self, id: u32) -> bool {
        self.reqs[id as usize].outcome.is_none()
    }

    /// Request `id` waits (for the timeline).
    pub(crate) fn waiting(&mut self, id: u32) {
        let now = self.now;
        if let Some(tl) = &mut self.timeline {
            tl.wait(id, now);
        }
    }

    /// Request `id` ended.
    pub(crate) fn end(&mut self, id: u32, outcome: Outcome) {
        let now = self.now;
        let r = &mut self.reqs[id as usize];
        if let Some(first) = r.outcome {
            self.stats.duplicated += 1;
            self.finding(
                "simulator",
                "duplicate outcome",
                format!("request #{id} ended {first:?}, then {outcome:?}"),
            );
            return;
        }
        r.outcome = Some(outcome);
        let added = r.last_send_at.saturating_sub(r.arrived);
        let in_faults = r.arrived < self.fault_end;
        match outcome {
            Outcome::Completed => {
                self.stats.completed += 1;
                self.latencies.push(added);
                if in_faults {
                    self.latencies_fault.push(added);
                } else {
                    self.latencies_healthy.push(added);
                }
            }
            Outcome::Failed => self.stats.failed += 1,
            Outcome::Cancelled => self.stats.cancelled += 1,
            Outcome::Lost => self.stats.lost += 1,
        }
        if let Some(tl) = &mut self.timeline {
            tl.end(id, now, outcome);
        }
    }

    /// Starts a refresh call with refresh token `rt`, meant to replace
    /// access token `replacing` (`None`: no token yet). Returns the call's
    /// number.
    pub(crate) fn send_refresh(&mut self, rt: u64, replacing: Option<(u64, Option<u64>)>) -> u32 {
        let now = self.now;
        self.stats.refresh_calls += 1;
        // The simulator's own S1, at the server's door: no other call of
        // this client may be outstanding, whether the client still waits for
        // it or timed it out. A call the client dropped (gave up for good)
        // is over for the client, but the endpoint may still work on it:
        // such overlaps are counted, as the price of the hard limit, but
        // break no rule.
        let (mut overlapping, mut dropped) = (0, 0);
        for c in self.calls.iter().rev().take(64).filter(|c| !c.done) {
            if c.dropped {
                dropped += 1;
            } else {
                overlapping += 1;
            }
        }
        if overlapping + dropped > 0 {
            self.stats.overlapping_calls += 1;
        }
        if dropped > 0 {
            self.stats.overlaps_with_dropped += 1;
        }
        if overlapping > 0 {
            self.overlaps += 1;
            self.finding(
                "server",
                "overlapping refresh",
                format!("refresh call sent while {overlapping} other(s) outstanding"),
            );
        }
        let needless = replacing.is_some_and(|(token, expires_at)| {
            self.server.verdict(token, now) == Verdict::Valid
                && expires_at.is_none_or(|e| now + self.proactive_window < e)
        });
        if needless {
            self.stats.double_refreshes += 1;
        }
        let faults = self.sc.faults;
        let fate = if !self.faulty() {
            Fate::Answered
        } else if self.net.chance(faults.refresh_hang) {
            Fate::Hang
        } else if self.net.chance(faults.refresh_drop) {
            Fate::Drop
        } else if self.net.chance(faults.refresh_transient) {
            Fate::Transient
        } else {
            Fate::Answered
        };
        let rtt = self.sc.refresh_latency.draw(&mut self.net);
        let timeout = now + self.sc.http_timeout_ms * MS;
        // An answer slower than the HTTP timeout never reaches the client:
        // the call was processed (or failed) at the server all the same.
        let fate = match fate {
            Fate::Answered if now + rtt > timeout => Fate::Drop,
            Fate::Transient if now + rtt > timeout => Fate::Hang,
            f => f,
        };
        let call = self.calls.len() as u32;
        let seen = self.server.successor_seen(rt);
        self.calls.push(Call {
            rt,
            seen,
            dropped: false,
            fate,
            result: None,
            done: false,
            needless,
            replacing: replacing.map(|(t, _)| t),
        });
        match fate {
            Fate::Answered => {
                self.queue.push(now + rtt / 2, Ev::RefreshAtServer { call });
                self.queue.push(now + rtt, Ev::RefreshDone { call });
            }
            Fate::Transient => self.queue.push(now + rtt, Ev::RefreshDone { call }),
            Fate::Hang => self.queue.push(timeout, Ev::RefreshDone { call }),
            Fate::Drop => {
                self.queue.push(now + rtt / 2, Ev::RefreshAtServer { call });
                self.queue.push(timeout, Ev::RefreshDone { call });
            }
        }
        if let Some(t) = &mut self.trace {
            let f = match fate {
                Fate::Answered => "answered",
                Fate::Transient => "transient",
                Fate::Hang => "hang",
                Fate::Drop => "drop",
            };
            t.fact(
                now,
                "refresh_call",
                format_args!(
                    ",\"call\":{call},\"rt\":{rt},\"fate\":\"{f}\",\"needless\":{needless}"
                ),
            );
        }
        if let Some(tl) = &mut self.timeline {
            tl.refresh_start(call, now);
        }
        call
    }

    /// The algorithm's timer: `Algorithm::timer` is called at `at`.
    pub(crate) fn set_timer(&mut self, at: u64) {
        self.queue.push(at.max(self.now), Ev::Timer { at });
    }

    /// The user will log in again (once, however often this is asked).
    pub(crate) fn request_relogin(&mut self) {
        if !self.relogin_pending {
            self.relogin_pending = true;
            self.queue
                .push(self.now + self.sc.relogin_ms * MS, Ev::Relogin);
        }
    }

    fn arrive<A: Algorithm>(&mut self, algo: &mut A) {
        if self.reqs.len() as u64 >= self.sc.requests {
            return;
        }
        let id = self.reqs.len() as u32;
        self.reqs.push(Req {
            arrived: self.now,
            send: 0,
            last_send_at: self.now,
            outcome: None,
            timeout_armed: false,
        });
        self.stats.requests += 1;
        self.last_arrival = self.now;
        if let Some(tl) = &mut self.timeline {
            tl.arrive(id, self.now);
        }
        algo.arrive(self, id);
    }

    fn arrivals_left(&self) -> bool {
        (self.reqs.len() as u64) < self.sc.requests
    }

    fn gap(&mut self, mean_ms: f64) -> u64 {
        (self.arrivals.exp(mean_ms) * MS as f64) as u64 + 1
    }

    fn step<A: Algorithm>(&mut self, algo: &mut A, ev: Ev) {
        match ev {
            Ev::Arrive { stream } => {
                self.arrive(algo);
                if self.arrivals_left() {
                    let mean = 1000.0 * f64::from(self.sc.streams) / self.sc.rate;
                    let at = self.now + self.gap(mean);
                    self.queue.push(at, Ev::Arrive { stream });
                }
            }
            Ev::Burst => {
                for _ in 0..self.sc.burst_size {
                    self.arrive(algo);
                }
                if self.arrivals_left() {
                    let at = self.now + self.gap(self.sc.burst_every_ms as f64);
                    self.queue.push(at, Ev::Burst);
                }
            }
            Ev::ApiDone {
                id,
                send,
                token,
                at_server,
            } => {
                let r = &self.reqs[id as usize];
                if r.outcome.is_some() || r.send != send {
                    return;
                }
                let answer = match self.server.verdict(token, at_server) {
                    Verdict::Valid => ApiAnswer::Ok,
                    Verdict::Expired | Verdict::Revoked => {
                        self.stats.rejections += 1;
                        if let Some(tl) = &mut self.timeline {
                            tl.reject(id, self.now);
                        }
                        ApiAnswer::Rejected
                    }
                };
                algo.api_answer(self, id, answer);
            }
            Ev::ApiLost { id, send } => {
                let r = &self.reqs[id as usize];
                if r.outcome.is_none() && r.send == send {
                    algo.api_answer(self, id, ApiAnswer::NoAnswer);
                }
            }
            Ev::RefreshAtServer { call } => {
                let (rt, seen) = (self.calls[call as usize].rt, self.calls[call as usize].seen);
                let reuses = self.server.reuses.len();
                let result = self.server.refresh(rt, self.now, seen);
                self.calls[call as usize].result = Some(result);
                if let Some(reuse) = self.server.reuses.get(reuses).copied() {
                    self.stats.reuse_revocations += 1;
                    // The rotation this call repeats was answered to a call
                    // the client had given up for good.
                    let after_drop = self.calls[..call as usize]
                        .iter()
                        .any(|c| c.rt == rt && c.dropped);
                    if after_drop {
                        self.stats.reuses_after_drop += 1;
                    }
                    if reuse.seen {
                        self.seen_reuses += 1;
                        self.finding(
                            "server",
                            "refresh-token reuse",
                            format!(
                                "refresh token {rt} sent again after its rotation was answered"
                            ),
                        );
                    }
                }
                if let Some(t) = &mut self.trace {
                    let ok = matches!(result, Refreshed::Granted(_));
                    t.fact(
                        self.now,
                        "refresh_at_server",
                        format_args!(",\"call\":{call},\"granted\":{ok}"),
                    );
                }
            }
            Ev::RefreshDone { call } => {
                let c = &mut self.calls[call as usize];
                c.done = true;
                let answer = match (c.fate, c.result) {
                    (Fate::Hang | Fate::Drop, _) => RefreshAnswer::NoAnswer,
                    (Fate::Transient, _) => RefreshAnswer::Transient,
                    (Fate::Answered, Some(Refreshed::Granted(g))) => RefreshAnswer::Granted(g),
                    (Fate::Answered, _) => RefreshAnswer::InvalidGrant,
                };
                let ok = matches!(answer, RefreshAnswer::Granted(_));
                if ok {
                    let (rt, needless, replacing) = (c.rt, c.needless, c.replacing);
                    // A dropped call's answer reaches no one: the client
                    // never learns the rotation.
                    if !c.dropped {
                        self.server.answer_seen(rt);
                    }
                    self.stats.refreshes_ok += 1;
                    if !needless && self.replaced.insert(replacing.unwrap_or(u64::MAX)) {
                        self.stats.expiries += 1;
                    }
                }
                if let Some(tl) = &mut self.timeline {
                    tl.refresh_end(call, self.now, ok);
                }
                algo.refresh_answer(self, call, answer);
            }
            Ev::ClientTimeout { id } => {
                if self.live(id) {
                    algo.client_timeout(self, id);
                }
            }
            Ev::Timer { at } => algo.timer(self, at),
            Ev::Revoke => {
                if self.faulty() {
                    self.server.revoke_latest(self.now);
                    if let Some(t) = &mut self.trace {
                        t.fact(self.now, "revoked", format_args!(""));
                    }
                    let at = self.now + self.gap(self.sc.faults.revoke_every_ms as f64);
                    self.queue.push(at, Ev::Revoke);
                }
            }
            Ev::Relogin => {
                self.relogin_pending = false;
                self.stats.relogins += 1;
                let grant = self.server.login(self.now);
                algo.relogin(self, grant);
            }
            Ev::Heal => {
                self.healed = true;
                self.at_heal = (0..self.reqs.len() as u32)
                    .filter(|&id| self.live(id))
                    .collect();
                let at = self.now + self.sc.watchdog_ms() * MS;
                self.queue.push(at, Ev::Watchdog);
            }
            Ev::Watchdog => {
                let stuck: Vec<u32> = std::mem::take(&mut self.at_heal)
                    .into_iter()
                    .filter(|&id| self.live(id))
                    .collect();
                if let Some(first) = stuck.first() {
                    self.watchdog_hits += stuck.len() as u64;
                    let n = stuck.len();
                    let bound = self.sc.watchdog_ms();
                    self.finding(
                        "watchdog",
                        "L1",
                        format!("{n} requests outstanding at healing still open {bound} ms later, e.g. #{first}"),
                    );
                }
            }
        }
    }

    fn latency_stats(v: &mut [u64]) -> LatencyStats {
        if v.is_empty() {
            return LatencyStats::default();
        }
        let q = |v: &mut [u64], p: f64| {
            let k = ((v.len() - 1) as f64 * p).round() as usize;
            *v.select_nth_unstable(k).1 as f64 / MS as f64
        };
        LatencyStats {
            p50_ms: q(v, 0.5),
            p99_ms: q(v, 0.99),
            max_ms: *v.iter().max().unwrap_or(&0) as f64 / MS as f64,
        }
    }
}

/// Runs `algo` on `sc`.
pub(crate) fn run<A: Algorithm>(sc: &Scenario, mut algo: A, mut opts: RunOptions) -> AlgoReport {
    let mut w = World::new(sc, &mut opts, A::NAME);
    let login = w.server.login(0);
    algo.start(&mut w, login);
    for stream in 0..sc.streams.max(1) {
        let mean = 1000.0 * f64::from(sc.streams.max(1)) / sc.rate;
        let at = w.gap(mean);
        w.queue.push(at, Ev::Arrive { stream });
    }
    if sc.burst_every_ms > 0 && sc.burst_size > 0 {
        let at = w.gap(sc.burst_every_ms as f64);
        w.queue.push(at, Ev::Burst);
    }
    if sc.faults.revoke_every_ms > 0 {
        let at = w.gap(sc.faults.revoke_every_ms as f64);
        w.queue.push(at, Ev::Revoke);
    }
    w.queue.push(w.fault_end, Ev::Heal);
    let horizon = 4 * sc.watchdog_ms() * MS;
    while let Some((at, ev)) = w.queue.pop() {
        if !w.arrivals_left() && w.healed && at > w.last_arrival.max(w.fault_end) + horizon {
            break;
        }
        w.now = w.now.max(at);
        w.stats.events += 1;
        w.step(&mut algo, ev);
    }
    let (mut findings, counts) = algo.finish(&mut w);
    w.stats.hung = w.reqs.iter().filter(|r| r.outcome.is_none()).count() as u64;
    w.stats.latency = World::latency_stats(&mut w.latencies);
    w.stats.latency_fault = World::latency_stats(&mut w.latencies_fault);
    w.stats.latency_healthy = World::latency_stats(&mut w.latencies_healthy);
    w.stats.stale_sends = counts[4];
    w.stats.virtual_secs = w.now as f64 / 1e9;
    w.stats.revocations = w.server.revocations;
    let mut rule_counts: Vec<(String, u64)> = Rule::ALL
        .iter()
        .zip(counts)
        .map(|(r, n)| (format!("{r:?}"), n))
        .collect();
    rule_counts.push(("server: overlapping refresh".into(), w.overlaps));
    rule_counts.push(("server: refresh-token reuse".into(), w.seen_reuses));
    rule_counts.push(("sim: duplicate outcome".into(), w.stats.duplicated));
    rule_counts.push(("watchdog".into(), w.watchdog_hits));
    findings.append(&mut w.findings);
    findings.truncate(32);
    if let Some(t) = w.trace.take() {
        if let Err(e) = t.finish() {
            findings.push(Finding {
                source: "simulator".into(),
                rule: "trace".into(),
                at_ms: 0.0,
                detail: format!("writing the trace failed: {e}"),
            });
        }
    }
    AlgoReport {
        algorithm: A::NAME,
        stats: w.stats,
        rule_counts,
        violations: findings,
        timeline: w.timeline.take(),
    }
}
