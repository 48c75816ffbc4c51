//! The heap in use, as counted by the allocator a binary installs.
//!
//! A fuzz target or replay test that asserts a memory bound installs
//! [`COUNTING`] as its global allocator:
//!
//! ```text
//! #[global_allocator]
//! static ALLOC: &stats_alloc::StatsAlloc<std::alloc::System> = &fuzz_bodies::heap::COUNTING;
//! ```
//!
//! Without it the counts stay zero and [`counting`] says so, so a bound is
//! never checked against nothing by mistake: the bodies skip it and the
//! replay tests assert that it is counted.

use std::alloc::System;

use stats_alloc::StatsAlloc;

/// The counting allocator.
pub static COUNTING: StatsAlloc<System> = StatsAlloc::system();

/// Bytes allocated and not yet freed, by every thread.
pub fn in_use() -> isize {
    let s = COUNTING.stats();
    // A `realloc`'s growth is already in `bytes_allocated` and its
    // shrinking in `bytes_deallocated`; `bytes_reallocated` repeats it.
    s.bytes_allocated.wrapping_sub(s.bytes_deallocated) as isize
}

/// Whether [`COUNTING`] is this process's allocator.
pub fn counting() -> bool {
    let before = COUNTING.stats().allocations;
    let probe = std::hint::black_box(vec![0u8; 64]);
    drop(probe);
    COUNTING.stats().allocations != before
}
