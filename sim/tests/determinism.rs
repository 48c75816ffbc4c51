//! Same seed, same run: the trace of a seed is byte-identical every time.

mod captured;

use captured::Captured;

use tokenflight_sim::{run_recipe, run_tokenflight, RunOptions, Scenario};

fn trace(sc: &Scenario) -> Vec<u8> {
    let out = Captured::default();
    let opts = |o: &Captured| RunOptions {
        trace: Some(Box::new(o.clone())),
        ..RunOptions::default()
    };
    run_tokenflight(sc, opts(&out));
    run_recipe(sc, opts(&out));
    out.bytes()
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
