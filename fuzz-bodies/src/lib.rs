//! The bodies of tokenflight's fuzz targets, one module per surface that
//! reads data from outside the program. Each has `run(data)`, which the
//! fuzz target of the same name calls and which panics on any broken
//! promise, and `check(data)`, which says what broke; the replay tests call
//! the same functions on every committed corpus file and regression input,
//! so a stable `cargo test` guards what the fuzzers found.
//!
//! | module | surface |
//! |---|---|
//! | [`core`] | the core under arbitrary histories, judged by the shared monitor |
//! | [`http`] | the HTTP layer's response classifiers and token injectors |
//! | [`tokenserver`] | the token server's request handling |
//! | [`sim`] | the simulator's scenario, regression and vector readers |

pub mod core;
pub mod heap;
pub mod http;
pub mod sim;
pub mod tokenserver;

/// A target's body: panics on any broken promise.
pub type Body = fn(&[u8]);

/// The targets, by name, as the fuzz crate and `fuzz/corpus/` name them.
pub const TARGETS: [(&str, Body); 4] = [
    ("core", core::run),
    ("http", http::run),
    ("tokenserver", tokenserver::run),
    ("sim", sim::run),
];
