//! Random scripts for differential testing: the same seed, the same script.
//!
//! A uniformly random input sequence mostly exercises "unknown attempt,
//! nothing happens". These scripts are drawn with the real core alongside,
//! so that most inputs are ones a driver would give (answers to the attempt
//! out, rejections of leases the core handed out, timeouts when due), and
//! a steady share are the hostile ones a port must get right too: forged
//! leases (any generation, any send count), stray, late and repeated
//! answers, time going backwards, logins racing refreshes, duplicate and
//! unknown ids, durations and times near the end of the clock, and now and
//! then a configuration the core refuses.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokenflight::core::{Action, Core, Lease, Next, RefreshId, RequestId};
use tokenflight::{Config, Fresh, Generation, RefreshError, Timestamp};

use crate::rng::Rng;
use crate::script::{nanos, Input, RefreshResult, Script};

const MS: u64 = 1_000_000;

/// What the generator knows of the core it drives.
struct Books {
    core: Core<String, String>,
    /// The lease each request was last given (by `Send` or `Resume`).
    leases: BTreeMap<u64, (String, u64, u32)>,
    waiting: BTreeSet<u64>,
    /// Attempts started, and those already answered.
    started: Vec<u64>,
    answered: BTreeSet<u64>,
    next_id: u64,
    tokens: u64,
}

fn draw_duration(r: &mut Rng, typical_ms: u64) -> Duration {
    let n = match r.below(20) {
        0 => 0,
        1 => u64::MAX - r.below(3),
        2 => r.between(1, 1_000),
        _ => r.between(1, typical_ms * MS),
    };
    Duration::from_nanos(n)
}

fn draw_config(r: &mut Rng) -> Config {
    let mut c = Config::default();
    c.seed = r.next_u64();
    c.max_waiters = r.pick(&[1, 2, 3, 5, 1 << 17]);
    c.max_auth_retries = r.pick(&[0, 1, 2, 3, u32::MAX]);
    c.max_refresh_attempts = r.pick(&[1, 2, 3, 4, 40]);
    c.refresh_timeout = Duration::from_nanos(r.between(1, 400 * MS));
    c.refresh_abandon_after = match r.below(4) {
        0 => c.refresh_timeout,
        1 => Duration::from_nanos(u64::MAX),
        _ => Duration::from_nanos(nanos(c.refresh_timeout).saturating_add(r.below(800 * MS))),
    };
    c.safety_margin = match r.below(4) {
        0 => Duration::ZERO,
        1 => draw_duration(r, 2_000),
        _ => Duration::from_nanos(r.below(50 * MS)),
    };
    c.backoff_initial = draw_duration(r, 50);
    // In nanoseconds, saturating: a script's durations are what its JSON
    // encoding can hold.
    c.backoff_max = if r.chance(0.3) {
        c.backoff_initial
    } else {
        Duration::from_nanos(nanos(c.backoff_initial).saturating_add(r.below(300 * MS)))
    };
    c.cooldown = draw_duration(r, 500);
    c.expiry_skew = draw_duration(r, 200);
    c.skew_jitter = if r.chance(0.3) {
        Duration::ZERO
    } else {
        draw_duration(r, 100)
    };
    if r.chance(0.02) {
        match r.below(5) {
            0 => c.max_waiters = 0,
            1 => c.max_refresh_attempts = 0,
            2 => c.refresh_timeout = Duration::ZERO,
            3 => {
                c.refresh_abandon_after = c.refresh_timeout.saturating_sub(Duration::from_nanos(1))
            }
            _ => {
                c.backoff_initial = Duration::from_nanos(2);
                c.backoff_max = Duration::from_nanos(1);
            }
        }
    }
    c
}

impl Books {
    fn token(&mut self) -> String {
        self.tokens += 1;
        format!("t{}", self.tokens)
    }

    fn any(r: &mut Rng, set: impl IntoIterator<Item = u64>) -> Option<u64> {
        let v: Vec<u64> = set.into_iter().collect();
        (!v.is_empty()).then(|| v[r.below(v.len() as u64) as usize])
    }

    fn expiry(&self, r: &mut Rng, now: u64) -> Option<u64> {
        match r.below(10) {
            0..=2 => None,
            3 => Some(now.saturating_sub(r.below(10 * MS))),
            4 => Some(u64::MAX - r.below(2)),
            _ => Some(now.saturating_add(r.between(1, 1_000 * MS))),
        }
    }

