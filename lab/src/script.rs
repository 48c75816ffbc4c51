//! The scripted refresher: every call the handle makes waits for the
//! driver to answer it (a token, a transient or a permanent error, now or
//! at a chosen time) or to leave it hanging, and the lab counts the calls
//! outstanding at the endpoint with its own books.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokenflight::{Fresh, Generation, Refresh, RefreshError, Timestamp};

use crate::timer::Timers;

/// A call's number, in the order the handle made them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(pub u64);

/// What a call is answered.
pub type Answer<T, E> = Result<Fresh<T>, RefreshError<E>>;

/// A call the handle made and the driver has not seen end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// The call.
    pub id: CallId,
    /// The generation it was told it replaces.
    pub replacing: Generation,
    /// When the handle made it.
    pub made_at: Timestamp,
    /// Whether the driver has answered it (its answer may wait for its
    /// time, or for the handle to poll it).
    pub answered: bool,
}

struct Slot<T, E> {
    call: Call,
    /// The answer, and from when the call may return it.
    answer: Option<(Answer<T, E>, Timestamp)>,
    waker: Option<Waker>,
}

struct Books<T, E> {
    /// Calls made whose future has not completed nor been dropped.
    live: BTreeMap<CallId, Slot<T, E>>,
    made: u64,
    completed: u64,
    dropped: u64,
    /// The most calls ever live at once (S1 counts at most one).
    max_live: usize,
    /// Each call dropped unanswered: when it was made, and dropped.
    drops: Vec<(CallId, Timestamp, Timestamp)>,
}

/// A refresher the driver answers by hand, with its own count of the calls
/// outstanding at the endpoint: from the moment the refresher is called
/// until its future completes or is dropped (S1, independent of what the
/// handle reports).
///
/// # Examples
///
/// ```
/// use tokenflight::{Fresh, Handle};
/// use tokenflight_lab::{Lab, Script};
///
/// let mut lab = Lab::new();
/// let script: Script<u32, ()> = Script::new(lab.timers());
/// let handle = Handle::builder(script.refresher())
///     .clock(lab.clock())
///     .sleep(lab.sleep())
///     .without_spawner()
///     .build()
///     .unwrap();
/// let h = handle.clone();
/// let ticket = lab.spawn(async move { h.ticket().await.map(|t| *t.token()) });
/// lab.run();
/// let call = script.pending()[0].id;
/// script.answer(call, Ok(Fresh::new(7)));
/// lab.run();
/// assert_eq!(ticket.take(), Some(Ok(7)));
/// assert_eq!((script.made(), script.max_live()), (1, 1));
/// ```
pub struct Script<T, E> {
    books: Arc<Mutex<Books<T, E>>>,
    timers: Timers,
}

impl<T, E> Clone for Script<T, E> {
    fn clone(&self) -> Self {
        Script {
            books: Arc::clone(&self.books),
            timers: self.timers.clone(),
        }
    }
}

impl<T, E> std::fmt::Debug for Script<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let books = self.lock();
        f.debug_struct("Script")
            .field("live", &books.live.len())
            .field("made", &books.made)
            .field("max_live", &books.max_live)
            .finish_non_exhaustive()
    }
}

