//! A queue from a handle to its own thread, on this module's mutex and
//! condition variable: loom checks it with the rest (its own channel does
//! not model a sender that goes away), and the thread learns that the
//! handle is gone when the sender is dropped.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Condvar, Mutex};

struct Queue<T> {
    items: Mutex<(VecDeque<T>, bool)>,
    changed: Condvar,
}

/// The one sending end; dropping it ends the receiver's wait.
pub(crate) struct Sender<T>(Arc<Queue<T>>);

/// The receiving end.
pub(crate) struct Receiver<T>(Arc<Queue<T>>);

pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let queue = Arc::new(Queue {
        items: Mutex::new((VecDeque::new(), false)),
        changed: Condvar::new(),
    });
    (Sender(Arc::clone(&queue)), Receiver(queue))
}

impl<T> Sender<T> {
    pub(crate) fn send(&self, item: T) {
        self.0.items.lock().0.push_back(item);
        self.0.changed.notify_all();
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.items.lock().1 = true;
        self.0.changed.notify_all();
    }
}

impl<T> Receiver<T> {
    /// The next item, waiting for one; `None` once the sender is gone and
    /// every item sent before has been taken.
    pub(crate) fn recv(&self) -> Option<T> {
        let mut items = self.0.items.lock();
        loop {
            if let Some(item) = items.0.pop_front() {
                return Some(item);
            }
            if items.1 {
                return None;
            }
            items = self.0.changed.wait(items);
        }
    }
}
