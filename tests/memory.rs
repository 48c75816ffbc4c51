//! The handles' memory follows the live waiters: requests that park and
//! give up again and again, while the same refresh runs, leave nothing
//! behind (S7). A counting allocator measures the heap in use.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tokenflight::{Config, Fresh, Handle, RefreshError};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Heap in use now, as the allocator counts it.
fn live() -> isize {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

#[test]
fn parking_and_cancelling_again_and_again_keeps_the_heap_flat() {
    let open = Arc::new(AtomicBool::new(false));
    let gate = Arc::clone(&open);
    let mut config = Config::default();
    config.backoff_initial = Duration::ZERO;
    let handle: Handle<u64, ()> = Handle::builder(move |_| {
        let gate = Arc::clone(&gate);
        std::future::poll_fn(move |cx| {
            if gate.load(Ordering::SeqCst) {
                Poll::Ready(Ok::<_, RefreshError<()>>(Fresh::new(1)))
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
    })
    .config(config)
    .without_timer()
    .without_spawner()
    .build()
    .unwrap();
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    // One request keeps the round open throughout.
    let mut first = pin!(handle.ticket());
    assert!(first.as_mut().poll(&mut cx).is_pending());
    let mut churn = |n: usize| {
        for _ in 0..n {
            let mut waiter = pin!(handle.ticket());
            assert!(waiter.as_mut().poll(&mut cx).is_pending());
        }
    };
    churn(100);
    let before = live();
    let region = Region::new(GLOBAL);
    churn(20_000);
    let grown = live() - before;
    assert_eq!(handle.waiters(), 1);
    assert!(
        grown < 1_024,
        "20 000 waiters that came and went left {grown} bytes behind ({:?})",
        region.change()
    );
    open.store(true, Ordering::SeqCst);
    let Poll::Ready(ticket) = first.as_mut().poll(&mut cx) else {
        panic!("the gate is open");
    };
    assert_eq!(*ticket.unwrap().token(), 1);
}
