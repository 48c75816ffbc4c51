//! The simulated token endpoint as the real handle's refresher: each call
//! the handle makes becomes a call at the world's server, and its future
//! ends when the world answers it. The books count a call from the moment
//! the refresher is called until its future completes or is dropped, as S1
//! does, whatever the handle itself reports.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokenflight::{Fresh, Refresh, RefreshError};

use crate::flight::{SimError, Tok};

/// What a refresher call ends with.
pub(crate) type Answer = Result<Fresh<Tok>, RefreshError<SimError>>;

/// A call of the handle's refresher, by the order it was made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Slot(u64);

/// What the endpoint saw since the driver last looked, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Note {
    /// The refresher was called with refresh token `rt` (`None`: the
    /// handle had no credential to present), to replace access token
    /// `replacing`.
    Made {
        slot: Slot,
        rt: Option<u64>,
        replacing: Option<Tok>,
    },
    /// The call's future was dropped before it returned: the handle gave
    /// the call up for good.
    Dropped { slot: Slot },
}

struct Live {
    answer: Option<Answer>,
    waker: Option<Waker>,
}

#[derive(Default)]
struct Books {
    live: BTreeMap<Slot, Live>,
    notes: Vec<Note>,
    made: u64,
    max_live: usize,
}

/// The refresher's side of the token endpoint, shared between the handle
/// (which calls it, on the lab's tasks) and the driver (which answers).
#[derive(Clone, Default)]
pub(crate) struct Endpoint(Arc<Mutex<Books>>);

impl Endpoint {
    /// The refresher to build the handle with: it presents the refresh
    /// credential the handle kept from the last token, as a real client does.
    pub(crate) fn refresher(&self) -> impl Fn(Refresh<Tok>) -> Call + Send + Sync + 'static {
        let endpoint = self.clone();
        move |refresh: Refresh<Tok>| {
            let rt = refresh.credential().and_then(|c| c.expose().parse().ok());
            endpoint.call(rt, refresh.current().copied())
        }
    }

    fn call(&self, rt: Option<u64>, replacing: Option<Tok>) -> Call {
        let mut books = self.lock();
        books.made += 1;
        let slot = Slot(books.made);
        books.live.insert(
            slot,
            Live {
                answer: None,
                waker: None,
            },
        );
        books.max_live = books.max_live.max(books.live.len());
        books.notes.push(Note::Made {
            slot,
            rt,
            replacing,
        });
        Call {
            slot,
            endpoint: self.clone(),
            done: false,
        }
    }

    /// What happened since the last look.
    pub(crate) fn take_notes(&self) -> Vec<Note> {
        std::mem::take(&mut self.lock().notes)
    }

    /// Whether anything happened since the last look.
    pub(crate) fn has_notes(&self) -> bool {
        !self.lock().notes.is_empty()
    }

    /// Answers call `slot`; returns whether its future was still there to
    /// take the answer.
    pub(crate) fn answer(&self, slot: Slot, answer: Answer) -> bool {
        let waker = {
            let mut books = self.lock();
            let Some(live) = books.live.get_mut(&slot) else {
                return false;
            };
            live.answer = Some(answer);
            live.waker.take()
        };
        // Woken unlocked: the waker may run the handle's code at once.
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// The most calls outstanding at once: more than one breaks S1 at the
    /// endpoint.
    pub(crate) fn max_live(&self) -> usize {
        self.lock().max_live
    }

    fn lock(&self) -> MutexGuard<'_, Books> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One refresher call's future: ends with the world's answer.
pub(crate) struct Call {
    slot: Slot,
    endpoint: Endpoint,
    done: bool,
}

impl Future for Call {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        let this = self.get_mut();
        let mut books = this.endpoint.lock();
        let Some(live) = books.live.get_mut(&this.slot) else {
            unreachable!("a call is live until its future returns or goes");
        };
        match live.answer.take() {
            Some(answer) => {
                books.live.remove(&this.slot);
                this.done = true;
                Poll::Ready(answer)
            }
            None => {
                live.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut books = self.endpoint.lock();
        if books.live.remove(&self.slot).is_some() {
            let slot = self.slot;
            books.notes.push(Note::Dropped { slot });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenflight::Clock;

    #[test]
    fn a_call_counts_from_the_call_until_its_future_returns_or_goes() {
        let endpoint = Endpoint::default();
        let refresher = endpoint.refresher();
        let first = refresher(Refresh::new(Clock::manual(|| tokenflight::Timestamp::ZERO)));
        let second = refresher(Refresh::new(Clock::manual(|| tokenflight::Timestamp::ZERO)));
        assert_eq!(endpoint.max_live(), 2);
        drop(first);
        let notes = endpoint.take_notes();
        assert_eq!(notes.len(), 3);
        assert!(matches!(
            notes[0],
            Note::Made {
                rt: None,
                replacing: None,
                ..
            }
        ));
        assert!(matches!(notes[2], Note::Dropped { slot: Slot(1) }));
        assert!(!endpoint.answer(Slot(1), Ok(Fresh::new(1))), "gone");
        assert!(endpoint.answer(Slot(2), Ok(Fresh::new(2))));
        let answer = futures_lite_block_on(second);
        assert_eq!(answer.map(|f| *f.token()), Ok(2));
        assert!(!endpoint.has_notes(), "a call that returned is no drop");
    }

    /// Polls a future that is already ready.
    fn futures_lite_block_on<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let waker = Waker::noop();
        match f.as_mut().poll(&mut Context::from_waker(waker)) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("not ready"),
        }
    }
}
