//! The lock-free fast path stays open while the token is valid: nothing
//! that happens after a refresh (a timer that still fires, a refresh ahead
//! of expiry under way) leaves requests on the slow path for good.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::executor::block_on;
use tokenflight::{Config, Fresh, Generation, Handle, RefreshError};

/// A timer that never ends by itself and keeps every waker it was polled
/// with, so that a test can wake them after the timer was dropped, as
/// `ThreadSleep` does when a dropped timer's deadline comes ("once for
/// nothing").
#[derive(Clone, Default)]
struct Wakers(Arc<Mutex<Vec<Waker>>>);

impl Wakers {
    fn wake_all(&self) -> usize {
        let wakers = std::mem::take(&mut *self.0.lock().unwrap());
        let n = wakers.len();
        wakers.into_iter().for_each(Waker::wake);
        n
    }
}

struct Kept(Wakers);

impl Future for Kept {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        (self.0).0.lock().unwrap().push(cx.waker().clone());
        Poll::Pending
    }
}

/// A handle on a token that lives an hour, whose timers are `Kept` in
/// `wakers`, and with no driver task: what a wake does is then up to the
/// requests.
fn with_kept_timers(wakers: &Wakers) -> Handle<&'static str, ()> {
    let sleep_wakers = wakers.clone();
    Handle::builder(|_| async {
        Ok::<_, RefreshError<()>>(Fresh::new("tok").expires_in(Duration::from_secs(3600)))
    })
    .config(Config::default())
    .sleep(move |_: Duration| Kept(sleep_wakers.clone()))
    .without_spawner()
    .build()
    .unwrap()
}

#[test]
fn a_dropped_timer_that_fires_late_does_not_close_the_fast_path() {
    let wakers = Wakers::default();
    let handle = with_kept_timers(&wakers);

    // The first refresh arms the refresh timeout's timer; the answer comes
    // at once and the timer is dropped unfinished.
    assert_eq!(
        block_on(handle.ticket()).unwrap().generation(),
        Generation(1)
    );
    assert!(handle.try_ticket().is_some());

    // Its deadline comes anyway: the wake is for work that no longer
    // exists.
    assert!(wakers.wake_all() > 0, "the refresh timeout was armed");

    // One request may take the slow path; after it the fast path is open
    // again, for as long as the token is valid.
    assert_eq!(
        block_on(handle.ticket()).unwrap().generation(),
        Generation(1)
    );
    for _ in 0..1_000 {
        assert!(handle.try_ticket().is_some(), "the fast path stayed closed");
    }
    assert_eq!(handle.stats().refreshes_started, 1);
}

#[test]
fn nothing_to_read_reads_as_nothing() {
    // The snapshot cell is never empty: before the first token, and while
    // a wake withholds the snapshot, it holds a value of its own that the
    // fast path must find passed.
    let wakers = Wakers::default();
    let handle = with_kept_timers(&wakers);
    assert!(handle.try_ticket().is_none(), "a ticket before any token");

    block_on(handle.ticket()).unwrap();
    assert!(handle.try_ticket().is_some());
    assert!(wakers.wake_all() > 0, "the refresh timeout was armed");
    assert!(
        handle.try_ticket().is_none(),
        "a ticket while the snapshot is withheld"
    );
    let blocking = tokenflight::blocking::Handle::new(Config::default(), |_| {
        Ok::<_, RefreshError<()>>(Fresh::new("tok"))
    })
    .unwrap();
    assert!(
        blocking.try_ticket().is_none(),
        "a blocking ticket before any token"
    );
}

#[test]
fn the_future_a_request_awaits_is_small() {
    // What every `ticket().await` moves and matches on, fast path or not,
    // and what a parked waiter keeps in its task.
    let handle = Handle::new(Config::default(), |_| async {
        Ok::<_, RefreshError<()>>(Fresh::new(String::from("tok")))
    })
    .unwrap();
    let size = std::mem::size_of_val(&handle.ticket());
    // An observed build's waiter also carries its request's report.
    let limit = if cfg!(feature = "observe") { 64 } else { 48 };
    assert!(size <= limit, "ticket() is {size} bytes");
}
