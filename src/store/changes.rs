//! A change counter that wakes the futures waiting on it: how a backend
//! that hears about changes (Redis pub/sub) wakes the waiters of its
//! process sooner than their next poll.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// Counts announced changes of a scope's record and wakes the waiters.
///
/// # Examples
///
/// ```
/// use tokenflight::store::Changes;
///
/// let changes = Changes::new();
/// let seen = changes.count();
/// changes.notify();
/// assert_eq!(changes.count(), seen + 1);
/// futures::executor::block_on(changes.after(seen)); // ready at once
/// ```
#[derive(Debug, Clone, Default)]
pub struct Changes {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    count: AtomicU64,
    wakers: Mutex<Vec<Waker>>,
}

impl Changes {
    /// A counter at zero.
    pub fn new() -> Self {
        Changes::default()
    }

    /// How many changes were announced so far.
    pub fn count(&self) -> u64 {
        self.inner.count.load(Ordering::SeqCst)
    }

    /// Announces a change: every waiter wakes.
    pub fn notify(&self) {
        self.inner.count.fetch_add(1, Ordering::SeqCst);
        let wakers = std::mem::take(&mut *self.inner.wakers.lock());
        // Woken after the lock is released: no user code under a lock.
        for waker in wakers {
            waker.wake();
        }
    }

    /// A future that ends once the count has moved past `seen`.
    pub fn after(&self, seen: u64) -> After {
        After {
            changes: self.clone(),
            seen,
        }
    }
}

/// The future of [`Changes::after`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct After {
    changes: Changes,
    seen: u64,
}

impl Future for After {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &self.changes.inner;
        if inner.count.load(Ordering::SeqCst) != self.seen {
            return Poll::Ready(());
        }
        let mut wakers = inner.wakers.lock();
        // Checked again under the lock: `notify` bumps the count before it
        // takes the wakers, so a change cannot slip between check and park.
        if inner.count.load(Ordering::SeqCst) != self.seen {
            return Poll::Ready(());
        }
        // Bounded: waiters re-poll at least every poll interval, and a
        // stale waker from an earlier poll of the same future is replaced.
        wakers.retain(|w| !w.will_wake(cx.waker()));
        wakers.push(cx.waker().clone());
        Poll::Pending
    }
}
