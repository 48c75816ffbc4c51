//! The file store: the embedded default, for CLIs and desktop apps.
//!
//! One directory (mode `0700`) holds, per scope, the record (`NAME.json`),
//! its last good copy (`NAME.json.bak`), the lease (`NAME.lease`) and a lock
//! file (`NAME.lock`). The lock is the OS's advisory file lock
//! (`std::fs::File::lock`, no extra crate) and is held only for one
//! read-modify-write, never across a refresh: the refresh is covered by the
//! lease, which is data with an expiry, so a paused or dead holder is taken
//! over when it runs out.
//!
//! Writes are atomic: a temporary file (mode `0600`) is written and
//! fsynced, renamed over the target, and the directory is fsynced. The new
//! record goes to the last good copy first, then to the record file, and a
//! read takes the newer readable one of the two: a half-written or
//! corrupted record file costs nothing that was good.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    LeaseGrant, MalformedRecord, Owner, Record, Scope, Store, StoreError, Swap, UnixMillis,
};
use crate::Generation;

/// How long a store call waits for another process's read-modify-write
/// before it gives up with an error rather than hang (a process paused
/// inside its few-millisecond critical section).
const LOCK_PATIENCE: Duration = Duration::from_secs(2);

/// A store in a directory of the local file system.
///
/// # Examples
///
/// ```
/// use tokenflight::store::{FileStore, Scope, Store};
///
/// let dir = std::env::temp_dir().join(format!("tf-doc-file-{}", std::process::id()));
/// let store = FileStore::open(&dir).unwrap();
/// assert!(store.load(&Scope::new("nobody")).unwrap().is_none());
/// # std::fs::remove_dir_all(&dir).ok();
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    poll: Duration,
}

#[derive(Serialize, Deserialize)]
struct LeaseFile {
    owner: Owner,
    until: UnixMillis,
}

impl FileStore {
    /// Opens (creating it, mode `0700`) the store in `dir`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(io("create", &dir))?;
        Ok(FileStore {
            dir,
            poll: Duration::from_millis(2),
        })
    }

    /// The same store, with waiters re-reading it every `poll`.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The file that holds `scope`'s record.
    pub fn record_path(&self, scope: &Scope) -> PathBuf {
        self.dir.join(format!("{}.json", scope.escaped()))
    }

    fn backup_path(&self, scope: &Scope) -> PathBuf {
        self.dir.join(format!("{}.json.bak", scope.escaped()))
    }

    fn lease_path(&self, scope: &Scope) -> PathBuf {
        self.dir.join(format!("{}.lease", scope.escaped()))
    }

    fn lock_path(&self, scope: &Scope) -> PathBuf {
        self.dir.join(format!("{}.lock", scope.escaped()))
    }

    /// Runs `f` holding the scope's file lock.
    fn locked<R>(
        &self,
        scope: &Scope,
        f: impl FnOnce() -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let path = self.lock_path(scope);
        let _lock = FileLock::take(&path)?;
        f()
    }

    /// The newer readable one of the record file and its last good copy.
    fn read_best(&self, scope: &Scope) -> Result<Option<Record>, StoreError> {
        let main_path = self.record_path(scope);
        let main = read_record(&main_path)?;
        let backup = read_record(&self.backup_path(scope))?;
        match (main, backup) {
            (Read::Good(a), Read::Good(b)) => Ok(Some(if b.generation() > a.generation() {
                b
            } else {
                a
            })),
            (Read::Good(r), Read::Missing) | (Read::Missing, Read::Good(r)) => Ok(Some(r)),
            (Read::Good(r), Read::Corrupt(_)) | (Read::Corrupt(_), Read::Good(r)) => {
                tracing::warn!(
                    path = %main_path.display(),
                    "token store: one copy of the record is unreadable; using the other"
                );
                Ok(Some(r))
            }
            (Read::Missing, Read::Missing) => Ok(None),
            (Read::Corrupt(source), _) | (_, Read::Corrupt(source)) => Err(StoreError::Corrupt {
                path: main_path,
                source,
            }),
        }
    }

    /// Moves unreadable copies aside (`.corrupt`), so that a new record can
    /// be written without destroying what an operator may want to inspect.
    fn set_aside_corrupt(&self, scope: &Scope) -> Result<(), StoreError> {
        for path in [self.record_path(scope), self.backup_path(scope)] {
            if let Read::Corrupt(_) = read_record(&path)? {
                let aside = path.with_extension(format!("corrupt-{}", UnixMillis::now().as_u64()));
                fs::rename(&path, &aside).map_err(io("set aside", &path))?;
            }
        }
        Ok(())
    }
}

