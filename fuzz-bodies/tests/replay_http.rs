//! The HTTP target's committed inputs, replayed on stable with the heap
//! counted, so the classifier's memory bound is asserted here too. One test
//! in its own binary: no other test allocates while it measures.

mod common;

#[global_allocator]
static ALLOC: &stats_alloc::StatsAlloc<std::alloc::System> = &fuzz_bodies::heap::COUNTING;

#[test]
fn the_http_corpus_replays_within_its_memory_bound() {
    assert!(fuzz_bodies::heap::counting(), "the heap is not counted");
    common::replay("http", fuzz_bodies::http::check);
}
