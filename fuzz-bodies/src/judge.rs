//! The judge under arbitrary histories: the bytes are its stdin, one event
//! per line, as `tokenflight-sim judge` reads them.
//!
//! Judged: nothing panics; a malformed history gets a typed error (`json`,
//! `schema` or `io`) naming its first malformed line, so every line before
//! it judges; a history that reads gets a verdict whose violations name
//! lines of the history, in order, each the line that broke the rule (the
//! lines before it judge without it), the same with and without L1 but for
//! L1 itself; and the judge reads what it writes: every event written back
//! with `event_line` and judged again gives the same verdict.

use serde_json::Value;
use tokenflight::check::Rule;
use tokenflight_sim::judge::{event_from, event_line, judge, Verdict};

/// The error kinds a judge error may carry.
const ERRORS: [&str; 3] = ["json", "schema", "io"];

/// The target: panics on any broken promise.
pub fn run(data: &[u8]) {
    if let Err(e) = check(data) {
        panic!("{e}");
    }
}

/// The lines of `data` as `BufRead::lines` splits them (a last line without
/// a newline is a line; a trailing `\r` is dropped).
fn lines(data: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if data.is_empty() || data.ends_with(b"\n") {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect()
}

/// Judges `data` with and without L1 and checks both answers.
///
/// # Errors
///
/// The first broken promise, in words.
pub fn check(data: &[u8]) -> Result<(), String> {
    let lines = lines(data);
    let (open, healed) = (judge(data, false), judge(data, true));
    match (open, healed) {
        (Err(a), Err(b)) => {
            if a != b {
                return Err(format!("L1 changed the error: {a} / {b}"));
            }
            if !ERRORS.contains(&a.kind) || a.line == 0 || a.line > lines.len() {
                return Err(format!("{a} for {} lines", lines.len()));
            }
            let before = lines[..a.line - 1].join(&b'\n');
            if let Err(e) = judge(&before[..], true) {
                return Err(format!("{a}, but the lines before it fail: {e}"));
            }
            Ok(())
        }
        (Ok(open), Ok(healed)) => {
            check_verdict(&open, lines.len())?;
            check_verdict(&healed, lines.len())?;
            let l1 = healed.counts.iter().find(|(r, _)| *r == Rule::L1);
            let without: Vec<_> = healed
                .counts
                .iter()
                .map(|&(r, n)| (r, if r == Rule::L1 { 0 } else { n }))
                .collect();
            if open.counts != without || l1.is_some_and(|&(_, n)| n > 1) {
                return Err(format!("L1 changed other rules: {open:?} / {healed:?}"));
            }
            if !healed.findings.starts_with(&open.findings) {
                return Err(format!("L1 changed the findings: {open:?} / {healed:?}"));
            }
            check_lines(&open, &lines)?;
            let written = write_back(&lines)?;
            let again = judge(written.as_bytes(), true)
                .map_err(|e| format!("the judge does not read what it writes: {e}\n{written}"))?;
            if again != healed {
                return Err(format!(
                    "written back, the verdict changed: {healed:?} / {again:?}"
                ));
            }
            Ok(())
        }
        (a, b) => Err(format!("L1 changed whether it reads: {a:?} / {b:?}")),
    }
}

fn check_verdict(v: &Verdict, lines: usize) -> Result<(), String> {
    if v.events > lines || v.findings.len() > 16 {
        return Err(format!("{v:?} for {lines} lines"));
    }
    let total: u64 = v.counts.iter().map(|(_, n)| n).sum();
    if (v.findings.len() as u64) > total || (v.ok() && !v.findings.is_empty()) {
        return Err(format!("findings and counts disagree: {v:?}"));
    }
    let mut last = 0;
    for f in &v.findings {
        match f.line {
            Some(l) if l >= last && l >= 1 && l <= lines => last = l,
            None if f.rule == Rule::L1 => last = usize::MAX,
            _ => return Err(format!("finding {f:?} names no line of {lines}")),
        }
    }
    let json: Value = serde_json::from_str(&v.to_json().to_string())
        .map_err(|e| format!("verdict JSON does not re-parse: {e}"))?;
    if json["ok"] != v.ok() {
        return Err(format!("verdict JSON says {json}"));
    }
    let _ = v.to_string();
    Ok(())
}

/// Each violation names the line that broke the rule: the lines before it
/// hold fewer violations, the lines up to it as many as its place.
fn check_lines(v: &Verdict, lines: &[&[u8]]) -> Result<(), String> {
    let found = |n: usize| {
        judge(&lines[..n].join(&b'\n')[..], false)
            .map(|v| v.findings.len())
            .map_err(|e| format!("a prefix of a judged history fails: {e}"))
    };
    for (i, f) in v.findings.iter().enumerate() {
        let Some(l) = f.line else { continue };
        if found(l - 1)? > i || found(l)? <= i {
            return Err(format!("violation {i} ({f:?}) is not on line {l}"));
        }
    }
    Ok(())
}

/// The history written back: each event by `event_line`, blank lines and
/// the limits line as they were, so line numbers stay.
fn write_back(lines: &[&[u8]]) -> Result<String, String> {
    let mut out = String::new();
    let mut first = true;
    for line in lines {
        let line = std::str::from_utf8(line).map_err(|_| "a judged line is not UTF-8")?;
        if line.trim().is_empty() {
            out.push('\n');
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| format!("judged, not JSON: {e}"))?;
        let limits = v.get("type").and_then(Value::as_str) == Some("Limits");
        if std::mem::take(&mut first) && limits {
            out.push_str(line);
        } else {
            let (at, event) = event_from(&v).map_err(|e| format!("judged, not an event: {e}"))?;
            out.push_str(&event_line(at, &event).to_string());
        }
        out.push('\n');
    }
    Ok(out)
}
