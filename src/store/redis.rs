//! The Redis store: for fleets on many machines (feature `redis`).
//!
//! Per scope, under a key prefix: a hash `PREFIX{scope}:record` with the
//! generation (`gen`) beside the record's JSON (`json`), a lease key
//! `PREFIX{scope}:lease` holding its owner's tag, and a channel
//! `PREFIX{scope}:changes`. The lease is `SET NX PX` and is released by a
//! compare-and-delete script, so a holder whose lease ran out cannot free
//! its successor's. The generation compare-and-swap is one script on the
//! server: read, compare, write and announce are atomic.
//!
//! Waiters hear of changes on the channel (one subscriber thread per
//! store) and poll as well, so a lost subscription (Redis restarting) only
//! costs latency. Every call has connect, read and write timeouts: a Redis
//! that is down gives [`StoreError::Redis`] quickly, never a hang; the
//! guard turns it into a transient refresh failure (the handle backs off),
//! and makes no refresh without the store.
//!
//! Redis must persist (`appendonly yes`, `appendfsync always`) for a
//! restart to keep the credential; a Redis that comes back empty is
//! re-seeded by the next holder from the record it remembers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use redis::{Client, Connection, RedisError, Script};

use super::{Changes, LeaseGrant, Owner, Record, Scope, Store, StoreError, Swap, UnixMillis};
use crate::Generation;

const SWAP: &str = r"
local current = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
local expected, new = tonumber(ARGV[1]), tonumber(ARGV[2])
if current ~= expected or new <= current then
  return current
end
redis.call('HSET', KEYS[1], 'gen', ARGV[2], 'json', ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return -1
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[2], 'released')
  return 1
end
return 0
";

/// A store on a Redis server.
///
/// # Examples
///
/// ```no_run
/// use tokenflight::store::{RedisStore, Scope, Store};
///
/// let store = RedisStore::open("redis://127.0.0.1:6379/").unwrap();
/// let record = store.load(&Scope::new("svc")).unwrap();
/// # drop(record);
/// ```
#[derive(Debug, Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

struct Shared {
    client: Client,
    prefix: String,
    timeout: Duration,
    poll: Duration,
    connection: Mutex<Option<Connection>>,
    swap: Script,
    release: Script,
    watched: Mutex<HashMap<String, Changes>>,
    subscriber: Mutex<Option<Arc<AtomicBool>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: not printed.
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(stop) = self.subscriber.get_mut().take() {
            stop.store(true, Ordering::SeqCst);
        }
    }
}

fn redis_err(op: &'static str) -> impl FnOnce(RedisError) -> StoreError {
    move |source| StoreError::Redis { op, source }
}

impl RedisStore {
    /// A store on the server at `url` (`redis://host:port/db`), keys under
    /// `tokenflight:`, 500 ms timeouts. Connects on first use.
    ///
    /// # Errors
    ///
    /// [`StoreError::Redis`] for a malformed URL.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let client = Client::open(url).map_err(redis_err("parse the url"))?;
        Ok(RedisStore {
            shared: Arc::new(Shared {
                client,
                prefix: "tokenflight:".to_string(),
                timeout: Duration::from_millis(500),
                poll: Duration::from_millis(10),
                connection: Mutex::new(None),
                swap: Script::new(SWAP),
                release: Script::new(RELEASE),
                watched: Mutex::new(HashMap::new()),
                subscriber: Mutex::new(None),
            }),
        })
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::get_mut(&mut self.shared).expect("configure a store before cloning it")
    }

    /// The same store with keys under `prefix`.
    ///
    /// # Panics
    ///
    /// If the store was cloned already.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.shared_mut().prefix = prefix.into();
        self
    }

    /// The same store with `timeout` for connecting, reading and writing.
    ///
    /// # Panics
    ///
    /// If the store was cloned already.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.shared_mut().timeout = timeout;
        self
    }

    /// The same store, with waiters polling every `poll` besides listening.
    ///
    /// # Panics
    ///
    /// If the store was cloned already.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.shared_mut().poll = poll;
        self
    }

    fn key(&self, scope: &Scope, what: &str) -> String {
        format!("{}{}:{what}", self.shared.prefix, scope.escaped())
    }

    /// Runs `f` on the store's connection, connecting first if needed; a
    /// failed call drops the connection, so the next one reconnects.
    fn with<R>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<R>,
    ) -> Result<R, StoreError> {
        let shared = &*self.shared;
        let mut slot = shared.connection.lock();
        if slot.is_none() {
            *slot = Some(connect(&shared.client, shared.timeout).map_err(redis_err("connect"))?);
        }
        let connection = slot.as_mut().expect("connected just above");
        let result = f(connection);
        if result.is_err() {
            *slot = None;
        }
        result.map_err(redis_err(op))
    }

    /// Starts the subscriber thread once per store.
    fn subscribe(&self) {
        let mut running = self.shared.subscriber.lock();
        if running.is_some() {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        *running = Some(Arc::clone(&stop));
        let shared = Arc::downgrade(&self.shared);
        let pattern = format!("{}*:changes", self.shared.prefix);
        let spawned = std::thread::Builder::new()
            .name("tokenflight-redis-changes".into())
            .spawn(move || listen(shared, &pattern, &stop));
        if let Err(e) = spawned {
            // Waiters still poll: only slower.
            tracing::warn!(error = %e, "redis store: no subscriber thread");
        }
    }
}

