//! The conformance oracle under arbitrary lines: the bytes are its stdin,
//! one script per line, as `tokenflight-sim oracle` reads them.
//!
//! Judged: nothing panics; the batch stops only on input that is not
//! UTF-8 (an I/O error, as from the command's stdin); every non-blank line
//! is answered by one line of JSON, either a typed error (`json`, `schema`
//! or `invalid_config`) or a trace that re-parses, holds one state per
//! input after the initial one, and replays as a conformance vector (the
//! trace's own script, run again, gives the same states); the fast script
//! reader reads exactly what the precise one reads, or gives up.

use serde_json::Value;
use tokenflight_sim::script::Script;
use tokenflight_sim::{oracle, vectors};

/// The error kinds an oracle answer may carry.
const ERRORS: [&str; 3] = ["json", "schema", "invalid_config"];

/// The target: panics on any broken promise.
pub fn run(data: &[u8]) {
    if let Err(e) = check(data) {
        panic!("{e}");
    }
}

/// Runs the oracle on `data` as its stdin and judges every answer.
///
/// # Errors
///
/// The first broken promise, in words.
pub fn check(data: &[u8]) -> Result<(), String> {
    let mut out = Vec::new();
    let batch = match oracle::run_batch(data, &mut out) {
        Ok(batch) => batch,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            if std::str::from_utf8(data).is_ok() {
                return Err(format!("UTF-8 input refused: {e}"));
            }
            return Ok(());
        }
        Err(e) => return Err(format!("I/O error on a byte slice: {e}")),
    };
    let text = std::str::from_utf8(data).map_err(|_| "non-UTF-8 input accepted")?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let out = String::from_utf8(out).map_err(|_| "the oracle wrote non-UTF-8")?;
    let answers: Vec<&str> = out.lines().collect();
    if answers.len() != lines.len() {
        return Err(format!(
            "{} lines answered with {} lines",
            lines.len(),
            answers.len()
        ));
    }
    if batch.traces + batch.errors != lines.len() as u64 {
        return Err(format!("batch counts {batch:?} for {} lines", lines.len()));
    }
    for (line, answer) in lines.iter().zip(&answers) {
        check_line(line, answer)?;
    }
    Ok(())
}

fn check_line(line: &str, answer: &str) -> Result<(), String> {
    let v: Value =
        serde_json::from_str(answer).map_err(|e| format!("answer is not JSON ({e}): {answer}"))?;
    let precise = serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|v| Script::from_json(&v).ok());
    let read = Script::parse(line).ok();
    if read != precise {
        return Err(format!(
            "the readers disagree on {line}: {read:?} / {precise:?}"
        ));
    }
    if let Some(kind) = v.get("error") {
        if !kind.as_str().is_some_and(|k| ERRORS.contains(&k)) {
            return Err(format!("untyped error {answer}"));
        }
        if kind == "invalid_config" {
            let script = read.ok_or("invalid_config for a script that does not read")?;
            if tokenflight::core::Core::<String, String>::new(script.config).is_ok() {
                return Err(format!("invalid_config for a valid config: {answer}"));
            }
        } else if read.is_some() {
            return Err(format!("a script that reads answered {answer}"));
        }
        return Ok(());
    }
    let script = read.ok_or_else(|| format!("a trace for a line that is no script: {line}"))?;
    let states = v["states"].as_array().ok_or("a trace without states")?;
    if states.len() != script.inputs.len() + 1 {
        return Err(format!(
            "{} states for {} inputs",
            states.len(),
            script.inputs.len()
        ));
    }
    let replayed =
        vectors::replay(answer).map_err(|e| format!("the trace does not replay: {e}"))?;
    if replayed != states.len() {
        return Err(format!("replayed {replayed} of {} states", states.len()));
    }
    Ok(())
}
