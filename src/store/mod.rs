//! Stores: log in once, and one refresh across processes (feature `store`).
//!
//! A [`Store`] keeps one [`Record`] per credential [`Scope`]: the access
//! token, the rotating refresh credential that comes with it, its expiry
//! (wall-clock unix milliseconds, since processes share no `Instant`) and a
//! [`Generation`](crate::Generation) that counts the tokens the whole fleet
//! has seen. Every write is a compare-and-swap on that generation, so a
//! process that lost a race never overwrites or blanks a newer token.
//!
//! The store is a front-end concern: the core never sees it. It joins a
//! handle as a refresher combinator. [`Store::guard`] wraps the user's
//! refresher into a [`Guard`] whose refresher
//!
//! 1. takes the store's lease for the scope (waiters in other processes
//!    watch the store's generation meanwhile, and take over when the lease
//!    of a holder that died runs out),
//! 2. re-reads the store: a newer usable token than the one being replaced
//!    is returned without calling the user's refresher,
//! 3. otherwise calls the user's refresher with the stored credential,
//! 4. persists the new token with a compare-and-swap on the generation
//!    *before* returning it: the handle publishes only what the refresher
//!    returns, so every token is in the store before any request uses it,
//! 5. releases the lease.
//!
//! Within a process the handle's own single flight stays as it is: one
//! process's waiters never each take the lease.
//!
//! Two backends: [`FileStore`] (the embedded default, for CLIs and desktop
//! apps) and `RedisStore` (feature `redis`, for fleets on many machines).
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tokenflight::store::{FileStore, Renewal, Scope, Store};
//! use tokenflight::{Clock, Config, Fresh, Handle, RefreshError};
//!
//! let dir = std::env::temp_dir().join(format!("tf-doc-store-{}", std::process::id()));
//! let store = FileStore::open(&dir).unwrap();
//! let guard = store.guard(Scope::new("alice@example.com"), |clock: Clock, credential| async move {
//!     // Call the token endpoint with `credential` (the refresh token).
//!     assert_eq!(credential.unwrap().expose(), "refresh-1");
//!     let token = Fresh::new("access-2".to_string()).expiring_at(clock.after(Duration::from_secs(3600)));
//!     Ok::<_, RefreshError<std::io::Error>>(Renewal::new(token).rotating("refresh-2"))
//! });
//! let clock = Clock::system();
//! let handle = Handle::builder(guard.refresher())
//!     .config(Config::default())
//!     .clock(clock.clone())
//!     .build()
//!     .unwrap();
//!
//! // Log in once: the token is persisted, then installed.
//! let login = Fresh::new("access-1".to_string()).expiring_at(clock.after(Duration::from_secs(3600)));
//! handle.set_token(guard.login(&clock, login, Some("refresh-1".into())).unwrap());
//!
//! // A restart needs no login: the next process loads the same record.
//! assert!(guard.load(&clock).unwrap().is_some());
//! # std::fs::remove_dir_all(&dir).ok();
//! ```

mod backend;
mod changes;
mod error;
mod file;
mod guard;
mod record;
#[cfg(feature = "redis")]
mod redis;
mod wall;

#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
pub use backend::{LeaseGrant, Store, Swap};
pub use changes::{After, Changes};
pub use error::{GuardError, StoreError};
pub use file::FileStore;
pub use guard::{Guard, GuardOptions, Renewal};
pub use record::{MalformedRecord, Owner, Record, Scope, Secret, StoredToken};
pub use wall::UnixMillis;
