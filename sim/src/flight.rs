//! tokenflight under simulation: the real [`Core`], watched by the shared
//! [`Recorder`], driven exactly as a front-end drives it — act on every
//! `Next`, drain `poll_action` after every input, call `handle_timeout`
//! when `poll_timeout` comes due, report every refresh answer (late ones
//! too) and every rejection, drop a call the core gives up for good, cancel
//! a waiter whose caller gives up.

use std::collections::BTreeMap;
use std::fmt;

use tokenflight::check::{Limits, Recorder, Rule};
use tokenflight::core::{Action, Core, Lease, Next, RefreshId, RequestId};
use tokenflight::{Error, Fresh, RefreshError, Timestamp};

use crate::report::Finding;
use crate::server::Grant;
use crate::world::{Algorithm, ApiAnswer, Outcome, RefreshAnswer, World};

/// The access token as the simulated client holds it: the server's id.
pub type Tok = u64;

/// Why a simulated refresh failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimError {
    /// The server answered 503.
    Unavailable,
    /// No answer within the HTTP timeout.
    Timeout,
    /// `invalid_grant`: the session is revoked.
    InvalidGrant,
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SimError::Unavailable => "server unavailable",
            SimError::Timeout => "refresh call timed out",
            SimError::InvalidGrant => "invalid grant",
        })
    }
}

/// The core type the simulator drives.
pub type SimCore = Core<Tok, SimError>;

pub(crate) struct Flight {
    rec: Recorder<Tok, SimError>,
    leases: Vec<Option<Lease<Tok>>>,
    /// The refresh token the refresher holds (it stores every rotation it
    /// receives, as a real refresher does).
    rt: u64,
    attempts: BTreeMap<u32, RefreshId>,
    /// The token of the current generation, and its announced expiry.
    current: Option<(u64, Option<u64>)>,
    timer_at: Option<u64>,
}

fn ts(ns: u64) -> Timestamp {
    Timestamp::from_nanos(ns)
}

impl Flight {
    pub(crate) fn new(core: SimCore, trace: bool) -> Self {
        let rec = Recorder::new(core);
        Flight {
            rec: if trace { rec.logging() } else { rec },
            leases: Vec::new(),
            rt: 0,
            attempts: BTreeMap::new(),
            current: None,
            timer_at: None,
        }
    }

    fn fresh(&self, w: &World, g: &Grant) -> Fresh<Tok> {
        let f = Fresh::new(g.access);
        if w.sc.announce_expiry {
            f.expiring_at(ts(g.expires_at))
        } else {
            f
        }
    }

    fn next(&mut self, w: &mut World, id: u32, next: Next<Tok, SimError>) {
        match next {
            Next::Send(lease) => self.send(w, id, lease),
            Next::Wait => {
                w.waiting(id);
                w.arm_timeout(id);
            }
            Next::Fail(e) => self.fail(w, id, &e),
        }
    }

    fn send(&mut self, w: &mut World, id: u32, lease: Lease<Tok>) {
        let (token, generation) = (*lease.token(), lease.generation().0);
        self.leases[id as usize] = Some(lease);
        w.send_api(id, token, generation);
    }

    fn fail(&mut self, w: &mut World, id: u32, e: &Error<SimError>) {
        if matches!(e, Error::LoginRequired(_)) {
            w.request_relogin();
        }
        self.leases[id as usize] = None;
        w.end(id, Outcome::Failed);
    }

    /// After every input: act on the actions, keep the timer, note a new
    /// token, stream the history out.
    fn pump(&mut self, w: &mut World, adopted: Option<(u64, Option<u64>)>, before: u64) {
        // The input's own events first, so the trace stays in causal order
        // with the facts the actions below write.
        if w.tracing() {
            for (_, event) in self.rec.take_log() {
                w.trace_event(&event);
            }
        }
        if self.rec.core().generation().0 != before {
            self.current = adopted;
        }
        while let Some(action) = self.rec.poll_action() {
            match action {
                Action::StartRefresh { attempt } => {
                    let call = w.send_refresh(self.rt, self.current);
                    self.attempts.insert(call, attempt);
                }
                // The call's future is dropped: its answer, should the
                // endpoint still send one, reaches no one.
                Action::AbandonRefresh { attempt } => {
                    let dropped = self.attempts.iter().find(|(_, &a)| a == attempt);
                    if let Some((&call, _)) = dropped {
                        self.attempts.remove(&call);
                        w.drop_call(call);
                    }
                }
                Action::Resume { id, lease } => self.send(w, id.0 as u32, lease),
                Action::Fail { id, error } => self.fail(w, id.0 as u32, &error),
            }
        }
        let due = self.rec.poll_timeout().map(Timestamp::as_nanos);
        if due.is_some() && due != self.timer_at {
            w.set_timer(due.unwrap_or_default());
        }
        self.timer_at = due;
    }

