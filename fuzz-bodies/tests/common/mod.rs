//! The committed inputs of a target: its minimised corpus and its named
//! regression inputs (each a crash the fuzzer once found). Each test binary
//! uses some of these helpers, none all of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The corpus files of `target`.
pub(crate) fn corpus(target: &str) -> Vec<PathBuf> {
    files(&fuzz_dir().join("corpus").join(target))
}

/// The regression inputs of `target`.
pub(crate) fn regressions(target: &str) -> Vec<PathBuf> {
    files(&fuzz_dir().join("regressions").join(target))
}

/// Every committed input of `target`, with its bytes.
pub(crate) fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    corpus(target)
        .into_iter()
        .chain(regressions(target))
        .map(|p| {
            let bytes = std::fs::read(&p).expect("a readable input");
            (p, bytes)
        })
        .collect()
}

/// Runs `check` on every committed input of `target`; panics naming the
/// first input that fails. Returns how many ran.
pub(crate) fn replay(target: &str, check: impl Fn(&[u8]) -> Result<(), String>) -> usize {
    let inputs = inputs(target);
    assert!(
        !corpus(target).is_empty(),
        "no corpus committed for {target}"
    );
    for (path, bytes) in &inputs {
        if let Err(e) = check(bytes) {
            panic!("{}: {e}", path.display());
        }
    }
    inputs.len()
}
