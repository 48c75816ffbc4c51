//! The conformance vectors: every committed trace replays against the core
//! exactly, the committed files are what the generator writes today, they
//! are valid ITF, and together they cover every kind of output.

use std::collections::BTreeSet;
use std::path::PathBuf;

use tokenflight_sim::vectors;

fn committed() -> Vec<(String, String)> {
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
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn committed_vectors_replay_against_the_core() {
    let files = committed();
    assert!(files.len() >= 15);
    for (name, text) in &files {
        let n = vectors::replay(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(n >= 3, "{name}");
    }
}

#[test]
fn committed_vectors_are_up_to_date() {
    let generated = vectors::generate().unwrap();
    let files = committed();
    let names: Vec<_> = files.iter().map(|(n, _)| n.clone()).collect();
    let expected: Vec<_> = generated.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        names, expected,
        "run `cargo run -p tokenflight-sim -- vectors`"
    );
    for ((name, text), (_, fresh)) in files.iter().zip(&generated) {
        assert!(
            text == fresh,
            "{name} is stale: run `cargo run -p tokenflight-sim -- vectors`"
        );
    }
}

#[test]
fn a_wrong_output_is_caught() {
    let (_, text) = &committed()[1];
    let tampered = text.replacen("\"Wait\"", "\"Send\"", 1);
    assert_ne!(&tampered, text);
    assert!(vectors::replay(&tampered).is_err());
}

/// A state as an ITF consumer in Rust would declare it, decoded by the
/// `itf` crate (big integers into integers, `{tag, value}` variants).
#[allow(dead_code)]
#[derive(Debug, serde::Deserialize)]
struct Step {
    #[serde(with = "itf::de::As::<itf::de::Integer>")]
    now: u64,
    input: Tagged,
    answer: Tagged,
    actions: Vec<Tagged>,
    timeout: Tagged,
    phase: String,
    #[serde(with = "itf::de::As::<itf::de::Integer>")]
    generation: u64,
    #[serde(with = "itf::de::As::<itf::de::Integer>")]
    waiters: u64,
}

#[allow(dead_code)]
#[derive(Debug, serde::Deserialize)]
struct Tagged {
    tag: String,
}

#[test]
fn vectors_are_itf_traces() {
    for (name, text) in committed() {
        let trace = itf::trace_from_str::<Step>(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(trace.meta.format.as_deref(), Some("ITF"));
        assert_eq!(trace.vars.len(), 8, "{name}");
        assert!(trace.states.len() >= 3, "{name}");
        assert_eq!(trace.states[0].value.input.tag, "Init", "{name}");
        for s in &trace.states {
            assert!(
                ["Some", "None"].contains(&s.value.timeout.tag.as_str()),
                "{name}"
            );
            assert!(
                ["Idle", "Refreshing", "Failed"].contains(&s.value.phase.as_str()),
                "{name}"
            );
        }
    }
}

#[test]
fn vectors_cover_every_kind_of_output() {
    let mut seen = BTreeSet::new();
    for (_, text) in committed() {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for s in v["states"].as_array().unwrap() {
            seen.insert(format!("input:{}", s["input"]["tag"].as_str().unwrap()));
            seen.insert(format!("answer:{}", s["answer"]["tag"].as_str().unwrap()));
            seen.insert(format!("phase:{}", s["phase"].as_str().unwrap()));
            if let Some(e) = s["answer"]["value"]["error"]["tag"].as_str() {
                seen.insert(format!("error:{e}"));
            }
            for a in s["actions"].as_array().unwrap() {
                seen.insert(format!("action:{}", a["tag"].as_str().unwrap()));
                if let Some(e) = a["value"]["error"]["tag"].as_str() {
                    seen.insert(format!("error:{e}"));
                }
            }
        }
    }
    for want in [
        "input:Init",
        "input:Acquire",
        "input:Reject",
        "input:Cancel",
        "input:Refreshed",
        "input:Timeout",
        "input:SetToken",
        "input:Invalidate",
        "answer:Send",
        "answer:Wait",
        "answer:Fail",
        "answer:Cancelled",
        "answer:None",
        "action:StartRefresh",
        "action:Resume",
        "action:Fail",
        "phase:Idle",
        "phase:Refreshing",
        "phase:Failed",
        "error:RefreshUnavailable.Refresher",
        "error:RefreshUnavailable.TimedOut",
        "error:RefreshUnavailable.ExpiredOnArrival",
        "error:LoginRequired",
        "error:Overloaded",
        "error:AuthRejected",
        "error:DuplicateRequest",
    ] {
        assert!(
            seen.contains(want),
            "no vector shows {want}; seen: {seen:?}"
        );
    }
}
