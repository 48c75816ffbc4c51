//! The lab's virtual timer: a [`Sleep`] whose futures end when the lab's
//! time reaches their deadline, and the table of deadlines the driver
//! walks earliest first.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokenflight::{Sleep, SleepFuture, Timestamp};

use crate::time::Time;

/// The deadlines of the timers still pending, and who to wake at each.
/// Shared by the [`LabSleep`] futures, the scripted refresher's timed
/// answers and the driver.
#[derive(Debug, Clone)]
pub struct Timers {
    time: Time,
    table: Arc<Mutex<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    /// By deadline, then by when they were set: woken in that order.
    pending: BTreeMap<(Timestamp, u64), Waker>,
    set: u64,
}

impl Timers {
    /// No timers, on `time`.
    pub fn new(time: Time) -> Self {
        Timers {
            time,
            table: Arc::default(),
        }
    }

    /// The lab's time.
    pub fn time(&self) -> &Time {
        &self.time
    }

    /// Wakes `waker` once the time reaches `at`.
    pub fn wake_at(&self, at: Timestamp, waker: Waker) {
        let mut table = self
            .table
            .lock()
            .expect("the timer table is never poisoned");
        table.set += 1;
        let key = (at, table.set);
        table.pending.insert(key, waker);
    }

    /// The earliest pending deadline.
    pub fn next(&self) -> Option<Timestamp> {
        let table = self
            .table
            .lock()
            .expect("the timer table is never poisoned");
        table.pending.keys().next().map(|(at, _)| *at)
    }

    /// How many timers are pending (a timer whose future went away stays
    /// until its deadline: waking it is harmless).
    pub fn pending(&self) -> usize {
        self.table
            .lock()
            .expect("the timer table is never poisoned")
            .pending
            .len()
    }

    /// Wakes every timer due at the lab's time; returns how many.
    pub fn fire(&self) -> usize {
        let now = self.time.now();
        let due: Vec<Waker> = {
            let mut table = self
                .table
                .lock()
                .expect("the timer table is never poisoned");
            let later = table.pending.split_off(&(now, u64::MAX));
            std::mem::replace(&mut table.pending, later)
                .into_values()
                .collect()
        };
        let fired = due.len();
        // Woken with the table unlocked: a waker may set a timer.
        due.into_iter().for_each(Waker::wake);
        fired
    }
}

/// The handles' timer in the lab: [`Sleep`] on the lab's time.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::Sleep;
/// use tokenflight_lab::{LabSleep, Time, Timers};
///
/// let timers = Timers::new(Time::new());
/// let sleep = LabSleep::new(timers.clone());
/// let _future = sleep.sleep(Duration::from_millis(10));
/// assert_eq!(timers.pending(), 0, "a timer is set when it is first polled");
/// ```
#[derive(Debug, Clone)]
pub struct LabSleep {
    timers: Timers,
}

impl LabSleep {
    /// Sleeps on `timers`' time.
    pub fn new(timers: Timers) -> Self {
        LabSleep { timers }
    }
}

impl Sleep for LabSleep {
    fn sleep(&self, duration: Duration) -> SleepFuture {
        let deadline = self.timers.time.now() + duration;
        Box::pin(Until {
            timers: self.timers.clone(),
            deadline,
            waker: None,
        })
    }
}

/// Ends once the lab's time reaches `deadline`.
struct Until {
    timers: Timers,
    deadline: Timestamp,
    /// The waker set in the table, so that polling again does not add
    /// another.
    waker: Option<Waker>,
}

impl Future for Until {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.timers.time.now() >= self.deadline {
            return Poll::Ready(());
        }
        let this = self.get_mut();
        if !this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            this.waker = Some(cx.waker().clone());
            this.timers.wake_at(this.deadline, cx.waker().clone());
        }
        Poll::Pending
    }
}
