//! What both builders collect before a handle exists, and the board they
//! make from it: one place for the choices the two handles share.

#[cfg(feature = "observe")]
use std::sync::Arc;

use super::board::Board;
use super::clock::Clock;
use super::error::BuildError;
#[cfg(feature = "observe")]
use super::observe::{Observer, Report};
use crate::Config;

/// The settings both builders take the same way.
#[derive(Default)]
pub(crate) struct Setup {
    pub(crate) config: Config,
    pub(crate) clock: Option<Clock>,
    #[cfg(feature = "observe")]
    pub(crate) observer: Option<Report>,
    #[cfg(feature = "mutants")]
    pub(crate) core_mutant: Option<crate::core::Mutant>,
}

/// What a builder builds its handle's shared state from.
pub(crate) struct Made<T, E, W> {
    pub(crate) board: Board<T, E, W>,
    pub(crate) clock: Clock,
    #[cfg(feature = "observe")]
    pub(crate) observer: Option<Arc<Observer>>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Setup {
    /// The board these settings describe, on the system clock unless one
    /// was chosen, with its observer and planted core bug if any.
    pub(crate) fn make<T, E, W>(self) -> Result<Made<T, E, W>, BuildError> {
        let clock = self.clock.unwrap_or_else(Clock::system);
        #[allow(unused_mut)]
        let mut board = Board::new(self.config, clock.clone())?;
        #[cfg(feature = "mutants")]
        if let Some(mutant) = self.core_mutant {
            board.core.plant(mutant);
        }
        #[cfg(feature = "observe")]
        let observer = self.observer.map(|report| {
            let observer = Arc::new(Observer::new(report, clock.clone()));
            board.observe(Arc::clone(&observer));
            observer
        });
        Ok(Made {
            board,
            clock,
            #[cfg(feature = "observe")]
            observer,
        })
    }
}
