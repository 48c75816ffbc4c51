//! Painless token refresh, proven.
//!
//! Many requests share one access token. When it expires, several of them
//! come back "expired" at once. tokenflight makes sure that exactly one
//! refresh runs for that expiry, that every affected request waits and is
//! retried with the new token, and that no request is lost, hung or answered
//! twice.
//!
//! The heart is [`Core`], a sans-IO state machine (`Idle` / `Refreshing` /
//! `Failed`). It never reads a clock, spawns, sleeps, locks or does I/O: time
//! comes in with every input, work goes out as [`Action`]s. Front-ends own
//! the waiting and the I/O; [`check`] holds the invariant checker that every
//! verification layer (unit tests, proptest, the exhaustive explorer, loom,
//! the simulator) shares.
//!
//! The guarantees (S1–S7, L1) and why each transition keeps them are in
//! `proofs.md` at the root of the repository.

pub mod blocking;
pub mod check;
mod config;
mod core;
mod error;
mod front;
mod handle;
#[cfg(feature = "tower")]
pub mod http;
mod id;
mod jitter;
mod sync;
mod time;
mod token;

pub use crate::config::{Config, ConfigError};
pub use crate::core::{Action, Core, Mutant, Next, Phase, Snapshot, Stats};
pub use crate::error::{Error, RefreshError, RefreshFailure};
pub use crate::front::{BuildError, Clock, Fault, HandleError, Reply, Ticket};
pub use crate::handle::{Builder, Handle, Sleep, SleepFuture, Spawn, Task, ThreadSleep};
#[cfg(feature = "tokio")]
pub use crate::handle::{TokioSleep, TokioSpawn};
pub use crate::id::{Generation, RefreshId, RequestId};
pub use crate::time::Timestamp;
pub use crate::token::{Fresh, Lease};

/// The README's examples, compiled and run as doc-tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