impl<T, E> Script<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// A refresher whose timed answers come on `timers`' time.
    pub fn new(timers: Timers) -> Self {
        Script {
            books: Arc::new(Mutex::new(Books {
                live: BTreeMap::new(),
                made: 0,
                completed: 0,
                dropped: 0,
                max_live: 0,
                drops: Vec::new(),
            })),
            timers,
        }
    }

    /// The refresher to build a handle with.
    pub fn refresher(&self) -> impl Fn(Refresh<T>) -> Pending<T, E> + Send + Sync + 'static {
        let script = self.clone();
        move |refresh: Refresh<T>| script.call(refresh.generation())
    }

    fn call(&self, replacing: Generation) -> Pending<T, E> {
        let mut books = self.lock();
        books.made += 1;
        let id = CallId(books.made);
        let call = Call {
            id,
            replacing,
            made_at: self.timers.time().now(),
            answered: false,
        };
        books.live.insert(
            id,
            Slot {
                call,
                answer: None,
                waker: None,
            },
        );
        books.max_live = books.max_live.max(books.live.len());
        Pending {
            id,
            script: self.clone(),
            done: false,
        }
    }

    /// The calls live now (made, not completed nor dropped), oldest first.
    pub fn pending(&self) -> Vec<Call> {
        self.lock().live.values().map(|s| s.call).collect()
    }

    /// Answers call `id` now; returns whether it was still live.
    pub fn answer(&self, id: CallId, answer: Answer<T, E>) -> bool {
        self.answer_at(id, self.timers.time().now(), answer)
    }

    /// Answers call `id`, returning once the lab's time reaches `at` (a
    /// slow endpoint); returns whether it was still live and unanswered.
    pub fn answer_at(&self, id: CallId, at: Timestamp, answer: Answer<T, E>) -> bool {
        let waker = {
            let mut books = self.lock();
            let Some(slot) = books.live.get_mut(&id).filter(|s| s.answer.is_none()) else {
                return false;
            };
            slot.call.answered = true;
            slot.answer = Some((answer, at));
            slot.waker.take()
        };
        // Woken with the books unlocked: the waker may poll at once.
        if let Some(waker) = waker {
            if at <= self.timers.time().now() {
                waker.wake();
            } else {
                self.timers.wake_at(at, waker);
            }
        }
        true
    }

    /// Calls made so far.
    pub fn made(&self) -> u64 {
        self.lock().made
    }

    /// Calls whose future returned an answer.
    pub fn completed(&self) -> u64 {
        self.lock().completed
    }

    /// Calls whose future was dropped before it returned.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Each call whose future was dropped unanswered: which, when it was
    /// made, when it was dropped.
    pub fn drops(&self) -> Vec<(CallId, Timestamp, Timestamp)> {
        self.lock().drops.clone()
    }

    /// Calls live now.
    pub fn live(&self) -> usize {
        self.lock().live.len()
    }

    /// The most calls live at once so far: more than one breaks S1 at the
    /// endpoint, whatever the handle reports.
    pub fn max_live(&self) -> usize {
        self.lock().max_live
    }
}

impl<T, E> Script<T, E> {
    fn lock(&self) -> MutexGuard<'_, Books<T, E>> {
        self.books
            .lock()
            .expect("the script's books are never poisoned")
    }
}

/// One call's future: returns the driver's answer once given and due.
pub struct Pending<T, E> {
    id: CallId,
    script: Script<T, E>,
    /// It returned its answer.
    done: bool,
}

impl<T, E> std::fmt::Debug for Pending<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("id", &self.id).finish()
    }
}

impl<T, E> Future for Pending<T, E> {
    type Output = Answer<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let now = this.script.timers.time().now();
        let mut books = this.script.lock();
        let slot = books
            .live
            .get_mut(&this.id)
            .expect("a call is live until its future returns or goes");
        match slot.answer.take() {
            Some((answer, at)) if at <= now => {
                books.live.remove(&this.id);
                books.completed += 1;
                this.done = true;
                Poll::Ready(answer)
            }
            Some((answer, at)) => {
                slot.answer = Some((answer, at));
                drop(books);
                this.script.timers.wake_at(at, cx.waker().clone());
                Poll::Pending
            }
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T, E> Drop for Pending<T, E> {
    /// The call is over without an answer: the endpoint stops counting it.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let now = self.script.timers.time().now();
        let mut books = self.script.lock();
        if let Some(slot) = books.live.remove(&self.id) {
            books.dropped += 1;
            books.drops.push((self.id, slot.call.made_at, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Lab;

    #[test]
    fn the_books_count_calls_from_the_call_to_the_end_of_their_future() {
        let mut lab = Lab::new();
        let script: Script<u32, ()> = Script::new(lab.timers());
        let refresher = script.refresher();
        let first = refresher(Refresh::new(lab.clock()));
        let second = refresher(Refresh::new(lab.clock()));
        assert_eq!((script.live(), script.max_live()), (2, 2));
        drop(first);
        assert_eq!((script.live(), script.dropped()), (1, 1));
        let id = script.pending()[0].id;
        let at = lab.now() + Duration::from_millis(10);
        assert!(script.answer_at(id, at, Ok(Fresh::new(1))));
        assert!(!script.answer(id, Ok(Fresh::new(2))), "answered once");
        let answer = lab.spawn(second);
        lab.run();
        assert!(answer.take().is_none(), "not before its time");
        lab.advance(Duration::from_millis(10));
        assert_eq!(answer.take().map(|a| *a.unwrap().token()), Some(1));
        assert_eq!((script.live(), script.completed()), (0, 1));
    }
}
