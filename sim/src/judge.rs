//! The judge: reads the event history of any front-end, in any language,
//! as JSON lines in the neutral vocabulary of [`tokenflight::check::Event`],
//! and gives the shared [`Monitor`]'s verdict. `tokenflight-sim judge`
//! runs it on stdin.
//!
//! One event per line: `{"at": NS, "type": VARIANT, ...fields}`, the
//! fields named as in `Event` (snake_case). Times and numbers may be JSON
//! numbers, decimal strings (for nanoseconds past 2^53) or ITF bigints. An
//! optional first line `{"type": "Limits", ...}` sets the bounds the history
//! is judged against; a bound left out is unbounded. Fields starting with
//! `_` are the front-end's own notes and are ignored; any other unknown
//! field is an error, so that a misspelt one is not silently dropped.

use std::fmt;
use std::io::BufRead;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokenflight::check::{Event, Limits, Monitor, Rule};
use tokenflight::core::{RefreshId, RequestId};
use tokenflight::{Generation, Phase, Timestamp};

use crate::itf::{get_int, get_opt};

/// Why a history could not be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JudgeError {
    /// The line (1-based).
    pub line: usize,
    /// `"json"` (not JSON), `"schema"` (not an event: unknown type, missing
    /// or unknown field, wrong type, number out of range) or `"io"`.
    pub kind: &'static str,
    /// What was wrong, in words.
    pub detail: String,
}

impl fmt::Display for JudgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.kind, self.detail)
    }
}

impl std::error::Error for JudgeError {}

/// A broken rule, with the line of the event that broke it (`None`: the
/// end of the history, for L1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// The line of the event that broke it.
    pub line: Option<usize>,
    /// The history's time at that event, ns.
    pub at: u64,
    /// What happened, in words.
    pub detail: String,
}

/// The verdict on a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Events judged.
    pub events: usize,
    /// Violations per rule, in [`Rule::ALL`] order.
    pub counts: Vec<(Rule, u64)>,
    /// The first violations (at most 16), in order, with their lines.
    pub findings: Vec<Finding>,
    /// Whether L1 was judged (the history was declared complete).
    pub healed: bool,
}

impl Verdict {
    /// Whether no rule was broken.
    pub fn ok(&self) -> bool {
        self.counts.iter().all(|(_, n)| *n == 0)
    }

    /// The first violation, if any.
    pub fn first(&self) -> Option<&Finding> {
        self.findings.first()
    }

    /// The verdict as one JSON object.
    pub fn to_json(&self) -> Value {
        let counts: Map<String, Value> = self
            .counts
            .iter()
            .map(|(r, n)| (format!("{r:?}"), json!(n)))
            .collect();
        let finding = |f: &Finding| {
            json!({
                "rule": format!("{:?}", f.rule),
                "line": f.line,
                "at": f.at.to_string(),
                "detail": f.detail,
            })
        };
        json!({
            "ok": self.ok(),
            "events": self.events,
            "healed": self.healed,
            "counts": counts,
            "first": self.first().map(finding),
            "violations": self.findings.iter().map(finding).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.ok() { "ok" } else { "VIOLATED" };
        let l1 = if self.healed { "" } else { " (L1 not judged)" };
        writeln!(f, "{verdict}: {} events judged{l1}", self.events)?;
        for (rule, n) in &self.counts {
            writeln!(f, "  {:<4} {:<26} {n}", format!("{rule:?}"), rule.title())?;
        }
        for (i, v) in self.findings.iter().enumerate() {
            let head = if i == 0 { "first" } else { "then " };
            let line = v
                .line
                .map_or_else(|| "end of history".to_string(), |l| format!("line {l}"));
            writeln!(
                f,
                "{head} {:?} at {line} (t = {} ns): {}",
                v.rule, v.at, v.detail
            )?;
        }
        Ok(())
    }
}

/// An event's fields, checked against the names its type allows.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn of(o: &'a Map<String, Value>, allowed: &[&str]) -> Result<Self, String> {
        let unknown = o.keys().find(|k| {
            !k.starts_with('_') && *k != "type" && *k != "at" && !allowed.contains(&k.as_str())
        });
        match unknown {
            Some(k) => Err(format!("unknown field {k:?}")),
            None => Ok(Fields(o)),
        }
    }

    fn get(&self, name: &str) -> Result<&'a Value, String> {
        self.0
            .get(name)
            .ok_or_else(|| format!("missing field {name:?}"))
    }

    fn num(&self, name: &str) -> Result<u64, String> {
        get_int(self.get(name)?).map_err(|e| format!("{name}: {e}"))
    }

    /// An optional number: absent or `null` is `None`.
    fn opt(&self, name: &str) -> Result<Option<u64>, String> {
        self.0
            .get(name)
            .map_or(Ok(None), get_opt)
            .map_err(|e| format!("{name}: {e}"))
    }

    fn id(&self) -> Result<RequestId, String> {
        self.num("id").map(RequestId)
    }

    fn generation(&self) -> Result<Generation, String> {
        self.num("generation").map(Generation)
    }

    fn attempt(&self) -> Result<RefreshId, String> {
        self.num("attempt").map(RefreshId)
    }
}

