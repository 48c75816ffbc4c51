//! The oracle's batch throughput: scripts answered per second, the figure
//! the conformance kit promises (at least 10 000 scripts of 20–40 inputs a
//! second) so that a port can be checked differentially on hundreds of
//! thousands of scripts. `cargo bench -p tokenflight-sim --bench oracle`.

// `criterion_main!` writes a `main` of its own, without a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokenflight_sim::{oracle, random_script};

const SCRIPTS: u64 = 1_000;

fn batch(c: &mut Criterion) {
    let lines: String = random_script::draw_many(0, SCRIPTS)
        .map(|s| s.to_json().to_string() + "\n")
        .collect();
    let mut group = c.benchmark_group("oracle");
    group.throughput(Throughput::Elements(SCRIPTS));
    group.sample_size(20);
    group.bench_function("1000 random scripts", |b| {
        b.iter(|| oracle::run_batch(lines.as_bytes(), std::io::sink()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, batch);
criterion_main!(benches);
