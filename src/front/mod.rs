//! What the async and the blocking handle share: the types their users see
//! ([`Ticket`], [`Reply`], [`Fault`], [`Clock`]), the [`Board`](board::Board)
//! both keep under their one lock, and the events they report
//! ([`log`]).

pub(crate) mod board;
mod clock;
mod error;
pub(crate) mod log;
#[cfg(feature = "observe")]
pub(crate) mod observe;
mod refresh;
mod setup;
mod status;
mod ticket;
#[cfg(feature = "observe")]
mod watch;

pub use clock::Clock;
pub use error::{BuildError, Fault, HandleError};
pub use refresh::Refresh;
pub use status::Status;
pub use ticket::{Reply, Ticket};

pub(crate) use board::{fast_ticket, store_changed, Asked, Board, Place, Published, Seat};
pub(crate) use error::{lift, reentrant};
pub(crate) use setup::Setup;

use crate::sync::DRIVING;
use crate::Config;

/// Marks the current thread as running the refresher of the handle at
/// `key` for as long as it lives.
///
/// Guards L1 against a refresher that calls back into its own handle: such
/// a request would wait for the refresh that waits for it. While the mark is
/// up, a request of that handle that would wait fails at once instead. The
/// mark comes down on drop, also when the refresher panics, so a later,
/// unrelated request on this thread is never failed by mistake.
pub(crate) struct Driving(usize);

impl Driving {
    pub(crate) fn enter(key: usize) -> Self {
        DRIVING.with(|d| d.borrow_mut().push(key));
        Driving(key)
    }

    /// Whether this thread is running the refresher of the handle at `key`.
    pub(crate) fn is_active(key: usize) -> bool {
        DRIVING.with(|d| d.borrow().contains(&key))
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        DRIVING.with(|d| {
            let mut d = d.borrow_mut();
            if let Some(i) = d.iter().rposition(|k| *k == self.0) {
                d.remove(i);
            }
        });
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

/// Whether `config` backs off between attempts, which needs a timer.
pub(crate) fn needs_timer(config: &Config) -> bool {
    // The back-off doubles from `backoff_initial`: zero stays zero.
    !config.backoff_initial.is_zero()
}

/// A seed from the OS's entropy (std's `RandomState` draws its keys from
/// it), for a handle whose user fixed none. Under loom every execution must
/// replay the same, so the seed is fixed there.
pub(crate) fn entropy_seed() -> u64 {
    #[cfg(tokenflight_loom)]
    return 1;
    #[cfg(not(tokenflight_loom))]
    {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x746f_6b65_6e66_6c74);
        // Zero means "draw one"; never hand it back.
        hasher.finish().max(1)
    }
}
