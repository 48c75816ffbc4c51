//! Where a refresh nobody waits for runs: a task of the user's executor.
//!
//! The core's driving contract says a call it starts is made at once. A
//! waiting request drives the call it waits for; a call that no request
//! waits for (a refresh ahead of expiry, an `invalidate`, every waiter gone)
//! runs on a task of its own when the handle has a [`Spawn`]. Without one,
//! the request that started it makes the call and polls it once, and when
//! the call wakes, the handle withholds its fast-path snapshot so that the
//! next request takes the slow path and polls it: nothing is lost, and the
//! fast path pays nothing.

use std::future::Future;
use std::pin::Pin;

/// A task for an executor: the handle's driver for one refresher call.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs the handle's refresher calls that no request waits for, on an
/// executor's task.
///
/// Any `Fn(Task)` is one, so plugging in an executor is a closure.
/// Under the `tokio` feature the default is `TokioSpawn`.
///
/// # Examples
///
/// ```
/// use tokenflight::{Fresh, Handle, RefreshError, Task};
///
/// // A thread per task, for the example; any executor's spawn fits.
/// let handle = Handle::builder(|_| async { Ok::<_, RefreshError<()>>(Fresh::new("tok")) })
///     .spawner(|task: Task| {
///         std::thread::spawn(move || futures::executor::block_on(task));
///     })
///     .build()
///     .unwrap();
/// # drop(handle);
/// ```
pub trait Spawn: Send + Sync + 'static {
    /// Runs `task` to completion on some executor, or drops it if it
    /// cannot (the handle then drives the call itself).
    fn spawn(&self, task: Task);

    /// Whether [`spawn`](Spawn::spawn) can run a task now. Asked before a
    /// task is made; the default is yes.
    fn can_spawn(&self) -> bool {
        true
    }
}

impl<F> Spawn for F
where
    F: Fn(Task) + Send + Sync + 'static,
{
    fn spawn(&self, task: Task) {
        self(task);
    }
}

/// Spawns onto the tokio runtime the handle is used in, when it is used in
/// one (`tokio::runtime::Handle::try_current`); outside a runtime the
/// handle drives its calls itself.
///
/// # Examples
///
/// ```
/// use tokenflight::{Spawn, TokioSpawn};
///
/// assert!(!TokioSpawn.can_spawn(), "no runtime here");
/// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// runtime.block_on(async { assert!(TokioSpawn.can_spawn()) });
/// ```
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSpawn;

#[cfg(feature = "tokio")]
impl Spawn for TokioSpawn {
    fn spawn(&self, task: Task) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn(task));
        }
    }

    fn can_spawn(&self) -> bool {
        tokio::runtime::Handle::try_current().is_ok()
    }
}
