//! The vectors bite: a second implementation of the core that follows the
//! spec step by step, as a port would (`port/`), agrees with every vector and with the
//! oracle on random scripts; each plausible port bug planted in it is caught
//! by at least one committed vector, and so is each of the core's own
//! planted bugs.

mod port;

use std::path::PathBuf;

use port::Bug;
use serde_json::Value;
use tokenflight::core::{Core, Mutant};
use tokenflight_sim::{oracle, random_script, vectors};

fn committed() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".itf.json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (name, v)
        })
        .collect()
}

/// The first state where the port with `bug` differs from the vector.
fn differs(trace: &Value, bug: Option<Bug>) -> Option<usize> {
    let script = vectors::script_of(trace).unwrap();
    let want = trace["states"].as_array().unwrap();
    let got = port::states(&script, bug).expect("vectors have valid configs");
    (0..want.len().max(got.len())).find(|&i| want.get(i) != got.get(i))
}

#[test]
fn the_port_agrees_with_every_vector() {
    for (name, trace) in committed() {
        if let Some(i) = differs(&trace, None) {
            let script = vectors::script_of(&trace).unwrap();
            let got = port::states(&script, None).unwrap();
            panic!(
                "{name}: state {i}: expected {}, port wrote {}",
                trace["states"][i],
                got.get(i).map_or("nothing".into(), Value::to_string)
            );
        }
    }
}

#[test]
fn the_port_agrees_with_the_oracle_on_random_scripts() {
    for script in random_script::draw_many(1_000_000, 10_000) {
        let want = oracle::trace(&script, "").ok();
        let got = port::states(&script, None);
        match (want, got) {
            (None, None) => {}
            (Some(w), Some(g)) => {
                let w = w["states"].as_array().unwrap();
                if let Some(i) = (0..w.len()).find(|&i| w[i] != g[i]) {
                    panic!(
                        "{}\nstate {i}: oracle {}, port {}",
                        script.to_json(),
                        w[i],
                        g[i]
                    );
                }
            }
            (w, g) => panic!("config refused by one only: {w:?} {g:?}"),
        }
    }
}

#[test]
fn every_port_bug_is_caught_by_a_vector() {
    let all = committed();
    let mut missed = Vec::new();
    for bug in Bug::ALL {
        let caught: Vec<&str> = all
            .iter()
            .filter(|(_, t)| differs(t, Some(bug)).is_some())
            .map(|(n, _)| n.as_str())
            .collect();
        eprintln!(
            "| `{bug:?}` | {} | {} |",
            caught.len(),
            caught
                .first()
                .map_or("-", |n| n.trim_end_matches(".itf.json"))
        );
        if caught.is_empty() {
            missed.push(bug);
        }
    }
    assert!(missed.is_empty(), "no vector catches {missed:?}");
}

#[test]
fn every_core_mutant_is_caught_by_a_vector() {
    let all = committed();
    for m in Mutant::ALL {
        let caught = all.iter().find(|(_, trace)| {
            let script = vectors::script_of(trace).unwrap();
            let core = Core::with_mutant(script.config.clone(), m).unwrap();
            let mut buf = String::new();
            oracle::write_trace_of(core, &script, "", &mut buf);
            let got: Value = serde_json::from_str(&buf).unwrap();
            got["states"] != trace["states"]
        });
        let (name, _) = caught.unwrap_or_else(|| panic!("no vector catches {m:?}"));
        eprintln!("| `{m:?}` (core mutant) | {name} |");
    }
}
