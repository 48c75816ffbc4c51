//! Nothing to use: this package holds tokenflight's hot-path and herd
//! benchmarks (`benches/`), built against tokenflight as users build it.
//! See BENCHMARKS.md at the repository's root.
