//! The baseline: a faithful port of the mini-program recipe
//! (`seed-recipe.md`), flaws included, driven by the same clients and
//! server. JavaScript runs one callback at a time, so each handler here is
//! one atomic step, as a JS tick is.
//!
//! ```js
//! if (res.data.code == '0002' && !res.data.success) {
//!   if (!isRefreshing) {
//!     isRefreshing = true;
//!     let sessionId = await wxlogin();   // throws on a network failure
//!     isRefreshing = false;
//!     if (sessionId) {
//!       requests.forEach(item => item()); requests = [];
//!       return wxRequest(params, url)
//!     } else {
//!     }
//!   } else {
//!     return new Promise((resolve) => { requests.push(() => resolve(wxRequest(params, url))) })
//!   }
//! }
//! return res;                            // ... and `catch (e)` returns undefined
//! ```
//!
//! What follows from it, and what the port does:
//! - every request reads the stored token when it is (re)sent, so requests
//!   started during a refresh go out with the stale token;
//! - a rejection that arrives after a refresh finished starts another one
//!   (`isRefreshing` is false again): a second refresh for one expiry;
//! - a refresh that answers with an error takes the empty `else` branch:
//!   the queued requests stay in `requests` (until some later refresh
//!   succeeds, if one ever does) and the request that started it returns
//!   the "expired" response as if it were a result;
//! - a refresh call that fails at the network level throws past
//!   `isRefreshing = false`: the flag stays set forever and every later
//!   rejected request queues forever; the `catch` turns the throw into
//!   `undefined`;
//! - nothing bounds how often a request is retried;
//! - JS cannot cancel a promise: a caller that stops waiting leaves the
//!   request where it is.
//!
//! The refresher (`wxlogin`) calls the same server as tokenflight's, with
//! one difference the recipe's own code dictates: its header is built from
//! `token`, the session the rejected request was sent with, so the port
//! presents the refresh token that was issued together with that request's
//! access token. A second refresh for one expiry (a rejection of the old
//! token arriving after the first refresh finished) therefore presents a
//! refresh token that was already used: the server revokes the session and
//! the user must log in again. (A refresher that always read the newest
//! stored refresh token would waste a rotation instead.) When the server
//! says `invalid_grant` the app sends the user to log in again.
//!
//! Everything the port does is written down as the checker's `Event`s and
//! judged by a `Monitor` with no bounds (`Limits::unbounded`), the same
//! checker that judges the core.

use tokenflight::check::{Event, Limits, Monitor, Rule};
use tokenflight::core::{RefreshId, RequestId};
use tokenflight::{Generation, Phase, Timestamp};

use crate::report::Finding;
use crate::server::Grant;
use crate::world::{Algorithm, ApiAnswer, Outcome, RefreshAnswer, World};

pub(crate) struct Recipe {
    monitor: Monitor,
    /// `wx.getStorageSync('cookie')`: the access token and its generation.
    token: u64,
    generation: Generation,
    /// The refresh token issued with each generation's access token.
    rts: Vec<u64>,
    is_refreshing: bool,
    /// The retry closures, as the ids of the requests they re-send.
    requests: Vec<u32>,
    /// The request that is awaiting `wxlogin()`, per refresh call.
    initiator: Vec<(u32, u32, RefreshId)>,
    attempts: u64,
    /// The generation each request was last sent with.
    sent_with: Vec<Generation>,
}

impl Recipe {
    pub(crate) fn new() -> Self {
        Recipe {
            monitor: Monitor::new(Limits::unbounded()),
            token: 0,
            generation: Generation::NONE,
            rts: vec![0],
            is_refreshing: false,
            requests: Vec::new(),
            initiator: Vec::new(),
            attempts: 0,
            sent_with: Vec::new(),
        }
    }

    fn record(&mut self, w: &mut World, event: Event) {
        self.monitor.observe(Timestamp::from_nanos(w.now), event);
        w.trace_event(&event);
    }

    fn id(id: u32) -> RequestId {
        RequestId(u64::from(id))
    }

    /// `wxRequest(params, url)`: send with whatever token is stored.
    fn wx_request(&mut self, w: &mut World, id: u32) {
        self.sent_with[id as usize] = self.generation;
        let generation = self.generation;
        self.record(
            w,
            Event::Sent {
                id: Self::id(id),
                generation,
            },
        );
        w.send_api(id, self.token, generation.0);
    }

    fn phase(&mut self, w: &mut World, phase: Phase) {
        self.record(w, Event::PhaseChanged { phase });
    }

