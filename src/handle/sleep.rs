//! Timers for the async handle: the refresh timeout and the back-off between
//! attempts need something that wakes a task later, and no executor offers
//! that in a way every executor shares. [`Sleep`] is the seam: the handle
//! asks it for a future that ends after a duration.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A future that ends after a while.
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Makes timers for a handle.
///
/// Any `Fn(Duration) -> impl Future<Output = ()>` is one, so plugging in an
/// executor's own timer is a closure. The default, [`ThreadSleep`], works
/// under every executor.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::{Fresh, Handle, RefreshError};
///
/// // An executor's timer, e.g. `|d| tokio::time::sleep(d)`; here one that
/// // ends at once.
/// let handle = Handle::builder(|_| async { Ok::<_, RefreshError<()>>(Fresh::new("tok")) })
///     .sleep(|_d: Duration| std::future::ready(()))
///     .build()
///     .unwrap();
/// # drop(handle);
/// ```
pub trait Sleep: Send + Sync + 'static {
    /// A future that ends once `duration` has passed (or a little later).
    fn sleep(&self, duration: Duration) -> SleepFuture;
}

impl<F, Fut> Sleep for F
where
    F: Fn(Duration) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn sleep(&self, duration: Duration) -> SleepFuture {
        Box::pin(self(duration))
    }
}

/// Timers from one helper thread per process, started on first use: they
/// need no particular executor. A handle asks for at most one timer at a
/// time, so the helper has little to do.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::{Sleep, ThreadSleep};
///
/// futures::executor::block_on(ThreadSleep.sleep(Duration::from_millis(1)));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadSleep;

impl Sleep for ThreadSleep {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        Box::pin(ThreadTimer {
            deadline: now() + duration,
        })
    }
}

/// A timer of the tokio runtime the handle is used in, the default under the
/// `tokio` feature. Outside a runtime (a handle built under the feature but
/// used from another executor) it is the [`ThreadSleep`] timer instead.
///
/// # Examples
///
/// ```
/// use tokenflight::{Fresh, Handle, RefreshError, TokioSleep};
///
/// let handle = Handle::builder(|_| async { Ok::<_, RefreshError<()>>(Fresh::new("tok")) })
///     .sleep(TokioSleep)
///     .build()
///     .unwrap();
/// # drop(handle);
/// ```
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleep;

#[cfg(feature = "tokio")]
impl Sleep for TokioSleep {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        match tokio::runtime::Handle::try_current() {
            Ok(_) => Box::pin(tokio::time::sleep(duration)),
            Err(_) => ThreadSleep.sleep(duration),
        }
    }
}

struct ThreadTimer {
    deadline: Instant,
}

impl Future for ThreadTimer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if now() >= self.deadline {
            return Poll::Ready(());
        }
        helper().add(self.deadline, cx.waker().clone());
        Poll::Pending
    }
}

/// The helper thread's to-do list. A dropped timer's entry stays until its
/// deadline and then wakes its task once for nothing, which a future must
/// tolerate anyway.
#[derive(Default)]
struct Helper {
    due: parking_lot::Mutex<Vec<(Instant, Waker)>>,
    changed: parking_lot::Condvar,
}

impl Helper {
    fn add(&self, deadline: Instant, waker: Waker) {
        let mut due = self.due.lock();
        if let Some(entry) = due.iter_mut().find(|(_, w)| w.will_wake(&waker)) {
            entry.0 = entry.0.min(deadline);
        } else {
            due.push((deadline, waker));
        }
        self.changed.notify_one();
    }

    fn run(&self) {
        let mut due = self.due.lock();
        loop {
            let t = now();
            let mut ready = Vec::new();
            due.retain(|(at, w)| {
                let keep = *at > t;
                if !keep {
                    ready.push(w.clone());
                }
                keep
            });
            if !ready.is_empty() {
                // Wake outside the lock: a waker may poll at once and add a
                // timer.
                parking_lot::MutexGuard::unlocked(&mut due, || {
                    ready.into_iter().for_each(Waker::wake)
                });
                continue;
            }
            match due.iter().map(|(at, _)| *at).min() {
                Some(next) => {
                    let _ = self.changed.wait_until(&mut due, next);
                }
                None => self.changed.wait(&mut due),
            }
        }
    }
}

fn helper() -> &'static Helper {
    static HELPER: OnceLock<Arc<Helper>> = OnceLock::new();
    HELPER.get_or_init(|| {
        let helper = Arc::new(Helper::default());
        let runner = Arc::clone(&helper);
        std::thread::Builder::new()
            .name("tokenflight-timer".into())
            .spawn(move || runner.run())
            .expect("the timer thread could not be started");
        helper
    })
}

/// The timers' only clock read; the core never reads a clock.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}
