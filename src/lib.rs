//! Painless token refresh, proven.
//!
//! Many requests share one access token. When it expires, several of them
//! come back "expired" at once. tokenflight makes sure that exactly one
//! refresh runs for that expiry, that every affected request waits and is
//! retried with the new token, and that no request is lost, hung or answered
//! twice.
//!
//! The heart is [`core::Core`], a sans-IO state machine (`Idle` / `Refreshing` /
//! `Failed`). It never reads a clock, spawns, sleeps, locks or does I/O: time
//! comes in with every input, work goes out as [`core::Action`]s. Front-ends own
//! the waiting and the I/O: [`Handle`] for async code, [`blocking::Handle`]
//! for threads, the `http` module (features `tower`, `reqwest`) for `tower`
//! and `reqwest` clients; [`check`] holds the invariant checker that every
//! verification layer (unit tests, proptest, the exhaustive explorer, loom,
//! the simulator) shares.
//!
//! Across processes, the `store` module (feature `store`; Redis with `redis`)
//! persists the token so a restart needs no login, and makes the processes
//! that share a credential refresh it once between them (F1–F3).
//!
//! The guarantees (S1–S7, L1, F1–F3) and why each transition keeps them are in
//! `proofs.md` at the root of the repository.

pub mod blocking;
pub mod check;
mod config;
mod error;
mod front;
mod handle;
#[cfg(feature = "tower")]
pub mod http;
mod id;
mod jitter;
#[path = "core/mod.rs"]
mod machine;
#[cfg(feature = "store")]
pub mod store;
mod sync;
mod time;
mod token;

pub use crate::config::{Config, ConfigError};
pub use crate::error::{Error, RefreshError, RefreshFailure};
pub use crate::front::{BuildError, Clock, Fault, HandleError, Refresh, Reply, Status, Ticket};
pub use crate::handle::{Builder, Handle, Sleep, SleepFuture, Spawn, Task, ThreadSleep};
#[cfg(feature = "tokio")]
pub use crate::handle::{TokioSleep, TokioSpawn};
pub use crate::id::Generation;
pub use crate::machine::{Phase, Stats};
pub use crate::time::Timestamp;
pub use crate::token::{Credential, Fresh};

/// The sans-IO core, for port authors and custom drivers: a pure state
/// machine that never reads a clock, spawns, sleeps, locks or does I/O.
/// Time comes in with every input, work goes out as [`Action`]s;
/// [`Core`] says how to drive it. The handles at the crate root
/// are drivers of it.
pub mod core {
    pub use crate::config::{Config, ConfigError};
    pub use crate::error::{Error, RefreshError, RefreshFailure};
    pub use crate::id::{Generation, RefreshId, RequestId};
    pub use crate::machine::{Action, Core, Next, Phase, Snapshot, Stats};
    pub use crate::time::Timestamp;
    pub use crate::token::{Fresh, Lease};

    /// Deliberately broken variants of the core, for the checkers' tests;
    /// only with the test-only `mutants` feature.
    #[cfg(feature = "mutants")]
    #[doc(hidden)]
    pub use crate::machine::Mutant;
}

// Inside the crate the core's types are everywhere; they keep their short
// paths here, outside they are reached through `core`.
pub(crate) use crate::core::{Action, Core, Lease, Next, RefreshId, RequestId, Snapshot};

/// The README's examples, compiled and run as doc-tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