    /// The next input, given the time it comes at.
    fn draw(&mut self, r: &mut Rng, now: u64) -> Input {
        let outstanding: Vec<u64> = self
            .started
            .iter()
            .copied()
            .filter(|a| !self.answered.contains(a))
            .collect();
        loop {
            let roll = r.below(100);
            let input = match roll {
                0..=21 => {
                    self.next_id += 1;
                    Some(Input::Acquire { id: self.next_id })
                }
                22..=24 => Self::any(r, self.waiting.iter().copied())
                    .or(Some(r.below(self.next_id + 3)))
                    .map(|id| Input::Acquire { id }),
                25..=39 => Self::any(r, self.leases.keys().copied()).map(|id| {
                    let (token, generation, send) = self.leases[&id].clone();
                    Input::Reject {
                        id,
                        token,
                        generation,
                        send,
                    }
                }),
                40..=43 => {
                    let g = self.core.generation().0;
                    Some(Input::Reject {
                        id: Self::any(r, self.waiting.iter().copied())
                            .unwrap_or(r.below(self.next_id + 3)),
                        token: "forged".into(),
                        generation: match r.below(4) {
                            0 => g.saturating_add(r.between(1, 2)),
                            1 => u64::MAX,
                            _ => r.below(g.saturating_add(1)),
                        },
                        send: r.pick(&[0, 1, 2, 3, 4, u32::MAX]),
                    })
                }
                44..=48 => Self::any(r, self.waiting.iter().copied())
                    .or(Some(r.below(self.next_id + 3)))
                    .map(|id| Input::Cancel { id }),
                49..=66 => outstanding.last().map(|&attempt| Input::Refreshed {
                    attempt,
                    result: self.result(r, now),
                }),
                67..=72 => {
                    let attempt = match r.below(3) {
                        0 => Self::any(r, self.started.iter().copied()).unwrap_or(0),
                        1 => self.started.last().copied().unwrap_or(0) + r.between(1, 3),
                        _ => Self::any(r, outstanding.iter().copied()).unwrap_or(0),
                    };
                    Some(Input::Refreshed {
                        attempt,
                        result: self.result(r, now),
                    })
                }
                73..=86 => Some(Input::Timeout),
                87..=92 => Some(Input::SetToken {
                    token: self.token(),
                    expires_at: self.expiry(r, now),
                }),
                _ => {
                    let g = self.core.generation().0;
                    Some(Input::Invalidate {
                        generation: match r.below(4) {
                            0 => g.saturating_sub(1),
                            1 => g + 1,
                            _ => g,
                        },
                    })
                }
            };
            if let Some(input) = input {
                return input;
            }
        }
    }

    fn result(&mut self, r: &mut Rng, now: u64) -> RefreshResult {
        match r.below(10) {
            0..=5 => RefreshResult::Ok {
                token: self.token(),
                expires_at: self.expiry(r, now),
            },
            6..=8 => RefreshResult::Transient {
                error: "unavailable".into(),
            },
            _ => RefreshResult::Permanent {
                error: "invalid_grant".into(),
            },
        }
    }

    fn next(&mut self, id: u64, n: Next<String, String>) {
        match n {
            Next::Send(l) => self.lease(id, &l),
            Next::Wait => {
                self.waiting.insert(id);
            }
            Next::Fail(_) => {}
        }
    }

    fn lease(&mut self, id: u64, l: &Lease<String>) {
        self.leases
            .insert(id, (l.token().clone(), l.generation().0, l.send()));
    }

