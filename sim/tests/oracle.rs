//! The oracle and script commands as a port author runs them: scripts in
//! on stdin, one answer per line out, malformed lines answered with a typed
//! error and the batch going on; random scripts the same for the same seed.

use serde_json::Value;
use tokenflight_sim::script::Script;

mod common;

use common::run_sim as run;

#[test]
fn scripts_are_the_same_for_the_same_seed_and_parse() {
    let (code, a) = run(&["scripts", "--seed", "5", "--count", "20"], "");
    assert_eq!(code, 0);
    let (_, b) = run(&["scripts", "--seed", "5", "--count", "20"], "");
    assert_eq!(a, b);
    let (_, c) = run(&["scripts", "--seed", "6", "--count", "20"], "");
    assert_ne!(a, c);
    assert_eq!(a.lines().count(), 20);
    // Script i of seed 5 is script 0 of seed 5 + i.
    let (_, one) = run(&["scripts", "--seed", "6", "--count", "1"], "");
    assert_eq!(a.lines().nth(1), one.lines().next());
    for line in a.lines() {
        Script::parse(line).unwrap();
    }
}

#[test]
fn the_oracle_answers_every_line_in_order() {
    let (_, scripts) = run(&["scripts", "--seed", "0", "--count", "50"], "");
    let mut input = String::new();
    for (i, line) in scripts.lines().enumerate() {
        input.push_str(line);
        input.push('\n');
        if i == 10 {
            input.push_str("{\"config\": {}, \"inputs\": []}\n");
            input.push_str("garbage\n");
        }
    }
    let (code, out) = run(&["oracle"], &input);
    assert_eq!(code, 0);
    let answers: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 52);
    assert_eq!(answers[11]["error"], "schema");
    assert_eq!(answers[12]["error"], "json");
    let traces: Vec<&Value> = answers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 11 && *i != 12)
        .map(|(_, a)| a)
        .collect();
    for (line, answer) in scripts.lines().zip(traces) {
        let script = Script::parse(line).unwrap();
        match answer.get("error") {
            Some(e) => assert_eq!(e, "invalid_config", "{answer}"),
            None => {
                let states = answer["states"].as_array().unwrap();
                assert_eq!(states.len(), script.inputs.len() + 1);
                assert_eq!(states[0]["input"]["tag"], "Init");
            }
        }
    }
}
