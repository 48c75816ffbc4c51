//! What a driver can do to a handle in the lab, one step at a time, and a
//! seeded source of random steps (so that a failing run is replayed from
//! its seed alone).

use std::time::Duration;

/// How long a token the lab hands out lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifetime {
    /// Short enough that its refresh ahead of expiry and its expiry come
    /// within a few steps.
    Short,
    /// Outlives most runs.
    Long,
    /// No expiry.
    Forever,
}

impl Lifetime {
    /// The lifetime, if the token has one.
    pub fn duration(self) -> Option<Duration> {
        match self {
            Lifetime::Short => Some(Duration::from_millis(150)),
            Lifetime::Long => Some(Duration::from_secs(5)),
            Lifetime::Forever => None,
        }
    }
}

/// How the scripted endpoint answers a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reply {
    /// A new token.
    Token(Lifetime),
    /// A transient error: worth retrying.
    Transient,
    /// A permanent error: a new login is needed.
    Permanent,
}

/// One step of a driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// A request takes a ticket and lets it go (sent, completed).
    Ticket,
    /// A request through `call` whose first `rejections` sends the server
    /// rejects.
    Call {
        /// Sends rejected before one is accepted.
        rejections: u8,
    },
    /// The fast path alone.
    TryTicket,
    /// The user gives up a running request (its future is dropped); which
    /// one, modulo the running ones.
    Cancel {
        /// Which running request.
        task: u8,
    },
    /// The endpoint answers a call still unanswered (which one, modulo the
    /// unanswered ones), `delay_ms` from now.
    Answer {
        /// Which unanswered call.
        call: u8,
        /// What it answers.
        reply: Reply,
        /// When the answer arrives, from now.
        delay_ms: u16,
    },
    /// Time passes.
    Advance {
        /// How much.
        ms: u16,
    },
    /// A login installs a token.
    SetToken {
        /// How long it lives.
        lifetime: Lifetime,
    },
    /// The user declares the current token bad.
    Invalidate,
}

/// SplitMix64: small, fast, and the same everywhere, so a seed names a run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

impl Op {
    /// `len` random steps from `seed`, weighted towards the steps that make
    /// refreshes happen and time pass.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenflight_lab::Op;
    ///
    /// assert_eq!(Op::random(7, 20), Op::random(7, 20));
    /// assert_ne!(Op::random(7, 20), Op::random(8, 20));
    /// ```
    pub fn random(seed: u64, len: usize) -> Vec<Op> {
        let mut rng = Rng::new(seed);
        (0..len).map(|_| Op::pick(&mut rng)).collect()
    }

    fn pick(rng: &mut Rng) -> Op {
        let lifetime = |rng: &mut Rng| match rng.below(4) {
            0 | 1 => Lifetime::Short,
            2 => Lifetime::Long,
            _ => Lifetime::Forever,
        };
        let small = |rng: &mut Rng, n: u64| u8::try_from(rng.below(n)).unwrap_or(0);
        match rng.below(20) {
            0..=3 => Op::Call {
                rejections: small(rng, 3),
            },
            4 | 5 => Op::Ticket,
            6 => Op::TryTicket,
            7 => Op::Cancel {
                task: small(rng, 4),
            },
            8..=11 => {
                let reply = match rng.below(6) {
                    0..=2 => Reply::Token(lifetime(rng)),
                    3 | 4 => Reply::Transient,
                    _ => Reply::Permanent,
                };
                let delay_ms = match rng.below(3) {
                    0 => 0,
                    // Past the refresh timeout (100 ms in the lab's setup)
                    // and now and then past the hard limit.
                    _ => u16::try_from(rng.below(400)).unwrap_or(0),
                };
                Op::Answer {
                    call: small(rng, 2),
                    reply,
                    delay_ms,
                }
            }
            12..=16 => Op::Advance {
                ms: u16::try_from(rng.below(300)).unwrap_or(0),
            },
            17 | 18 => Op::SetToken {
                lifetime: lifetime(rng),
            },
            _ => Op::Invalidate,
        }
    }
}
