//! The stores' record decoding under arbitrary bytes: as the file store's
//! record file, its last good copy and its lease file (each present or
//! not: half-written, truncated, corrupted or another program's), and as a
//! value read back from Redis (the Redis store hands the value's text to
//! the same decoder, `Record::from_json`; no server is needed).
//!
//! The first byte says which files exist (bit 0 the record file, bit 1 the
//! copy, bit 2 the lease); the rest holds their bytes, in that order,
//! separated by `0xFF` (which no record, being UTF-8, holds).
//!
//! Judged: nothing panics; a decoded record encodes back to itself; a load
//! returns the newer valid copy if either file holds a valid record (a good
//! copy is never lost), nothing if neither file exists, and a typed error
//! otherwise; a write expecting the wrong generation changes no byte on
//! disk; a write expecting the loaded one (or none, over two bad copies)
//! succeeds and is what the next load returns, from two good copies; an
//! unreadable lease is no lease.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokenflight::store::{FileStore, Owner, Record, Scope, Store, StoreError, StoredToken, Swap};
use tokenflight::Generation;

/// The target: panics on any broken promise.
pub fn run(data: &[u8]) {
    if let Err(e) = check(data) {
        panic!("{e}");
    }
}

/// The directory this process's store lives in, on a memory file system
/// where there is one (every input writes a few files and fsyncs them).
fn dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        base.join(format!("tokenflight-fuzz-store-{}", std::process::id()))
    })
}

/// Removes every file of the store, so that each input starts afresh (a
/// login over bad copies sets them aside under new names).
fn clear(dir: &Path) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let path = e.map_err(|e| e.to_string())?.path();
        std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// What a record file's bytes decode to, as the Redis store would decode
/// the same bytes read back as a value.
fn decode(bytes: &[u8]) -> Result<Option<Record>, String> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(None);
    };
    match Record::from_json(text) {
        Ok(r) => {
            let again = Record::from_json(&r.to_json())
                .map_err(|e| format!("a record does not decode what it encodes: {e}"))?;
            if again != r {
                return Err(format!("{r:?} encodes to {again:?}"));
            }
            Ok(Some(r))
        }
        Err(e) => {
            let _ = e.to_string();
            Ok(None)
        }
    }
}

/// Feeds `data` to the decoder and to a file store's directory.
///
/// # Errors
///
/// The first broken promise, in words.
pub fn check(data: &[u8]) -> Result<(), String> {
    let Some((&flags, rest)) = data.split_first() else {
        return Ok(());
    };
    let mut parts = rest.splitn(3, |&b| b == 0xFF);
    let mut next = || parts.next().unwrap_or_default();
    let (main, backup, lease) = (next(), next(), next());
    let main = (flags & 1 != 0).then_some(main);
    let backup = (flags & 2 != 0).then_some(backup);
    let lease = (flags & 4 != 0).then_some(lease);
    let good_main = main.map(decode).transpose()?.flatten();
    let good_backup = backup.map(decode).transpose()?.flatten();

    let dir = dir();
    let store = FileStore::open(dir).map_err(|e| e.to_string())?;
    clear(dir)?;
    let scope = Scope::new("s");
    let record_path = store.record_path(&scope);
    let backup_path = PathBuf::from(format!("{}.bak", record_path.display()));
    let lease_path = dir.join("s.lease");
    for (path, bytes) in [
        (&record_path, main),
        (&backup_path, backup),
        (&lease_path, lease),
    ] {
        if let Some(bytes) = bytes {
            std::fs::write(path, bytes).map_err(|e| e.to_string())?;
        }
    }
    let result = judge_files(&store, &scope, (main, backup), (good_main, good_backup));
    let result = result.and_then(|()| judge_lease(&store, &scope, lease));
    clear(dir)?;
    result
}

fn judge_files(
    store: &FileStore,
    scope: &Scope,
    (main, backup): (Option<&[u8]>, Option<&[u8]>),
    good: (Option<Record>, Option<Record>),
) -> Result<(), String> {
    let expect = match good {
        (Some(a), Some(b)) => Some(if b.generation() > a.generation() {
            b
        } else {
            a
        }),
        (Some(r), None) | (None, Some(r)) => Some(r),
        (None, None) => None,
    };
    let loaded = store.load(scope);
    let current = match (&loaded, &expect) {
        (Ok(got), _) if *got == expect && (got.is_some() || (main, backup) == (None, None)) => {
            got.as_ref().map_or(Generation(0), Record::generation)
        }
        (Err(StoreError::Corrupt { .. }), None) if (main, backup) != (None, None) => Generation(0),
        _ => return Err(format!("loaded {loaded:?}, expected {expect:?}")),
    };
    let on_disk = || {
        let path = store.record_path(scope);
        let backup = PathBuf::from(format!("{}.bak", path.display()));
        (std::fs::read(path).ok(), std::fs::read(backup).ok())
    };
    let before = on_disk();
    let record = |g: u64| {
        Record::new(
            Generation(g),
            Owner::unique(),
            Some(StoredToken::new("fresh", None, None)),
        )
    };
    // A writer that expects another generation changes nothing.
    let wrong = Generation(current.0.wrapping_add(1));
    match store.swap(scope, wrong, &record(wrong.0.saturating_add(1))) {
        Ok(Swap::Conflict { .. }) | Err(_) => {}
        Ok(Swap::Done) => return Err(format!("a write expecting {wrong:?} won over {current:?}")),
    }
    if on_disk() != before {
        return Err("a write that lost changed the files".into());
    }
    let Some(new) = current.0.checked_add(1) else {
        return Ok(());
    };
    let new = record(new);
    match store.swap(scope, current, &new) {
        Ok(Swap::Done) => {}
        other => return Err(format!("a write expecting {current:?} answered {other:?}")),
    }
    match store.load(scope) {
        Ok(Some(r)) if r == new => {}
        other => return Err(format!("after a write, loaded {other:?}")),
    }
    match on_disk() {
        (Some(a), Some(b)) if decode(&a)? == Some(new.clone()) && a == b => Ok(()),
        _ => Err("after a write, the two copies are not the record".into()),
    }
}

fn judge_lease(store: &FileStore, scope: &Scope, lease: Option<&[u8]>) -> Result<(), String> {
    let me = Owner::unique();
    let unreadable = lease.is_some_and(|b| serde_json::from_slice::<serde_json::Value>(b).is_err());
    match store.try_lease(scope, &me, Duration::from_secs(60)) {
        Ok(Some(_)) => {}
        Ok(None) if !unreadable && lease.is_some() => return Ok(()),
        other => return Err(format!("lease over {lease:?}: {other:?}")),
    }
    match store.release(scope, &me) {
        Ok(true) => Ok(()),
        other => Err(format!("releasing a lease just taken: {other:?}")),
    }
}