    fn new_token(&mut self, w: &mut World, g: &Grant, from: Option<RefreshId>) {
        self.token = g.access;
        self.generation = self.generation.next();
        self.rts.push(g.refresh);
        let generation = self.generation;
        self.record(
            w,
            Event::NewGeneration {
                generation,
                // The recipe never looks at `expires_in`.
                expires_at: None,
                from,
            },
        );
    }

    /// The request ends with something the caller takes for a result.
    fn swallowed(&mut self, w: &mut World, id: u32) {
        self.record(w, Event::Failed { id: Self::id(id) });
        w.end(id, Outcome::Lost);
    }
}

impl Algorithm for Recipe {
    const NAME: &'static str = "recipe";

    fn start(&mut self, w: &mut World, login: Grant) {
        w.judge_refreshes(0);
        self.sent_with.reserve(w.sc.requests.min(1 << 24) as usize);
        self.new_token(w, &login, None);
    }

    fn arrive(&mut self, w: &mut World, id: u32) {
        self.sent_with.push(Generation::NONE);
        self.record(w, Event::Arrived { id: Self::id(id) });
        self.wx_request(w, id);
    }

    fn api_answer(&mut self, w: &mut World, id: u32, answer: ApiAnswer) {
        match answer {
            ApiAnswer::Ok => {
                self.record(w, Event::Completed { id: Self::id(id) });
                w.end(id, Outcome::Completed);
            }
            // `fail: reject` → `catch (e) { console.log(e); showToast }` →
            // the caller gets `undefined`.
            ApiAnswer::NoAnswer => self.swallowed(w, id),
            ApiAnswer::Rejected => {
                let generation = self.sent_with[id as usize];
                self.record(
                    w,
                    Event::Rejected {
                        id: Self::id(id),
                        generation,
                    },
                );
                self.record(w, Event::Waiting { id: Self::id(id) });
                w.waiting(id);
                if self.is_refreshing {
                    self.requests.push(id);
                    return;
                }
                self.is_refreshing = true;
                self.phase(w, Phase::Refreshing);
                self.attempts += 1;
                let attempt = RefreshId(self.attempts);
                self.record(w, Event::RefreshStarted { attempt });
                let rt = self.rts[generation.0 as usize];
                let call = w.send_refresh(rt, Some((self.token, None)));
                self.initiator.push((call, id, attempt));
            }
        }
    }

    fn refresh_answer(&mut self, w: &mut World, call: u32, answer: RefreshAnswer) {
        let Some(i) = self.initiator.iter().position(|&(c, ..)| c == call) else {
            return;
        };
        let (_, id, attempt) = self.initiator.swap_remove(i);
        let ok = matches!(answer, RefreshAnswer::Granted(_));
        self.record(w, Event::RefreshEnded { attempt, ok });
        match answer {
            RefreshAnswer::Granted(g) => {
                self.new_token(w, &g, Some(attempt));
                // isRefreshing = false; requests.forEach(item => item());
                // requests = []; return wxRequest(params, url)
                self.is_refreshing = false;
                for queued in std::mem::take(&mut self.requests) {
                    self.wx_request(w, queued);
                }
                self.wx_request(w, id);
                self.phase(w, Phase::Idle);
            }
            RefreshAnswer::Transient | RefreshAnswer::InvalidGrant => {
                // isRefreshing = false; `else {}`; `return res`: the caller
                // gets the "expired" response; the queue stays as it is.
                self.is_refreshing = false;
                if answer == RefreshAnswer::InvalidGrant {
                    w.request_relogin();
                }
                self.swallowed(w, id);
                self.phase(w, Phase::Failed);
            }
            RefreshAnswer::NoAnswer => {
                // `await wxlogin()` throws: `isRefreshing = false` never
                // runs, the `catch` returns `undefined`.
                self.swallowed(w, id);
            }
        }
    }

    fn client_timeout(&mut self, _w: &mut World, _id: u32) {
        // A JS promise cannot be cancelled: the caller stops looking, the
        // request stays wherever the recipe holds it.
    }

    fn timer(&mut self, _w: &mut World, _at: u64) {}

    fn relogin(&mut self, w: &mut World, login: Grant) {
        self.new_token(w, &login, None);
    }

    fn finish(&mut self, w: &mut World) -> (Vec<Finding>, [u64; Rule::ALL.len()]) {
        self.monitor.finish();
        let _ = w;
        Finding::from_checker(&self.monitor)
    }
}