impl Store for FileStore {
    fn load(&self, scope: &Scope) -> Result<Option<Record>, StoreError> {
        // No lock: every write is a rename, so a read sees a whole file.
        self.read_best(scope)
    }

    fn swap(
        &self,
        scope: &Scope,
        expected: Generation,
        record: &Record,
    ) -> Result<Swap, StoreError> {
        self.locked(scope, || {
            let current = match self.read_best(scope) {
                Ok(current) => current.map_or(Generation(0), |r| r.generation()),
                // Nothing readable is an empty store to a writer that
                // expects one; the unreadable bytes are kept aside.
                Err(StoreError::Corrupt { .. }) if expected == Generation(0) => {
                    self.set_aside_corrupt(scope)?;
                    Generation(0)
                }
                Err(e) => return Err(e),
            };
            if current != expected || record.generation() <= current {
                return Ok(Swap::Conflict { current });
            }
            let json = record.to_json();
            // The copy first: if we die between the two renames, the copy
            // is the newer one and a read takes it. One directory fsync
            // covers both renames: until it returns nothing is published.
            write_atomic(&self.backup_path(scope), json.as_bytes(), Durability::File)?;
            write_atomic(
                &self.record_path(scope),
                json.as_bytes(),
                Durability::FileAndDir,
            )?;
            Ok(Swap::Done)
        })
    }

    fn try_lease(
        &self,
        scope: &Scope,
        owner: &Owner,
        ttl: Duration,
    ) -> Result<Option<LeaseGrant>, StoreError> {
        let path = self.lease_path(scope);
        self.locked(scope, || {
            let now = UnixMillis::now();
            if let Some(held) = read_lease(&path)? {
                if held.until > now && held.owner != *owner {
                    return Ok(None);
                }
            }
            let until = now.saturating_add(ttl);
            let lease = LeaseFile {
                owner: owner.clone(),
                until,
            };
            let json = serde_json::to_string(&lease).unwrap_or_default();
            // No fsync: a lease need not outlive a machine crash, which
            // ends every holder too.
            write_atomic(&path, json.as_bytes(), Durability::None)?;
            Ok(Some(LeaseGrant { until }))
        })
    }

    fn release(&self, scope: &Scope, owner: &Owner) -> Result<bool, StoreError> {
        let path = self.lease_path(scope);
        self.locked(scope, || match read_lease(&path)? {
            Some(held) if held.owner == *owner => {
                let still_ours = held.until > UnixMillis::now();
                match fs::remove_file(&path) {
                    Ok(()) => Ok(still_ours),
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(io("remove", &path)(e)),
                }
            }
            _ => Ok(false),
        })
    }

    fn poll_interval(&self) -> Duration {
        self.poll
    }
}

enum Read {
    Good(Record),
    Missing,
    Corrupt(MalformedRecord),
}

fn read_record(path: &Path) -> Result<Read, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(match Record::from_slice(&bytes) {
            Ok(record) => Read::Good(record),
            Err(e) => Read::Corrupt(e),
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Read::Missing),
        Err(e) => Err(io("read", path)(e)),
    }
}

