//! Conformance vectors: small traces of the core, inputs with their times
//! and the exact outputs it must produce, in the Informal Trace Format
//! (ITF, the trace format of Apalache and Quint), so that a port of the
//! core to another language can prove itself against the same files.
//!
//! Each vector is a script of inputs; [`generate`] runs the real core on it
//! and writes what it did. [`replay`] reads a vector, feeds its inputs to a
//! fresh core and checks every output. The mapping from the core to ITF is
//! described in `spec/README.md`.

mod config_cases;
mod features;
mod hand;

use std::path::Path;

use serde_json::Value;

use crate::itf::get_int;
use crate::oracle;
use crate::script;

use config_cases::config_vector;
pub use features::features;
use features::picked;
use hand::{resolve, scripts};

/// Every vector, as (file name, pretty JSON text).
///
/// # Errors
///
/// A script that does not fit the core (a bug in the script).
pub fn generate() -> Result<Vec<(String, String)>, String> {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).map(|t| t + "\n");
    let mut out = Vec::new();
    for (i, s) in scripts().iter().enumerate() {
        let script = resolve(s)?;
        let v = oracle::trace(&script, &format!("{}: {}", s.name, s.about))
            .map_err(|e| format!("{}: {e}", s.name))?;
        let text = pretty(&v).map_err(|e| e.to_string())?;
        out.push((format!("{:02}-{}.itf.json", i + 1, s.name), text));
    }
    for (seed, script) in picked() {
        let about = format!(
            "random script {seed} (`tokenflight-sim scripts --seed {seed} --count 1`), picked for what the random vectors before it do not show"
        );
        let v = oracle::trace(&script, &about).map_err(|e| e.to_string())?;
        let text = pretty(&v).map_err(|e| e.to_string())?;
        out.push((format!("r{seed:04}.itf.json"), text));
    }
    let text = pretty(&config_vector()).map_err(|e| e.to_string())?;
    out.push((CONFIG_VECTOR.to_string(), text));
    Ok(out)
}

/// The name of the configuration vector.
pub const CONFIG_VECTOR: &str = "config-errors.json";

/// Writes every vector into `dir`; returns how many.
///
/// # Errors
///
/// I/O, or a script that does not fit the core.
pub fn write_all(dir: &Path) -> Result<usize, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let all = generate()?;
    // Vectors of scripts that no longer exist (or were renumbered) go.
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(".json") {
            std::fs::remove_file(path)?;
        }
    }
    for (name, text) in &all {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(all.len())
}

/// The script a trace was made from: the config of its `Init` state and
/// the inputs of the others, with their times.
///
/// # Errors
///
/// What is wrong with the trace, with the state's index.
pub fn script_of(trace: &Value) -> Result<script::Script, String> {
    let states = trace["states"].as_array().ok_or("no states")?;
    let init = &states.first().ok_or("empty trace")?["input"];
    if init["tag"] != "Init" {
        return Err("state 0 is not Init".into());
    }
    let config = script::config_from(&init["value"]["config"]).map_err(|e| e.to_string())?;
    let mut inputs = Vec::with_capacity(states.len());
    for (i, s) in states.iter().enumerate().skip(1) {
        let now = get_int(&s["now"]).map_err(|e| format!("state {i}: now: {e}"))?;
        let input = script::input_from(&s["input"]).map_err(|e| format!("state {i}: {e}"))?;
        inputs.push((now, input));
    }
    Ok(script::Script { config, inputs })
}

/// Reads one vector and replays it against a fresh core: every state the
/// core reaches must equal the recorded one exactly. Returns the number of
/// states.
///
/// # Errors
///
/// The first difference, with the state's index.
pub fn replay(text: &str) -> Result<usize, String> {
    let want: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let script = script_of(&want)?;
    let got = oracle::trace(&script, "").map_err(|e| e.to_string())?;
    let (want, got) = (
        want["states"].as_array().ok_or("no states")?,
        got["states"].as_array().ok_or("no states")?,
    );
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        if w != g {
            return Err(format!("state {i}: expected {w}, got {g}"));
        }
    }
    if want.len() != got.len() {
        return Err(format!("{} states, expected {}", got.len(), want.len()));
    }
    Ok(want.len())
}
