//! The HTTP target's committed inputs, replayed on stable with the heap
//! counted, so the classifier's memory bound is asserted here too. One test
//! in its own binary: no other test allocates while it measures.

mod common;

#[global_allocator]
static ALLOC: &stats_alloc::StatsAlloc<std::alloc::System> = &fuzz_bodies::heap::COUNTING;

#[test]
fn the_http_corpus_replays_within_its_memory_bound() {
    assert!(fuzz_bodies::heap::counting(), "the heap is not counted");
    // The measurement bites: a future that keeps a megabyte is seen to.
    let base = fuzz_bodies::heap::in_use();
    let (kept, peak) = fuzz_bodies::http::measure(async { vec![1u8; 1 << 20] }, base);
    assert!(peak >= 1 << 20, "{peak}");
    drop(kept);
    common::replay("http", fuzz_bodies::http::check);
}