/// Reads the limits line.
fn limits_from(o: &Map<String, Value>) -> Result<Limits, String> {
    let names = [
        "max_waiters",
        "max_sends",
        "max_refresh_attempts",
        "proactive_window_ns",
        "safety_margin_ns",
    ];
    let f = Fields::of(o, &names)?;
    let mut l = Limits::unbounded();
    let get = |name: &str| f.opt(name);
    if let Some(n) = get("max_waiters")? {
        l.max_waiters = usize::try_from(n).map_err(|_| "max_waiters out of range")?;
    }
    if let Some(n) = get("max_sends")? {
        l.max_sends = u32::try_from(n).map_err(|_| "max_sends out of range")?;
    }
    if let Some(n) = get("max_refresh_attempts")? {
        l.max_refresh_attempts =
            u32::try_from(n).map_err(|_| "max_refresh_attempts out of range")?;
    }
    if let Some(n) = get("proactive_window_ns")? {
        l.proactive_window = Duration::from_nanos(n);
    }
    if let Some(n) = get("safety_margin_ns")? {
        l.safety_margin = Duration::from_nanos(n);
    }
    Ok(l)
}

/// Reads one event line (not the limits line).
///
/// # Errors
///
/// What is wrong with it, in words.
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// use tokenflight::check::Event;
/// use tokenflight::core::RequestId;
/// use tokenflight::{Generation, Timestamp};
/// use tokenflight_sim::judge::event_from;
///
/// let line = json!({"at": "5", "type": "Sent", "id": 1, "generation": 1});
/// let (at, event) = event_from(&line).unwrap();
/// assert_eq!(at, Timestamp::from_nanos(5));
/// assert_eq!(event, Event::Sent { id: RequestId(1), generation: Generation(1) });
/// assert!(event_from(&json!({"at": 0, "type": "Sent", "id": 1})).is_err());
/// ```
pub fn event_from(v: &Value) -> Result<(Timestamp, Event), String> {
    let o = v.as_object().ok_or("an event is a JSON object")?;
    let ty = o
        .get("type")
        .and_then(Value::as_str)
        .ok_or("missing \"type\"")?;
    let at = Timestamp::from_nanos(Fields(o).num("at")?);
    let event = match ty {
        "Arrived" | "Waiting" | "Completed" | "Failed" | "Cancelled" => {
            let id = Fields::of(o, &["id"])?.id()?;
            match ty {
                "Arrived" => Event::Arrived { id },
                "Waiting" => Event::Waiting { id },
                "Completed" => Event::Completed { id },
                "Failed" => Event::Failed { id },
                _ => Event::Cancelled { id },
            }
        }
        "Sent" | "Rejected" => {
            let f = Fields::of(o, &["id", "generation"])?;
            let (id, generation) = (f.id()?, f.generation()?);
            if ty == "Sent" {
                Event::Sent { id, generation }
            } else {
                Event::Rejected { id, generation }
            }
        }
        "RefreshStarted" | "RefreshAbandoned" | "RefreshDropped" => {
            let attempt = Fields::of(o, &["attempt"])?.attempt()?;
            match ty {
                "RefreshStarted" => Event::RefreshStarted { attempt },
                "RefreshAbandoned" => Event::RefreshAbandoned { attempt },
                _ => Event::RefreshDropped { attempt },
            }
        }
        "RefreshEnded" => {
            let f = Fields::of(o, &["attempt", "ok"])?;
            Event::RefreshEnded {
                attempt: f.attempt()?,
                ok: f.get("ok")?.as_bool().ok_or("ok: not a boolean")?,
            }
        }
        "NewGeneration" => {
            let f = Fields::of(o, &["generation", "expires_at", "from"])?;
            Event::NewGeneration {
                generation: f.generation()?,
                expires_at: f.opt("expires_at")?.map(Timestamp::from_nanos),
                from: f.opt("from")?.map(RefreshId),
            }
        }
        "Invalidated" => Event::Invalidated {
            generation: Fields::of(o, &["generation"])?.generation()?,
        },
        "PhaseChanged" => {
            let f = Fields::of(o, &["phase"])?;
            let phase = match f.get("phase")?.as_str() {
                Some("Idle") => Phase::Idle,
                Some("Refreshing") => Phase::Refreshing,
                Some("Failed") => Phase::Failed,
                _ => {
                    return Err(format!(
                        "phase: not Idle, Refreshing or Failed: {}",
                        o["phase"]
                    ))
                }
            };
            Event::PhaseChanged { phase }
        }
        "Limits" => return Err("the Limits line must come first".into()),
        other => return Err(format!("unknown event type {other:?}")),
    };
    Ok((at, event))
}

