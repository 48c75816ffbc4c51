//! The one invariant checker every verification layer shares.
//!
//! A system that coordinates token refresh is judged by what it is seen to
//! do: a history of [`Event`]s. [`Monitor`] reads a history and flags every
//! break of S1–S7 and L1 (see `proofs.md`) with its own bookkeeping, never
//! trusting the system's counters. [`Recorder`] drives a [`Core`](crate::core::Core)
//! and writes its history. Unit tests, proptest, the exhaustive explorer, the
//! loom models and the simulator all judge through this module, and so does
//! the simulator's port of the recipe the project grew from — which is how
//! its double refreshes and hung requests are shown side by side.

mod event;
mod monitor;
mod recorder;

pub use event::Event;
pub use monitor::{Limits, Monitor, Rule, Violation};
pub use recorder::Recorder;

/// Deliberately broken variants of the async handle, for the checkers'
/// tests.
#[cfg(feature = "mutants")]
#[doc(hidden)]
pub use crate::handle::Mutant as HandleMutant;