    fn generation(&self) -> u64 {
        self.rec.core().generation().0
    }
}

impl Algorithm for Flight {
    const NAME: &'static str = "tokenflight";

    fn start(&mut self, w: &mut World, login: Grant) {
        let window = Limits::of(self.rec.core().config()).proactive_window;
        w.judge_refreshes(window.as_nanos() as u64);
        self.leases.reserve(w.sc.requests.min(1 << 24) as usize);
        self.relogin(w, login);
    }

    fn arrive(&mut self, w: &mut World, id: u32) {
        self.leases.push(None);
        let before = self.generation();
        let next = self.rec.acquire(ts(w.now), RequestId(u64::from(id)));
        self.next(w, id, next);
        self.pump(w, None, before);
    }

    fn api_answer(&mut self, w: &mut World, id: u32, answer: ApiAnswer) {
        let before = self.generation();
        match answer {
            ApiAnswer::Ok => {
                self.leases[id as usize] = None;
                self.rec.complete(RequestId(u64::from(id)));
                w.end(id, Outcome::Completed);
            }
            // A transport error ends the request with that error; the core
            // has no part in it (it keeps no record of requests in flight),
            // and to the checker it is a non-auth answer like any other.
            ApiAnswer::NoAnswer => {
                self.leases[id as usize] = None;
                self.rec.complete(RequestId(u64::from(id)));
                w.end(id, Outcome::Failed);
            }
            ApiAnswer::Rejected => {
                let Some(lease) = self.leases[id as usize].take() else {
                    return;
                };
                let next = self.rec.reject(ts(w.now), RequestId(u64::from(id)), &lease);
                self.next(w, id, next);
            }
        }
        self.pump(w, None, before);
    }

    fn refresh_answer(&mut self, w: &mut World, call: u32, answer: RefreshAnswer) {
        let Some(attempt) = self.attempts.remove(&call) else {
            return;
        };
        let before = self.generation();
        let mut adopted = None;
        let result = match answer {
            RefreshAnswer::Granted(g) => {
                self.rt = g.refresh;
                let fresh = self.fresh(w, &g);
                adopted = Some((g.access, fresh.expires_at().map(Timestamp::as_nanos)));
                Ok(fresh)
            }
            RefreshAnswer::Transient => Err(RefreshError::Transient(SimError::Unavailable)),
            RefreshAnswer::NoAnswer => Err(RefreshError::Transient(SimError::Timeout)),
            RefreshAnswer::InvalidGrant => Err(RefreshError::Permanent(SimError::InvalidGrant)),
        };
        if matches!(answer, RefreshAnswer::InvalidGrant) {
            w.request_relogin();
        }
        self.rec.refreshed(ts(w.now), attempt, result);
        self.pump(w, adopted, before);
    }

    fn client_timeout(&mut self, w: &mut World, id: u32) {
        let before = self.generation();
        self.leases[id as usize] = None;
        self.rec.cancel(ts(w.now), RequestId(u64::from(id)));
        w.end(id, Outcome::Cancelled);
        self.pump(w, None, before);
    }

    fn timer(&mut self, w: &mut World, at: u64) {
        if self.timer_at != Some(at) {
            return;
        }
        let before = self.generation();
        self.timer_at = None;
        self.rec.timeout(ts(w.now));
        self.pump(w, None, before);
    }

    fn relogin(&mut self, w: &mut World, login: Grant) {
        let before = self.generation();
        self.rt = login.refresh;
        let fresh = self.fresh(w, &login);
        let adopted = Some((login.access, fresh.expires_at().map(Timestamp::as_nanos)));
        self.rec.set_token(ts(w.now), fresh);
        self.pump(w, adopted, before);
    }

    fn finish(&mut self, w: &mut World) -> (Vec<Finding>, [u64; Rule::ALL.len()]) {
        self.rec.finish();
        if w.tracing() {
            for (_, event) in self.rec.take_log() {
                w.trace_event(&event);
            }
        }
        Finding::from_checker(self.rec.monitor())
    }
}