/// The lease on file; an unreadable lease is no lease (it only ever guards
/// a refresh, and the generation CAS fences whoever takes over).
fn read_lease(path: &Path) -> Result<Option<LeaseFile>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", path)(e)),
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// How much of a write must reach the disk before it returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    None,
    File,
    FileAndDir,
}

/// Temp file, (fsync), rename over `path`, (fsync the directory).
fn write_atomic(path: &Path, bytes: &[u8], sync: Durability) -> Result<(), StoreError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
    let result = (|| {
        let mut file = private_file().open(&tmp).map_err(io("create", &tmp))?;
        file.write_all(bytes).map_err(io("write", &tmp))?;
        if sync != Durability::None {
            file.sync_all().map_err(io("fsync", &tmp))?;
        }
        drop(file);
        fs::rename(&tmp, path).map_err(io("rename", path))?;
        if sync == Durability::FileAndDir {
            sync_dir(path)?;
        }
        Ok(())
    })();
    if result.is_err() {
        // A failed write leaves the old file whole; the temp file goes.
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn sync_dir(path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> Result<(), StoreError> {
    // Windows has no directory fsync; the rename is durable on NTFS.
    Ok(())
}

/// The OS file lock on `NAME.lock`, released when dropped (and by the OS if
/// the process dies).
struct FileLock {
    _file: File,
}

impl FileLock {
    fn take(path: &Path) -> Result<Self, StoreError> {
        let start = UnixMillis::now();
        loop {
            let mut options = OpenOptions::new();
            options.read(true).write(true).create(true).truncate(false);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(path).map_err(io("open", path))?;
            match file.try_lock() {
                // Someone may have deleted the lock file while we waited:
                // a lock on an unlinked inode excludes nobody.
                Ok(()) if same_file(&file, path) => return Ok(FileLock { _file: file }),
                Ok(()) => continue,
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(io("lock", path)(e)),
            }
            if UnixMillis::now().saturating_since(start) > LOCK_PATIENCE {
                return Err(io("lock", path)(std::io::Error::new(
                    ErrorKind::TimedOut,
                    "another process kept the store's file lock",
                )));
            }
            pause(Duration::from_micros(200));
        }
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, _path: &Path) -> bool {
    // Windows refuses to delete an open file.
    true
}

// A file lock has no wait-with-timeout: a short sleep between tries, bounded
// by LOCK_PATIENCE.
#[allow(clippy::disallowed_methods)]
fn pause(d: Duration) {
    std::thread::sleep(d);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredToken;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tf-file-{name}-{}-{}",
            std::process::id(),
            UnixMillis::now().as_u64()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn record(generation: u64, access: &str) -> Record {
        Record::new(
            Generation(generation),
            Owner::unique(),
            Some(StoredToken::new(access, Some("rt".into()), None)),
        )
    }

    #[test]
    fn swap_is_a_compare_and_swap_on_the_generation() {
        let dir = temp("cas");
        let store = FileStore::open(&dir).unwrap();
        let scope = Scope::new("s");
        assert_eq!(
            store.swap(&scope, Generation(0), &record(1, "a")).unwrap(),
            Swap::Done
        );
        assert_eq!(
            store.swap(&scope, Generation(0), &record(1, "b")).unwrap(),
            Swap::Conflict {
                current: Generation(1)
            }
        );
        // Never backwards, even when the expectation is right.
        assert_eq!(
            store.swap(&scope, Generation(1), &record(1, "c")).unwrap(),
            Swap::Conflict {
                current: Generation(1)
            }
        );
        assert_eq!(
            store.swap(&scope, Generation(1), &record(2, "d")).unwrap(),
            Swap::Done
        );
        let got = store.load(&scope).unwrap().unwrap();
        assert_eq!(got.generation(), Generation(2));
        assert_eq!(got.token().unwrap().access_token().expose(), "d");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp("mode");
        let store = FileStore::open(&dir).unwrap();
        let scope = Scope::new("s");
        let _ = store.swap(&scope, Generation(0), &record(1, "a")).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&store.record_path(&scope)), 0o600);
        assert_eq!(mode(&store.backup_path(&scope)), 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_record_file_loses_nothing_that_was_good() {
        let dir = temp("corrupt");
        let store = FileStore::open(&dir).unwrap();
        let scope = Scope::new("s");
        let _ = store.swap(&scope, Generation(0), &record(1, "a")).unwrap();
        let _ = store.swap(&scope, Generation(1), &record(2, "b")).unwrap();
        // Half-written, as a crash of a non-atomic writer leaves it.
        fs::write(store.record_path(&scope), b"{\"generation\":2,\"own").unwrap();
        let got = store.load(&scope).unwrap().unwrap();
        assert_eq!(got.generation(), Generation(2));
        assert_eq!(got.token().unwrap().access_token().expose(), "b");
        // The next write repairs it.
        assert_eq!(
            store.swap(&scope, Generation(2), &record(3, "c")).unwrap(),
            Swap::Done
        );
        assert!(matches!(
            read_record(&store.record_path(&scope)).unwrap(),
            Read::Good(_)
        ));

        // Both copies gone bad: a typed error, no guess.
        fs::write(store.record_path(&scope), b"garbage").unwrap();
        fs::write(store.backup_path(&scope), b"garbage").unwrap();
        let e = store.load(&scope).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
        assert!(e.to_string().contains("is corrupt"));
        // A writer that expects a record does not overwrite the evidence...
        assert!(store.swap(&scope, Generation(3), &record(4, "d")).is_err());
        // ...a login (expecting none) does, keeping the bytes aside.
        assert_eq!(
            store.swap(&scope, Generation(0), &record(4, "d")).unwrap(),
            Swap::Done
        );
        let aside = fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("corrupt-")
            })
            .count();
        assert_eq!(aside, 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_crash_between_the_two_renames_keeps_the_newer_copy() {
        let dir = temp("between");
        let store = FileStore::open(&dir).unwrap();
        let scope = Scope::new("s");
        let _ = store.swap(&scope, Generation(0), &record(1, "a")).unwrap();
        // As if the writer of generation 2 died after the copy's rename.
        write_atomic(
            &store.backup_path(&scope),
            record(2, "b").to_json().as_bytes(),
            Durability::FileAndDir,
        )
        .unwrap();
        assert_eq!(
            store.load(&scope).unwrap().unwrap().generation(),
            Generation(2)
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lease_excludes_others_until_released_or_expired() {
        let dir = temp("lease");
        let store = FileStore::open(&dir).unwrap();
        let scope = Scope::new("s");
        let (a, b) = (Owner::unique(), Owner::unique());
        let ttl = Duration::from_millis(100);
        assert!(store.try_lease(&scope, &a, ttl).unwrap().is_some());
        assert!(store.try_lease(&scope, &b, ttl).unwrap().is_none());
        assert!(!store.release(&scope, &b).unwrap(), "not b's to release");
        assert!(store.release(&scope, &a).unwrap());
        assert!(store.try_lease(&scope, &b, ttl).unwrap().is_some());
        // b dies holding it: a takes over once it runs out.
        pause(Duration::from_millis(150));
        assert!(store.try_lease(&scope, &a, ttl).unwrap().is_some());
        // b's late release does not free a's lease.
        assert!(!store.release(&scope, &b).unwrap());
        assert!(store.try_lease(&scope, &b, ttl).unwrap().is_none());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_swaps_from_threads_let_exactly_one_win() {
        let dir = temp("race");
        let store = FileStore::open(&dir).unwrap();
        let scope = Scope::new("s");
        let wins: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (store, scope) = (&store, &scope);
                    s.spawn(move || {
                        store
                            .swap(scope, Generation(0), &record(1, &format!("t{i}")))
                            .unwrap()
                            == Swap::Done
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(wins, 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