fn connect(client: &Client, timeout: Duration) -> redis::RedisResult<Connection> {
    let connection = client.get_connection_with_timeout(timeout)?;
    connection.set_read_timeout(Some(timeout))?;
    connection.set_write_timeout(Some(timeout))?;
    Ok(connection)
}

/// The subscriber thread: announces every message on a scope's channel to
/// that scope's waiters; reconnects after an error; ends once the store is
/// dropped (within one read timeout).
fn listen(shared: Weak<Shared>, pattern: &str, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let Some(client) = shared.upgrade().map(|s| (s.client.clone(), s.timeout)) else {
            return;
        };
        let session = (|| -> redis::RedisResult<()> {
            let mut connection = connect(&client.0, client.1)?;
            let mut pubsub = connection.as_pubsub();
            pubsub.psubscribe(pattern)?;
            pubsub.set_read_timeout(Some(Duration::from_millis(250)))?;
            // Anything may have changed while we were not listening.
            notify_all(&shared);
            while !stop.load(Ordering::SeqCst) {
                match pubsub.get_message() {
                    Ok(message) => {
                        let channel = message.get_channel_name();
                        if let Some(shared) = shared.upgrade() {
                            let watched = shared.watched.lock();
                            if let Some(changes) = watched.get(channel) {
                                changes.notify();
                            }
                        }
                    }
                    Err(e) if e.is_timeout() => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })();
        if session.is_err() {
            notify_all(&shared);
            pause(Duration::from_millis(50));
        }
    }
}

fn notify_all(shared: &Weak<Shared>) {
    if let Some(shared) = shared.upgrade() {
        for changes in shared.watched.lock().values() {
            changes.notify();
        }
    }
}

// The subscriber thread's back-off between reconnects.
#[allow(clippy::disallowed_methods)]
fn pause(d: Duration) {
    std::thread::sleep(d);
}

impl Store for RedisStore {
    fn load(&self, scope: &Scope) -> Result<Option<Record>, StoreError> {
        let key = self.key(scope, "record");
        let json: Option<String> = self.with("read the record", |c| {
            redis::cmd("HGET").arg(&key).arg("json").query(c)
        })?;
        json.map(|json| {
            Record::from_json(&json).map_err(|source| StoreError::Unreadable {
                scope: scope.as_str().to_string(),
                source,
            })
        })
        .transpose()
    }

    fn swap(
        &self,
        scope: &Scope,
        expected: Generation,
        record: &Record,
    ) -> Result<Swap, StoreError> {
        let (key, channel) = (self.key(scope, "record"), self.key(scope, "changes"));
        let answer: i64 = self.with("swap the record", |c| {
            self.shared
                .swap
                .key(&key)
                .key(&channel)
                .arg(expected.0)
                .arg(record.generation().0)
                .arg(record.to_json())
                .invoke(c)
        })?;
        Ok(match u64::try_from(answer) {
            Ok(current) => Swap::Conflict {
                current: Generation(current),
            },
            Err(_) => Swap::Done,
        })
    }

    fn try_lease(
        &self,
        scope: &Scope,
        owner: &Owner,
        ttl: Duration,
    ) -> Result<Option<LeaseGrant>, StoreError> {
        let key = self.key(scope, "lease");
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let now = UnixMillis::now();
        let set: Option<String> = self.with("take the lease", |c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(owner.as_str())
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query(c)
        })?;
        Ok(set.map(|_| LeaseGrant {
            until: now.saturating_add(ttl),
        }))
    }

    fn release(&self, scope: &Scope, owner: &Owner) -> Result<bool, StoreError> {
        let (key, channel) = (self.key(scope, "lease"), self.key(scope, "changes"));
        let released: i64 = self.with("release the lease", |c| {
            self.shared
                .release
                .key(&key)
                .key(&channel)
                .arg(owner.as_str())
                .invoke(c)
        })?;
        Ok(released == 1)
    }

    fn changes(&self, scope: &Scope) -> Option<Changes> {
        let channel = self.key(scope, "changes");
        let changes = self
            .shared
            .watched
            .lock()
            .entry(channel)
            .or_default()
            .clone();
        self.subscribe();
        Some(changes)
    }

    fn poll_interval(&self) -> Duration {
        self.shared.poll
    }
}
