//! A deterministic lab for driving tokenflight's real handles.
//!
//! Everything in the lab runs on one thread, in an order fixed by what the
//! driver does: the same calls replay the same run, to the event. It has
//!
//! - virtual time ([`Time`]): the handle's [`Clock`](tokenflight::Clock),
//!   moved only by the driver;
//! - a virtual timer ([`LabSleep`] over [`Timers`]): the handle's
//!   [`Sleep`](tokenflight::Sleep), whose futures end when the lab's time
//!   passes their deadline;
//! - a single-threaded executor ([`Executor`]) for the requests, and a
//!   spawner ([`LabSpawn`]) that puts the handle's driver tasks on it;
//! - a scripted refresher ([`Script`]) whose calls the driver answers (a
//!   token, a transient or a permanent error, now or at a chosen time) or
//!   leaves hanging, counting the calls outstanding at the endpoint itself;
//! - the handle's own history ([`History`]), as its observer reports it,
//!   judged by [`check::Monitor`](tokenflight::check::Monitor).
//!
//! [`Lab`] bundles the first three and walks time earliest deadline first;
//! [`drive`] runs the async handle through random steps ([`Op`]) in it,
//! judged after every step and, once healed, for L1.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tokenflight::{Config, Fresh, Handle, RefreshError};
//! use tokenflight_lab::{History, Lab, Script};
//!
//! let mut lab = Lab::new();
//! let config = Config::default()
//!     .with_refresh_timeout(Duration::from_secs(1))
//!     .with_max_refresh_attempts(1);
//! let script: Script<u32, ()> = Script::new(lab.timers());
//! let history = History::new(&config);
//! let handle = Handle::builder(script.refresher())
//!     .config(config)
//!     .clock(lab.clock())
//!     .sleep(lab.sleep())
//!     .spawner(lab.spawner())
//!     .observe(history.observer())
//!     .build()
//!     .unwrap();
//!
//! let h = handle.clone();
//! let first = lab.spawn(async move { h.ticket().await.map(|t| *t.token()) });
//! lab.run();
//! // The endpoint does not answer in time: the request times out, and
//! // the handle keeps the call for its late answer.
//! lab.advance(Duration::from_secs(2));
//! assert!(matches!(first.take(), Some(Err(_))));
//! assert_eq!(script.live(), 1, "still outstanding at the endpoint");
//! let late = script.pending()[0].id;
//! script.answer(late, Ok(Fresh::new(7)));
//! lab.run();
//! assert_eq!(script.max_live(), 1);
//! assert_eq!(history.finish(), vec![]);
//! ```

pub mod drive;
mod executor;
mod history;
mod lab;
mod ops;
mod script;
mod spawn;
mod time;
mod timer;

pub use drive::{Drive, Failure, Setup};
pub use executor::{Executor, Joined, TaskId, MAX_POLLS_PER_RUN};
pub use history::History;
pub use lab::Lab;
pub use ops::{Lifetime, Op, Reply, Rng};
pub use script::{Answer, Call, CallId, Pending, Script};
pub use spawn::LabSpawn;
pub use time::Time;
pub use timer::{LabSleep, Timers};
