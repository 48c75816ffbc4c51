//! The blocking handle's own thread for the refresher, and the step that
//! hands it the calls the core starts.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use super::{Shared, State};
use crate::front::{self, Driving, Fault, Refresh};
use crate::sync;
use crate::{Fresh, RefreshError, RefreshId, Timestamp};

/// What a step leaves to do once the lock is released.
#[must_use]
pub(super) struct After {
    notes: Vec<front::log::Note>,
}

impl After {
    pub(super) fn run<T, E>(self, shared: &Shared<T, E>) {
        // Reported before the waiters are told, so that a request's events
        // are out when it returns.
        #[cfg(feature = "observe")]
        if let Some(observer) = &shared.observer {
            observer.emit();
        }
        front::log::emit(self.notes);
        // Every step may concern a waiter.
        shared.changed.notify_all();
    }
}

/// A call for the handle's thread to make: the attempt, and the `tracing`
/// dispatcher of the thread that asked for it, so that its events go where
/// that thread's go.
struct Call {
    attempt: RefreshId,
    dispatch: tracing::Dispatch,
}

/// The handle's own thread for the refresher: it makes one call at a time,
/// so the token endpoint never sees two of this handle's at once (S1), and
/// no request ever runs the refresher (a request that finds a usable token
/// never waits for a refresh ahead of expiry). It ends when the handle goes.
pub(super) struct Worker(sync::Sender<Call>);

impl Worker {
    fn start<T, E>(shared: std::sync::Weak<Shared<T, E>>) -> Self
    where
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        let (tx, rx) = sync::channel::<Call>();
        sync::spawn_thread("tokenflight-refresh", move || {
            while let Some(call) = rx.recv() {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                tracing::dispatcher::with_default(&call.dispatch, || {
                    shared.make_call(call.attempt);
                });
            }
        });
        Worker(tx)
    }

    fn send(&self, call: Call) {
        self.0.send(call);
    }
}

impl<T, E> Shared<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// Settles the board after an input, under the lock; what it leaves to
    /// do is carried out once the lock is released.
    pub(super) fn settle(self: &Arc<Self>, state: &mut State<T, E>, now: Timestamp) -> After {
        let settled = state
            .board
            .settle(now, &mut front::store_changed(&self.snapshot));
        // The driving contract: a call the core starts is made now, on the
        // handle's own thread, whether anyone waits for it or not.
        if let Some(attempt) = state.board.core.outstanding_call() {
            if state.sent != Some(attempt) {
                state.sent = Some(attempt);
                let call = Call {
                    attempt,
                    dispatch: tracing::dispatcher::get_default(Clone::clone),
                };
                let worker = state
                    .worker
                    .get_or_insert_with(|| Worker::start(Arc::downgrade(self)));
                worker.send(call);
            }
        }
        After {
            notes: settled.notes,
        }
    }

    /// Makes the call `attempt` on the handle's thread, if the core still
    /// wants it (a call the core abandoned before this thread got to it is
    /// never made), and reports its answer.
    fn make_call(self: &Arc<Self>, attempt: RefreshId) {
        let context = {
            let mut state = self.state.lock();
            if state.board.core.outstanding_call() != Some(attempt) {
                return;
            }
            // A login (or a timeout) superseded the attempt before this
            // thread got to it: the call would ask for a token no one
            // needs, and its answer would be thrown away. It is never made.
            if state.board.core.in_flight() != Some(attempt) {
                state.board.unmade(attempt);
                let now = state.board.core.now();
                let after = self.settle(&mut state, now);
                drop(state);
                after.run(self);
                return;
            }
            // Decided here, under the lock: observed started in the order
            // of the core's decisions.
            #[cfg(feature = "observe")]
            let decided = self
                .observer
                .as_ref()
                .map(|o| o.call_decided(state.board.core.now(), attempt));
            #[cfg(not(feature = "observe"))]
            let decided = None::<()>;
            (state.board.refresh_context(), decided)
        };
        let (context, decided) = context;
        let result = self.run_refresher(decided, context);
        let now = self.clock.now();
        let mut state = self.state.lock();
        state.board.refreshed(now, attempt, result);
        let after = self.settle(&mut state, now);
        drop(state);
        after.run(self);
    }

    /// Runs the refresher outside the lock. A panic is caught and becomes a
    /// transient [`Fault::Panicked`]: it is retried like any transient
    /// failure, and when the retries run out every waiter gets the error.
    fn run_refresher(
        &self,
        #[cfg(feature = "observe")] call: Option<front::observe::CallGuard>,
        #[cfg(not(feature = "observe"))] call: Option<()>,
        context: Refresh<T>,
    ) -> Result<Fresh<T>, RefreshError<Fault<E>>> {
        let _driving = Driving::enter(std::ptr::from_ref(self) as usize);
        #[cfg(not(feature = "observe"))]
        let _ = call;
        let result = panic::catch_unwind(AssertUnwindSafe(|| (self.refresher)(context)));
        // A call that panicked ended without an answer: its guard reports
        // it dropped.
        #[cfg(feature = "observe")]
        if let (Some(call), Ok(answer)) = (call, &result) {
            call.end(answer.is_ok());
        }
        match result {
            Ok(result) => result.map_err(front::lift),
            Err(payload) => Err(RefreshError::Transient(Fault::Panicked(
                front::panic_message(&*payload),
            ))),
        }
    }
}
