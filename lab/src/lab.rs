//! [`Lab`]: the time, the timers and the executor together, and the walk
//! through time, earliest deadline first.

use std::future::Future;
use std::time::Duration;

use tokenflight::{Clock, Timestamp};

use crate::executor::{Executor, Joined, TaskId};
use crate::spawn::LabSpawn;
use crate::time::Time;
use crate::timer::{LabSleep, Timers};

/// A lab: virtual time, its timers and a deterministic executor.
///
/// Time moves only in [`advance_to`](Lab::advance_to) (and
/// [`advance`](Lab::advance)), which fires the timers in deadline order and
/// runs what they wake before moving on, so that a later deadline never
/// fires before an earlier one's consequences.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokenflight::Sleep;
/// use tokenflight_lab::Lab;
///
/// let mut lab = Lab::new();
/// let sleep = lab.sleep();
/// let nap = lab.spawn(async move { sleep.sleep(Duration::from_millis(5)).await });
/// lab.run();
/// assert!(!nap.is_done());
/// lab.advance(Duration::from_millis(5));
/// assert!(nap.is_done());
/// ```
#[derive(Debug)]
pub struct Lab {
    time: Time,
    timers: Timers,
    executor: Executor,
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Lab {
    /// A lab at time zero, with nothing in it.
    pub fn new() -> Self {
        let time = Time::new();
        Lab {
            timers: Timers::new(time.clone()),
            time,
            executor: Executor::new(),
        }
    }

    /// The time now.
    pub fn now(&self) -> Timestamp {
        self.time.now()
    }

    /// The lab's time.
    pub fn time(&self) -> &Time {
        &self.time
    }

    /// A handle's clock on the lab's time.
    pub fn clock(&self) -> Clock {
        self.time.clock()
    }

    /// The lab's timers (for a [`Script`](crate::Script)'s timed answers).
    pub fn timers(&self) -> Timers {
        self.timers.clone()
    }

    /// A handle's timer on the lab's time.
    pub fn sleep(&self) -> LabSleep {
        LabSleep::new(self.timers.clone())
    }

    /// A handle's spawner onto the lab's executor.
    pub fn spawner(&self) -> LabSpawn {
        self.executor.spawner()
    }

    /// The executor.
    pub fn executor(&mut self) -> &mut Executor {
        &mut self.executor
    }

    /// Adds a task; it runs in the next [`run`](Lab::run).
    pub fn spawn<R: 'static>(&mut self, future: impl Future<Output = R> + 'static) -> Joined<R> {
        self.executor.spawn(future)
    }

    /// Drops task `id`'s future; returns whether it was still running.
    pub fn cancel(&mut self, id: TaskId) -> bool {
        self.executor.cancel(id)
    }

    /// Runs every task woken until none is; returns how many polls.
    pub fn run(&mut self) -> u64 {
        self.executor.run()
    }

    /// The earliest timer still pending.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.timers.next()
    }

    /// Moves time to `at`: each pending deadline up to it in turn (the time
    /// set to it, its timers fired, what they woke run), then `at` itself.
    ///
    /// # Panics
    ///
    /// If `at` is earlier than now.
    pub fn advance_to(&mut self, at: Timestamp) {
        assert!(at >= self.now(), "the lab's time only moves forward");
        self.run();
        while let Some(next) = self.timers.next().filter(|t| *t <= at) {
            if next > self.now() {
                self.time.set(next);
            }
            self.timers.fire();
            self.run();
        }
        self.time.set(at);
        self.timers.fire();
        self.run();
    }

    /// Moves time on by `duration` (see [`advance_to`](Lab::advance_to)).
    pub fn advance(&mut self, duration: Duration) {
        self.advance_to(self.now() + duration);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use tokenflight::Sleep;

    use super::*;

    #[test]
    fn deadlines_fire_in_order_and_what_they_wake_runs_before_the_next() {
        let mut lab = Lab::new();
        let log = Rc::new(RefCell::new(Vec::new()));
        for (name, ms) in [("late", 30), ("early", 10)] {
            let (sleep, log, time) = (lab.sleep(), Rc::clone(&log), lab.time().clone());
            lab.spawn(async move {
                sleep.sleep(Duration::from_millis(ms)).await;
                log.borrow_mut().push((name, time.now()));
                // A timer set by what a deadline woke, due before the next.
                sleep.sleep(Duration::from_millis(5)).await;
                log.borrow_mut().push((name, time.now()));
            });
        }
        lab.advance(Duration::from_millis(100));
        let ms = Timestamp::from_millis;
        assert_eq!(
            *log.borrow(),
            [
                ("early", ms(10)),
                ("early", ms(15)),
                ("late", ms(30)),
                ("late", ms(35))
            ]
        );
        assert_eq!(lab.now(), ms(100));
        assert_eq!(lab.next_deadline(), None);
    }

    #[test]
    #[should_panic(expected = "only moves forward")]
    fn time_never_goes_back() {
        let mut lab = Lab::new();
        lab.advance(Duration::from_millis(2));
        lab.advance_to(Timestamp::from_millis(1));
    }
}
