//! Loom models of the handles' shared-state code: the real code, through
//! `src/sync.rs`, with loom's mutexes, atomics, channels and threads, every
//! interleaving up to the preemption bound of [`common::PREEMPTIONS`].
//!
//! Run with `scripts/loom.sh`. Time is the models' own: a clock that only a
//! model's thread moves and, where a model has timers, a timer whose sleeps
//! end when that thread moves the clock past them, so a timeout or a
//! back-off races the other threads like any other step. A refresh that
//! must stay pending is held at a [`common::Gate`] that a loom thread opens.
//! Futures run under `loom::future::block_on`, which reports a deadlock if
//! a future waits for a wake that never comes, so "no waiter hangs" (L1) is
//! checked in every model too. Every refresher call is counted at its
//! future, from the call until the future completes or is dropped, so "at
//! most one call outstanding" (S1) is checked where the token endpoint
//! would see it.
//!
//! Each model that stands for a guarantee has a planted bug it must catch.
#![cfg(tokenflight_loom)]

mod ahead;
mod blocking;
mod common;
mod races;
mod spawner;
mod timers;
