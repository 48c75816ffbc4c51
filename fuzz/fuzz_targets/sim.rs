//! Fuzz target `sim`: see `fuzz_bodies::sim`.
#![no_main]

// Every target counts the heap, so that bounds on it are asserted.
#[global_allocator]
static ALLOC: &stats_alloc::StatsAlloc<std::alloc::System> = &fuzz_bodies::heap::COUNTING;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_bodies::sim::run(data));
