//! The conformance vectors: every committed trace replays against the core
//! exactly, the committed files are what the generator writes today, they
//! are valid ITF, and together they show every input, answer, action,
//! phase, error kind and situation the spec names — checked by decoding the
//! committed files, against lists that cannot silently miss a kind.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use tokenflight::core::Core;
use tokenflight::Config;
use tokenflight_sim::{oracle, random_script, script, vectors};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// Every committed file (traces and the configuration vector).
fn all_files() -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".json"))
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

fn committed() -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir())
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
    assert!(files.len() >= 35);
    for (name, text) in &files {
        let n = vectors::replay(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(n >= 3, "{name}");
    }
}

#[test]
fn committed_vectors_are_up_to_date() {
    let mut generated = vectors::generate().unwrap();
    generated.sort();
    let files = all_files();
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
    outstanding: Tagged,
    valid_until: Tagged,
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
        assert_eq!(trace.vars, oracle::VARS, "{name}");
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

/// Every error kind anywhere in a value: the tag of every `error` field,
/// however deep, so that no place an error can appear is overlooked.
fn error_kinds(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "error" {
                    if let Some(tag) = x["tag"].as_str() {
                        out.insert(tag.to_string());
                    }
                }
                error_kinds(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| error_kinds(x, out)),
        _ => {}
    }
}

fn traces() -> Vec<(String, Value)> {
    committed()
        .into_iter()
        .map(|(n, t)| (n, serde_json::from_str(&t).unwrap()))
        .collect()
}

#[test]
fn vectors_cover_every_kind_of_output() {
    let mut inputs = BTreeSet::new();
    let mut answers = BTreeSet::new();
    let mut actions = BTreeSet::new();
    let mut phases = BTreeSet::new();
    let mut errors = BTreeSet::new();
    let add = |set: &mut BTreeSet<String>, v: &Value| {
        set.insert(v.as_str().unwrap_or("<not a string>").to_string());
    };
    for (_, v) in traces() {
        for s in v["states"].as_array().unwrap() {
            add(&mut inputs, &s["input"]["tag"]);
            add(&mut answers, &s["answer"]["tag"]);
            add(&mut phases, &s["phase"]);
            for a in s["actions"].as_array().unwrap() {
                add(&mut actions, &a["tag"]);
            }
            // Errors sit in answers and in actions; inputs carry only the
            // refresher's own messages, which are strings, not kinds.
            error_kinds(&s["answer"], &mut errors);
            error_kinds(&s["actions"], &mut errors);
        }
    }
    let want = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    // Equal, not merely including: a kind the lists do not know is a
    // failure too (it would be a kind the spec does not describe).
    assert_eq!(inputs, want(&oracle::INPUT_TAGS), "inputs");
    assert_eq!(answers, want(&oracle::ANSWER_TAGS), "answers");
    assert_eq!(actions, want(&oracle::ACTION_TAGS), "actions");
    assert_eq!(phases, want(&oracle::PHASES), "phases");
    assert_eq!(errors, want(&oracle::ERROR_KINDS), "error kinds");
}

#[test]
fn the_kind_lists_are_complete() {
    // Whatever the oracle writes on many random scripts is in the lists:
    // a new kind the lists (and so the coverage test) miss fails here.
    let (mut errors, mut answers, mut actions): (
        BTreeSet<String>,
        BTreeSet<String>,
        BTreeSet<String>,
    ) = Default::default();
    for s in random_script::draw_many(0, 3_000) {
        let Ok(t) = oracle::trace(&s, "") else {
            continue;
        };
        for st in t["states"].as_array().unwrap() {
            error_kinds(st, &mut errors);
            answers.insert(st["answer"]["tag"].as_str().unwrap().to_string());
            for a in st["actions"].as_array().unwrap() {
                actions.insert(a["tag"].as_str().unwrap().to_string());
            }
        }
    }
    let known = |list: &[&str], seen: &BTreeSet<String>, what: &str| {
        for k in seen {
            assert!(list.contains(&k.as_str()), "{what} {k} is not listed");
        }
    };
    known(&oracle::ERROR_KINDS, &errors, "error kind");
    known(&oracle::ANSWER_TAGS, &answers, "answer");
    known(&oracle::ACTION_TAGS, &actions, "action");
    assert!(
        errors.len() >= 6,
        "random scripts reach most error kinds: {errors:?}"
    );
}

