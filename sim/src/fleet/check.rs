//! The fleet-level check, kept beside the run: F1 (one refresh per expiry
//! across the fleet, given holders finish within their lease; the calls
//! that follow a holder that did not are counted apart, by cause), no
//! refresh-token reuse at the server, F2 (no generation stored over one
//! that is not older; no process publishes an older generation after a
//! newer one), F3 (no request sent with a token the store has not taken),
//! and each process's own history judged by `check::Monitor`.

use std::collections::BTreeMap;

use tokenflight::check::Recorder;

use super::scenario::Mode;
use super::store::Write;
use crate::flight::{SimError, Tok};
use crate::server::Server;

const MS: u64 = 1_000_000;

/// Why a lease holder did not finish within its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cause {
    /// It stored the token, but after its lease ran out.
    Slow,
    /// It was paused with the lease.
    Paused,
    /// It was killed with the lease.
    Crashed,
    /// Its write failed (the renewal stays in its memory).
    StoreFailed,
    /// Its write lost to a newer generation.
    Fenced,
    /// Its handle dropped the call.
    Dropped,
}

/// A refresh call the token server processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ServerCall {
    pub at: u64,
    pub call: u64,
    /// The refresh token it spends.
    pub rt: u64,
    /// Granted for a token in the first half of its life.
    pub early: bool,
    /// It reached the server after its holder's lease ran out.
    pub past_lease: bool,
    pub granted: bool,
    pub reuse: bool,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetFinding {
    /// F1, F2, F3, or the monitor's rule name.
    pub rule: String,
    /// Virtual ms.
    pub at_ms: u64,
    /// What happened.
    pub detail: String,
}

/// The run's books and verdicts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Books {
    /// Requests started.
    pub requests: u64,
    /// Answered by the API.
    pub completed: u64,
    /// Ended with a typed error.
    pub failed: u64,
    /// Given up by their caller.
    pub cancelled: u64,
    /// Gone with a killed process.
    pub lost: u64,
    /// Processes restarted on the stored token, without a login.
    pub restarts_loaded: u64,
    pub(crate) server_calls: Vec<ServerCall>,
    held: BTreeMap<u64, (bool, Cause)>,
    /// Pauses injected.
    pub pauses: u64,
    /// Kills injected (before the call / after the server answered).
    pub crashes: [u64; 2],
    fault_times: Vec<u64>,
    persist_times: Vec<u64>,
    /// Every broken rule (F1-F3 and the monitors'), in order found.
    pub findings: Vec<FleetFinding>,
    /// Expiries: the distinct tokens the fleet replaced.
    pub expiries: u64,
    /// Refresh calls the server processed.
    pub refresh_calls: u64,
    /// Refresh-token reuses the server saw (each revokes the login).
    pub reuses: u64,
    /// Logins (the first one included).
    pub logins: u64,
    /// Second calls for one expiry after a holder that finished in its
    /// lease: F1 violations.
    pub f1: u64,
    /// Second calls after a holder that did not: the documented limit.
    pub limit: BTreeMap<Cause, u64>,
    /// Calls that spent a credential the server had refused already
    /// (the tombstone that would have stopped them was not written).
    pub refused_again: u64,
    /// F2 violations.
    pub f2: u64,
    /// F3 violations.
    pub f3: u64,
    /// Violations the per-process monitors found.
    pub monitor: u64,
    /// Injected faults the fleet got past (a new token stored after them).
    pub recoveries: u64,
    /// Processes.
    pub processes: u32,
    /// With a store or without.
    pub mode: Mode,
}

impl Books {
    pub(crate) fn new(processes: u32) -> Self {
        Books {
            processes,
            ..Books::default()
        }
    }

    fn flag(&mut self, rule: &str, at: u64, detail: String) {
        self.findings.push(FleetFinding {
            rule: rule.into(),
            at_ms: at / MS,
            detail,
        });
    }

    pub(crate) fn f2(&mut self, at: u64, detail: String) {
        self.f2 += 1;
        self.flag("F2", at, detail);
    }

