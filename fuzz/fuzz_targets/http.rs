//! Fuzz target `http`: see `fuzz_bodies::http`.
#![no_main]

// Every target counts the heap, so that bounds on it are asserted.
#[global_allocator]
static ALLOC: &stats_alloc::StatsAlloc<std::alloc::System> = &fuzz_bodies::heap::COUNTING;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_bodies::http::run(data));