#[test]
fn vectors_show_every_situation_the_spec_names() {
    let mut seen = BTreeSet::new();
    let mut seeds = BTreeSet::new();
    for (_, v) in traces() {
        seen.extend(vectors::features(&v));
        let config = &v["states"][0]["input"]["value"]["config"];
        seeds.insert(config["seed"].to_string());
    }
    for want in [
        "time-backwards",
        "time-saturated",
        "timer-at-deadline",
        "delivered-out-of-join-order",
        "third-attempt-in-a-round",
        "late-answer-adopted",
        "late-answer-ignored",
        "answer-of-unknown-attempt",
        "forged-lease",
        "skew-jitter-on-expiring-token",
        "login-during-refresh",
        "late-answer-starts-queued-attempt",
        "answer-of-abandoned-call",
        "action:AbandonRefresh@Refreshing",
        "cancel-not-waiting",
        "input:Acquire@Failed",
        "input:Refreshed@Failed",
        "input:SetToken@Failed",
        "input:Reject@Refreshing",
        "input:Invalidate@Refreshing",
        "input:Timeout@Idle",
    ] {
        assert!(seen.contains(want), "no vector shows {want}");
    }
    assert!(seeds.len() >= 8, "only seeds {seeds:?}");
}

#[test]
fn every_config_error_is_pinned_and_checked_in_order() {
    let text = std::fs::read_to_string(dir().join(vectors::CONFIG_VECTOR)).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let mut kinds = BTreeSet::new();
    for case in v["cases"].as_array().unwrap() {
        let config = script::config_from(&case["config"]).unwrap();
        let got = Core::<String, String>::new(config)
            .err()
            .map(|e| oracle::config_error_kind(&e).to_string());
        assert_eq!(got.as_deref(), case["error"].as_str(), "{}", case["about"]);
        if let Some(k) = got {
            kinds.insert(k);
        }
    }
    let all: BTreeSet<String> = oracle::CONFIG_ERROR_KINDS
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(kinds, all);
    // The oracle answers a refused config with its kind.
    let mut bad = Config::default();
    bad.max_refresh_attempts = 0;
    let line = script::Script {
        config: bad,
        inputs: vec![],
    }
    .to_json()
    .to_string();
    let answer = oracle::answer(&line);
    assert_eq!(answer["error"], "invalid_config");
    assert_eq!(answer["kind"], "NoRefreshAttempts");
}

#[test]
fn vectors_stay_small() {
    let mut total = 0;
    for (name, v) in traces() {
        let n = v["states"].as_array().unwrap().len();
        assert!(n <= 300, "{name} has {n} states");
        total += n;
    }
    assert!(total <= 2_000, "{total} states in all");
}

/// The spec names the vectors that pin each rule: every vector it names
/// exists, and every hand-written vector is named by a rule of its table.
#[test]
fn the_spec_names_existing_vectors_and_every_vector_is_named() {
    let spec_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spec/README.md");
    let spec = std::fs::read_to_string(spec_path).unwrap();
    let files: BTreeSet<String> = committed().into_iter().map(|(n, _)| n).collect();
    // Names written out: `NN-some-name`.
    for (i, _) in spec.match_indices('`') {
        let rest = &spec[i + 1..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let numbered = name.len() > 3 && name.as_bytes()[..2].iter().all(u8::is_ascii_digit);
        if numbered && name.as_bytes()[2] == b'-' && rest[name.len()..].starts_with('`') {
            assert!(
                files.contains(&format!("{name}.itf.json")),
                "the spec names {name}, which is not a vector"
            );
        }
    }
    // Numbers in the last column of the rules table.
    let table = &spec[spec.find("## 8 Rules").unwrap()..spec.find("## 9 ").unwrap()];
    let mut named = BTreeSet::new();
    for line in table.lines().filter(|l| l.starts_with('|')) {
        let last = line.trim_end_matches('|').rsplit('|').next().unwrap_or("");
        for word in last.split(|c: char| !c.is_ascii_digit()) {
            if word.len() == 2 {
                named.insert(word.to_string());
            }
        }
    }
    for f in files.iter().filter(|f| f.as_bytes()[0].is_ascii_digit()) {
        assert!(
            named.contains(&f[..2]),
            "no rule of the spec's table names {f}"
        );
    }
}