    pub(crate) fn f3(&mut self, at: u64, p: usize, access: u64) {
        self.f3 += 1;
        self.flag(
            "F3",
            at,
            format!("process {p} sent token #{access}, which the store has not taken"),
        );
    }

    /// How the holder of `call` ended its lease; the first word counts.
    pub(crate) fn held_past(&mut self, call: u64, within: bool, cause: Cause) {
        self.held.entry(call).or_insert((within, cause));
    }

    pub(crate) fn pause(&mut self, at: u64, call: u64) {
        self.pauses += 1;
        self.fault_times.push(at);
        self.held_past(call, false, Cause::Paused);
    }

    pub(crate) fn crash(&mut self, at: u64, call: u64, step: u8) {
        self.crashes[usize::from(step.min(1))] += 1;
        self.fault_times.push(at);
        self.held_past(call, false, Cause::Crashed);
    }

    pub(crate) fn faults(&self) -> u32 {
        (self.pauses + self.crashes[0] + self.crashes[1]) as u32
    }

    pub(crate) fn persisted(&mut self, at: u64) {
        self.persist_times.push(at);
    }

    /// A write the store took.
    pub(crate) fn write(&mut self, w: Write) {
        if w.rec.generation <= w.over {
            self.f2(
                w.at,
                format!(
                    "generation {} stored over generation {}",
                    w.rec.generation, w.over
                ),
            );
        }
        if w.rec.token.is_some() {
            self.persisted(w.at);
        }
    }

    /// One process's history (one life of it), judged by its monitor; a
    /// killed process is judged without L1 (its requests died with it).
    pub(crate) fn judge(&mut self, p: usize, mut rec: Recorder<Tok, SimError>, ended: bool) {
        if ended {
            rec.finish();
        }
        for v in rec.monitor().violations() {
            self.monitor += 1;
            let at = v.at.as_nanos();
            self.flag(
                &format!("{:?}", v.rule),
                at,
                format!("process {p}: {}", v.detail),
            );
        }
    }

    /// The verdicts that need the whole run.
    pub(crate) fn close(&mut self, server: &Server, mode: Mode) {
        self.mode = mode;
        self.refresh_calls = self.server_calls.len() as u64;
        self.reuses = server.reuses.len() as u64;
        self.logins = server.logins;
        let mut first: BTreeMap<u64, ServerCall> = BTreeMap::new();
        let mut expiries = 0;
        for c in self.server_calls.clone() {
            if c.early {
                self.f1 += 1;
                self.flag(
                    "F1",
                    c.at,
                    format!("call {} refreshed a token in the first half of its life: another process had refreshed it", c.call),
                );
            }
            let Some(f) = first.get(&c.rt).copied() else {
                first.insert(c.rt, c);
                expiries += u64::from(c.granted);
                continue;
            };
            if !f.granted {
                // Spent again after the server refused it: nothing
                // rotated, the session was already dead.
                self.refused_again += 1;
                continue;
            }
            // Either call's holder outlived its lease: the documented limit.
            let past = |call: u64| self.held.get(&call).copied().filter(|(within, _)| !within);
            let excuse = match mode {
                Mode::Store if c.past_lease => Some((false, Cause::Slow)),
                Mode::Store => past(f.call).or(past(c.call)),
                Mode::NoStore => None,
            };
            match excuse {
                Some((_, cause)) => *self.limit.entry(cause).or_default() += 1,
                None => {
                    self.f1 += 1;
                    self.flag(
                        "F1",
                        c.at,
                        format!(
                            "call {} spent refresh token #{} again, {} ms after call {}, whose holder finished within its lease",
                            c.call,
                            c.rt,
                            (c.at - f.at) / MS,
                            f.call
                        ),
                    );
                }
            }
        }
        self.expiries = expiries;
        let last = self.persist_times.last().copied().unwrap_or(0);
        self.recoveries = self.fault_times.iter().filter(|&&t| t < last).count() as u64;
    }

    /// Violations of any rule.
    pub fn violations(&self) -> u64 {
        self.f1 + self.f2 + self.f3 + self.monitor
    }

    /// Second calls counted apart as the documented limit.
    pub fn limit_cases(&self) -> u64 {
        self.limit.values().sum()
    }
}
