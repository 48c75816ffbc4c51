//! Same seed, same run: the trace of a seed is byte-identical every time.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tokenflight_sim::{run_recipe, run_tokenflight, RunOptions, Scenario};

/// A writer whose bytes the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn trace(sc: &Scenario) -> Vec<u8> {
    let out = Shared::default();
    let opts = |o: &Shared| RunOptions {
        trace: Some(Box::new(o.clone())),
        ..RunOptions::default()
    };
    run_tokenflight(sc, opts(&out));
    run_recipe(sc, opts(&out));
    let bytes = out.0.lock().unwrap().clone();
    bytes
}

#[test]
fn same_seed_gives_byte_identical_traces() {
    for seed in [1, 7, 42] {
        let sc = Scenario::draw(seed, 3_000);
        let a = trace(&sc);
        let b = trace(&sc);
        assert!(
            a.len() > 10_000,
            "seed {seed}: trace too short to mean anything"
        );
        assert!(a == b, "seed {seed}: two runs gave different traces");
    }
}

#[test]
fn the_default_scenario_is_deterministic_too() {
    let mut sc = Scenario::default_run(1);
    sc.requests = 20_000;
    assert!(trace(&sc) == trace(&sc));
}

#[test]
fn different_seeds_give_different_traces() {
    let a = trace(&Scenario::draw(1, 3_000));
    let b = trace(&Scenario::draw(2, 3_000));
    assert!(a != b);
}

#[test]
fn every_trace_line_is_a_json_object() {
    let bytes = trace(&Scenario::draw(3, 2_000));
    let text = String::from_utf8(bytes).unwrap();
    let mut lines = 0;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["t"].is_u64() && v["algo"].is_string() && v["ev"].is_string(),
            "{line}"
        );
        lines += 1;
    }
    assert!(lines > 1_000);
}