    /// Runs `input` on the core and learns from what it did.
    fn run(&mut self, now: u64, input: &Input) {
        let t = Timestamp::from_nanos(now);
        let fresh = |token: &str, exp: Option<u64>| {
            let f = Fresh::new(token.to_string());
            match exp {
                Some(e) => f.expiring_at(Timestamp::from_nanos(e)),
                None => f,
            }
        };
        match input {
            Input::Acquire { id } => {
                let n = self.core.handle_acquire(t, RequestId(*id));
                self.next(*id, n);
            }
            Input::Reject {
                id,
                token,
                generation,
                send,
            } => {
                let lease =
                    Lease::from_parts(Arc::new(token.clone()), Generation(*generation), *send);
                let n = self.core.handle_rejection(t, RequestId(*id), &lease);
                self.leases.remove(id);
                self.next(*id, n);
            }
            Input::Cancel { id } => {
                if self.core.handle_cancel(t, RequestId(*id)) {
                    self.waiting.remove(id);
                }
            }
            Input::Refreshed { attempt, result } => {
                let result = match result {
                    RefreshResult::Ok { token, expires_at } => Ok(fresh(token, *expires_at)),
                    RefreshResult::Transient { error } => {
                        Err(RefreshError::Transient(error.clone()))
                    }
                    RefreshResult::Permanent { error } => {
                        Err(RefreshError::Permanent(error.clone()))
                    }
                };
                self.core.handle_refreshed(t, RefreshId(*attempt), result);
                self.answered.insert(*attempt);
            }
            Input::Timeout => self.core.handle_timeout(t),
            Input::SetToken { token, expires_at } => {
                self.core.handle_set_token(t, fresh(token, *expires_at))
            }
            Input::Invalidate { generation } => {
                self.core.handle_invalidate(t, Generation(*generation))
            }
        }
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::StartRefresh { attempt } => self.started.push(attempt.0),
                // Its answer may still be given (the driver dropped it, but a
                // port must ignore it): it stays among the stray answers.
                Action::AbandonRefresh { attempt } => {
                    self.answered.insert(attempt.0);
                }
                Action::Resume { id, lease } => {
                    self.waiting.remove(&id.0);
                    self.lease(id.0, &lease);
                }
                Action::Fail { id, .. } => {
                    self.waiting.remove(&id.0);
                }
            }
        }
    }
}

/// When the next input comes: mostly later, sometimes at the same time, at
/// the core's deadline, or earlier than the last input (time going
/// backwards); near the end of the clock now and then.
fn draw_time(r: &mut Rng, now: u64, deadline: Option<u64>) -> u64 {
    match r.below(20) {
        0..=3 => now,
        4..=7 => now.saturating_add(r.between(1, MS)),
        8..=11 => now.saturating_add(r.between(1, 100 * MS)),
        12..=14 => deadline.map_or(now, |d| d.max(now)),
        15 => deadline.map_or(now, |d| d.max(now).saturating_add(r.below(2))),
        16 | 17 => now.saturating_sub(r.between(1, 50 * MS)),
        18 => now.saturating_add(r.between(1, 5_000 * MS)),
        _ => {
            if r.chance(0.05) {
                u64::MAX - r.below(1_000 * MS)
            } else {
                now.saturating_add(r.between(1, 300 * MS))
            }
        }
    }
}

/// The random script of `seed`, with 20 to 40 inputs.
///
/// # Examples
///
/// ```
/// use tokenflight_sim::random_script::draw;
///
/// assert_eq!(draw(3), draw(3));
/// assert_ne!(draw(3), draw(4));
/// assert!((20..=40).contains(&draw(3).inputs.len()));
/// ```
pub fn draw(seed: u64) -> Script {
    let mut r = Rng::stream(seed, 0x005C_2197);
    let config = draw_config(&mut r);
    let len = r.between(20, 40) as usize;
    // A core the core refuses still gets inputs (the oracle answers
    // `invalid_config`); they are drawn against a default core.
    let core = Core::new(config.clone())
        .or_else(|_| Core::new(Config::default()))
        .expect("the default config is valid");
    let mut books = Books {
        core,
        leases: BTreeMap::new(),
        waiting: BTreeSet::new(),
        started: Vec::new(),
        answered: BTreeSet::new(),
        next_id: 0,
        tokens: 0,
    };
    let mut now = 0;
    let mut inputs = Vec::with_capacity(len);
    for _ in 0..len {
        let deadline = books.core.poll_timeout().map(Timestamp::as_nanos);
        let t = draw_time(&mut r, now, deadline);
        let input = books.draw(&mut r, t);
        books.run(t, &input);
        now = t;
        inputs.push((t, input));
    }
    Script { config, inputs }
}

/// `count` scripts from `seed` on, one per seed.
pub fn draw_many(seed: u64, count: u64) -> impl Iterator<Item = Script> {
    (0..count).map(move |i| draw(seed.wrapping_add(i)))
}