/// Judges the history read from `input`; with `healed`, the end of the
/// input is declared the end of the history, so L1 is judged (every request
/// that arrived must have ended).
///
/// # Errors
///
/// The first malformed line ([`JudgeError`]); nothing is judged then.
///
/// # Examples
///
/// ```
/// use tokenflight::check::Rule;
/// use tokenflight_sim::judge::judge;
///
/// let history = "{\"at\":0,\"type\":\"RefreshStarted\",\"attempt\":1}\n\
///                {\"at\":1,\"type\":\"RefreshStarted\",\"attempt\":2}\n";
/// let verdict = judge(history.as_bytes(), false).unwrap();
/// assert!(!verdict.ok());
/// let first = verdict.first().unwrap();
/// assert_eq!((first.rule, first.line), (Rule::S1, Some(2)));
///
/// let bad = judge("{\"at\":0,\"type\":\"Teleported\"}".as_bytes(), false).unwrap_err();
/// assert_eq!((bad.line, bad.kind), (1, "schema"));
/// ```
pub fn judge(input: impl BufRead, healed: bool) -> Result<Verdict, JudgeError> {
    let mut monitor: Option<Monitor> = None;
    let mut lines: Vec<usize> = Vec::new();
    let mut events = 0;
    let mut seen = 0;
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let err = |kind, detail: String| JudgeError {
            line: n,
            kind,
            detail,
        };
        let line = line.map_err(|e| err("io", e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| err("json", e.to_string()))?;
        if monitor.is_none() && v.get("type").and_then(Value::as_str) == Some("Limits") {
            let o = v.as_object().expect("has a field");
            let limits = limits_from(o).map_err(|e| err("schema", e))?;
            monitor = Some(Monitor::new(limits));
            continue;
        }
        let m = monitor.get_or_insert_with(|| Monitor::new(Limits::unbounded()));
        let (at, event) = event_from(&v).map_err(|e| err("schema", e))?;
        m.observe(at, event);
        events += 1;
        // The monitor keeps the first violations in order; each one that
        // appeared with this event gets this line.
        let now = m.violations().len();
        lines.extend(std::iter::repeat_n(n, now - seen));
        seen = now;
    }
    let mut m = monitor.unwrap_or_else(|| Monitor::new(Limits::unbounded()));
    if healed {
        m.finish();
    }
    let findings = m
        .violations()
        .iter()
        .enumerate()
        .map(|(i, v)| Finding {
            rule: v.rule,
            line: lines.get(i).copied(),
            at: v.at.as_nanos(),
            detail: v.detail.clone(),
        })
        .collect();
    Ok(Verdict {
        events,
        counts: Rule::ALL.iter().map(|&r| (r, m.count(r))).collect(),
        findings,
        healed,
    })
}

/// One event as a judge line, the inverse of [`event_from`]: how a Rust
/// front-end (or a test) writes a history for the judge.
pub fn event_line(at: Timestamp, event: &Event) -> Value {
    let at = at.as_nanos().to_string();
    match *event {
        Event::Arrived { id } => json!({"at": at, "type": "Arrived", "id": id.0}),
        Event::Sent { id, generation } => {
            json!({"at": at, "type": "Sent", "id": id.0, "generation": generation.0})
        }
        Event::Rejected { id, generation } => {
            json!({"at": at, "type": "Rejected", "id": id.0, "generation": generation.0})
        }
        Event::Waiting { id } => json!({"at": at, "type": "Waiting", "id": id.0}),
        Event::Completed { id } => json!({"at": at, "type": "Completed", "id": id.0}),
        Event::Failed { id } => json!({"at": at, "type": "Failed", "id": id.0}),
        Event::Cancelled { id } => json!({"at": at, "type": "Cancelled", "id": id.0}),
        Event::RefreshStarted { attempt } => {
            json!({"at": at, "type": "RefreshStarted", "attempt": attempt.0})
        }
        Event::RefreshEnded { attempt, ok } => {
            json!({"at": at, "type": "RefreshEnded", "attempt": attempt.0, "ok": ok})
        }
        Event::RefreshAbandoned { attempt } => {
            json!({"at": at, "type": "RefreshAbandoned", "attempt": attempt.0})
        }
        Event::RefreshDropped { attempt } => {
            json!({"at": at, "type": "RefreshDropped", "attempt": attempt.0})
        }
        Event::NewGeneration {
            generation,
            expires_at,
            from,
        } => json!({
            "at": at,
            "type": "NewGeneration",
            "generation": generation.0,
            "expires_at": expires_at.map(|e| e.as_nanos().to_string()),
            "from": from.map(|a| a.0),
        }),
        Event::Invalidated { generation } => {
            json!({"at": at, "type": "Invalidated", "generation": generation.0})
        }
        Event::PhaseChanged { phase } => {
            let p = match phase {
                Phase::Idle => "Idle",
                Phase::Refreshing => "Refreshing",
                Phase::Failed => "Failed",
            };
            json!({"at": at, "type": "PhaseChanged", "phase": p})
        }
        _ => json!({"at": at, "type": "Unknown"}),
    }
}

/// The limits line for `limits`.
pub fn limits_line(limits: &Limits) -> Value {
    json!({
        "type": "Limits",
        "max_waiters": limits.max_waiters as u64,
        "max_sends": limits.max_sends,
        "max_refresh_attempts": limits.max_refresh_attempts,
        "proactive_window_ns": crate::script::nanos(limits.proactive_window).to_string(),
        "safety_margin_ns": crate::script::nanos(limits.safety_margin).to_string(),
    })
}
