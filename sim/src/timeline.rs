//! A timeline of a slice of one run, for the HTML report: a sample of the
//! requests that arrived in a window, each with what happened to it, and
//! every refresh call that overlaps the window.

use crate::world::Outcome;

/// What happened to a request at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Sent with this token generation.
    Send(u64),
    /// The server rejected its token.
    Reject,
    /// It started waiting for a refresh.
    Wait,
}

/// One request's lane.
#[derive(Debug, Clone)]
pub struct Lane {
    /// The request.
    pub id: u32,
    /// When it arrived (virtual ns).
    pub arrived: u64,
    /// What happened, in order.
    pub marks: Vec<(u64, Mark)>,
    /// How and when it ended, if it did.
    pub end: Option<(u64, Outcome)>,
}

/// One refresh call.
#[derive(Debug, Clone, Copy)]
pub struct RefreshSpan {
    /// The call's number.
    pub call: u32,
    /// Sent at.
    pub start: u64,
    /// Answered (or given up on) at, and whether it brought tokens.
    pub end: Option<(u64, bool)>,
}

/// The recorded slice.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Window start (virtual ns).
    pub from: u64,
    /// Window end.
    pub to: u64,
    /// Sampled requests.
    pub lanes: Vec<Lane>,
    /// Refresh calls.
    pub refreshes: Vec<RefreshSpan>,
    stride: u64,
    seen: u64,
    /// Lane index by request id, for requests in the sample.
    index: Vec<(u32, usize)>,
}

/// How many lanes the picture has at most.
pub const MAX_LANES: usize = 48;

impl Timeline {
    /// A timeline of requests arriving in `from..to` at about `rate` per
    /// second, sampled down to at most [`MAX_LANES`] lanes.
    pub fn new(from: u64, to: u64, rate: f64) -> Self {
        let expected = (to.saturating_sub(from) as f64 / 1e9 * rate).ceil() as u64;
        Timeline {
            from,
            to,
            lanes: Vec::new(),
            refreshes: Vec::new(),
            stride: (expected / MAX_LANES as u64).max(1),
            seen: 0,
            index: Vec::new(),
        }
    }

    fn lane(&mut self, id: u32) -> Option<&mut Lane> {
        // Ids arrive in increasing order, so the index is sorted.
        let i = self.index.binary_search_by_key(&id, |&(k, _)| k).ok()?;
        let lane = self.index[i].1;
        self.lanes.get_mut(lane)
    }

    pub(crate) fn arrive(&mut self, id: u32, now: u64) {
        if now < self.from || now >= self.to || self.lanes.len() >= MAX_LANES {
            return;
        }
        self.seen += 1;
        if !(self.seen - 1).is_multiple_of(self.stride) {
            return;
        }
        self.index.push((id, self.lanes.len()));
        self.lanes.push(Lane {
            id,
            arrived: now,
            marks: Vec::new(),
            end: None,
        });
    }

    pub(crate) fn send(&mut self, id: u32, now: u64, generation: u64) {
        if let Some(l) = self.lane(id) {
            l.marks.push((now, Mark::Send(generation)));
        }
    }

    pub(crate) fn reject(&mut self, id: u32, now: u64) {
        if let Some(l) = self.lane(id) {
            l.marks.push((now, Mark::Reject));
        }
    }

    pub(crate) fn wait(&mut self, id: u32, now: u64) {
        if let Some(l) = self.lane(id) {
            l.marks.push((now, Mark::Wait));
        }
    }

    pub(crate) fn end(&mut self, id: u32, now: u64, outcome: Outcome) {
        if let Some(l) = self.lane(id) {
            l.end = Some((now, outcome));
        }
    }

    pub(crate) fn refresh_start(&mut self, call: u32, now: u64) {
        if now < self.to {
            self.refreshes.push(RefreshSpan {
                call,
                start: now,
                end: None,
            });
        }
    }

    pub(crate) fn refresh_end(&mut self, call: u32, now: u64, ok: bool) {
        if let Some(r) = self.refreshes.iter_mut().find(|r| r.call == call) {
            r.end = Some((now, ok));
        }
    }
}
