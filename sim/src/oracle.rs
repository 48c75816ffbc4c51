//! The oracle: runs a [`Script`] on the real core and writes what it did as
//! an ITF trace, state by state. The conformance vectors are such traces,
//! and `tokenflight-sim oracle` answers any script a port author sends it,
//! so a port can be checked differentially against the core.

use std::io::{self, BufRead, Write};
use std::sync::Arc;

use serde_json::{json, Value};
use tokenflight::core::{Action, Core, Lease, Next, RefreshId, RequestId};
use tokenflight::{
    ConfigError, Error, Fresh, Generation, Phase, RefreshError, RefreshFailure, Timestamp,
};

use crate::itf::variant;
use crate::script::{config_record, Input, RefreshResult, Script};

type OCore = Core<String, String>;

/// The state variables of a trace, in the order every state lists them.
pub const VARS: [&str; 10] = [
    "now",
    "input",
    "answer",
    "actions",
    "timeout",
    "phase",
    "generation",
    "waiters",
    "outstanding",
    "valid_until",
];

/// Every input tag a trace may hold (`Init` is state 0's).
pub const INPUT_TAGS: [&str; 8] = [
    "Init",
    "Acquire",
    "Reject",
    "Cancel",
    "Refreshed",
    "Timeout",
    "SetToken",
    "Invalidate",
];

/// Every answer tag.
pub const ANSWER_TAGS: [&str; 5] = ["Send", "Wait", "Fail", "Cancelled", "None"];

/// Every action tag.
pub const ACTION_TAGS: [&str; 4] = ["StartRefresh", "AbandonRefresh", "Resume", "Fail"];

/// Every phase.
pub const PHASES: [&str; 3] = ["Idle", "Refreshing", "Failed"];

/// Every error kind the oracle writes (an error it does not know would be
/// written `Other`, which no trace may hold).
pub const ERROR_KINDS: [&str; 8] = [
    "RefreshUnavailable.Refresher",
    "RefreshUnavailable.TimedOut",
    "RefreshUnavailable.ExpiredOnArrival",
    "LoginRequired",
    "Overloaded",
    "AuthRejected",
    "DuplicateRequest",
    "UnknownGeneration",
];

/// Every configuration error kind, in the order the core checks them.
pub const CONFIG_ERROR_KINDS: [&str; 5] = [
    "NoWaiters",
    "NoRefreshAttempts",
    "ZeroRefreshTimeout",
    "AbandonBeforeTimeout",
    "BackoffInverted",
];

/// The kind of a [`ConfigError`] as the kit names it.
pub fn config_error_kind(e: &ConfigError) -> &'static str {
    match e {
        ConfigError::NoWaiters => "NoWaiters",
        ConfigError::NoRefreshAttempts => "NoRefreshAttempts",
        ConfigError::ZeroRefreshTimeout => "ZeroRefreshTimeout",
        ConfigError::AbandonBeforeTimeout { .. } => "AbandonBeforeTimeout",
        ConfigError::BackoffInverted { .. } => "BackoffInverted",
        _ => "Other",
    }
}

/// A compact JSON writer for traces. A batch of ten thousand scripts is
/// millions of values; writing them straight out, instead of building a
/// `serde_json::Value` tree and serialising it, is what makes the oracle
/// fast enough for differential testing.
struct Out<'a>(&'a mut String);

impl Out<'_> {
    fn raw(&mut self, s: &str) -> &mut Self {
        self.0.push_str(s);
        self
    }

    fn int(&mut self, n: u64) -> &mut Self {
        use std::fmt::Write as _;
        let _ = write!(self.0, "{{\"#bigint\":\"{n}\"}}");
        self
    }

    fn str(&mut self, s: &str) -> &mut Self {
        self.0.push('"');
        for c in s.chars() {
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    use std::fmt::Write as _;
                    let _ = write!(self.0, "\\u{:04x}", c as u32);
                }
                c => self.0.push(c),
            }
        }
        self.0.push('"');
        self
    }

    fn opt(&mut self, v: Option<u64>) -> &mut Self {
        match v {
            Some(n) => self.raw("{\"tag\":\"Some\",\"value\":").int(n).raw("}"),
            None => self.raw(NONE),
        }
    }

    /// `{"tag":T,"value":` — the caller writes the value and the `}`.
    fn tag(&mut self, t: &str) -> &mut Self {
        self.raw("{\"tag\":\"").raw(t).raw("\",\"value\":")
    }

    fn unit_variant(&mut self, t: &str) -> &mut Self {
        self.tag(t).raw("{\"#tup\":[]}}")
    }

    /// An error by kind only (messages are not part of the contract),
    /// `AuthRejected` with its send count.
    fn error(&mut self, e: &Error<String>) -> &mut Self {
        let tag = match e {
            Error::RefreshUnavailable(RefreshFailure::Refresher(_)) => {
                "RefreshUnavailable.Refresher"
            }
            Error::RefreshUnavailable(RefreshFailure::TimedOut) => "RefreshUnavailable.TimedOut",
            Error::RefreshUnavailable(RefreshFailure::ExpiredOnArrival) => {
                "RefreshUnavailable.ExpiredOnArrival"
            }
            Error::LoginRequired(_) => "LoginRequired",
            Error::Overloaded => "Overloaded",
            Error::AuthRejected { sends } => {
                return self
                    .tag("AuthRejected")
                    .raw("{\"sends\":")
                    .int(u64::from(*sends))
                    .raw("}}")
            }
            Error::DuplicateRequest => "DuplicateRequest",
            Error::UnknownGeneration => "UnknownGeneration",
            _ => "Other",
        };
        self.unit_variant(tag)
    }

    /// `"token":..,"generation":..,"send":..` of a lease.
    fn lease(&mut self, l: &Lease<String>) -> &mut Self {
        self.raw("\"token\":")
            .str(l.token())
            .raw(",\"generation\":")
            .int(l.generation().0)
            .raw(",\"send\":")
            .int(u64::from(l.send()))
    }

    fn next(&mut self, n: Next<String, String>) -> &mut Self {
        match n {
            Next::Send(l) => self.tag("Send").raw("{").lease(&l).raw("}}"),
            Next::Wait => self.unit_variant("Wait"),
            Next::Fail(e) => self.tag("Fail").raw("{\"error\":").error(&e).raw("}}"),
        }
    }

    fn action(&mut self, a: Action<String, String>) -> &mut Self {
        match a {
            Action::StartRefresh { attempt } => self
                .tag("StartRefresh")
                .raw("{\"attempt\":")
                .int(attempt.0)
                .raw("}}"),
            Action::AbandonRefresh { attempt } => self
                .tag("AbandonRefresh")
                .raw("{\"attempt\":")
                .int(attempt.0)
                .raw("}}"),
            Action::Resume { id, lease } => self
                .tag("Resume")
                .raw("{\"id\":")
                .int(id.0)
                .raw(",")
                .lease(&lease)
                .raw("}}"),
            Action::Fail { id, error } => self
                .tag("Fail")
                .raw("{\"id\":")
                .int(id.0)
                .raw(",\"error\":")
                .error(&error)
                .raw("}}"),
        }
    }

    fn value(&mut self, v: &Value) -> &mut Self {
        self.raw(&v.to_string())
    }

    /// `"id":N` style fields.
    fn field(&mut self, name: &str, n: u64) -> &mut Self {
        self.raw("\"").raw(name).raw("\":").int(n)
    }

    fn token_field(&mut self, name: &str, token: &str) -> &mut Self {
        self.raw("\"").raw(name).raw("\":").str(token)
    }

    /// An input, as `script::input_value` encodes it.
    fn input(&mut self, input: &Input) -> &mut Self {
        match input {
            Input::Acquire { id } => self.tag("Acquire").raw("{").field("id", *id).raw("}}"),
            Input::Reject {
                id,
                token,
                generation,
                send,
            } => self
                .tag("Reject")
                .raw("{")
                .field("id", *id)
                .raw(",")
                .token_field("token", token)
                .raw(",")
                .field("generation", *generation)
                .raw(",")
                .field("send", u64::from(*send))
                .raw("}}"),
            Input::Cancel { id } => self.tag("Cancel").raw("{").field("id", *id).raw("}}"),
            Input::Refreshed { attempt, result } => {
                self.tag("Refreshed")
                    .raw("{")
                    .field("attempt", *attempt)
                    .raw(",\"result\":");
                match result {
                    RefreshResult::Ok { token, expires_at } => self
                        .tag("Ok")
                        .raw("{")
                        .token_field("token", token)
                        .raw(",\"expires_at\":")
                        .opt(*expires_at)
                        .raw("}}"),
                    RefreshResult::Transient { error } => self
                        .tag("Transient")
                        .raw("{")
                        .token_field("error", error)
                        .raw("}}"),
                    RefreshResult::Permanent { error } => self
                        .tag("Permanent")
                        .raw("{")
                        .token_field("error", error)
                        .raw("}}"),
                };
                self.raw("}}")
            }
            Input::Timeout => self.unit_variant("Timeout"),
            Input::SetToken { token, expires_at } => self
                .tag("SetToken")
                .raw("{")
                .token_field("token", token)
                .raw(",\"expires_at\":")
                .opt(*expires_at)
                .raw("}}"),
            Input::Invalidate { generation } => self
                .tag("Invalidate")
                .raw("{")
                .field("generation", *generation)
                .raw("}}"),
        }
    }
}

const NONE: &str = "{\"tag\":\"None\",\"value\":{\"#tup\":[]}}";

fn fresh(token: &str, expires_at: Option<u64>) -> Fresh<String> {
    let f = Fresh::new(token.to_string());
    match expires_at {
        Some(ns) => f.expiring_at(Timestamp::from_nanos(ns)),
        None => f,
    }
}

/// Gives `input` to `core` at `now` and writes its answer (`None` for
/// inputs that answer nothing).
fn apply(core: &mut OCore, now: u64, input: &Input, out: &mut Out<'_>) {
    let t = Timestamp::from_nanos(now);
    match input {
        Input::Acquire { id } => {
            out.next(core.handle_acquire(t, RequestId(*id)));
        }
        Input::Reject {
            id,
            token,
            generation,
            send,
        } => {
            let lease = Lease::from_parts(Arc::new(token.clone()), Generation(*generation), *send);
            out.next(core.handle_rejection(t, RequestId(*id), &lease));
        }
        Input::Cancel { id } => {
            let was = core.handle_cancel(t, RequestId(*id));
            out.tag("Cancelled").raw(if was {
                "{\"was_waiting\":true}}"
            } else {
                "{\"was_waiting\":false}}"
            });
        }
        Input::Refreshed { attempt, result } => {
            let result = match result {
                RefreshResult::Ok { token, expires_at } => Ok(fresh(token, *expires_at)),
                RefreshResult::Transient { error } => Err(RefreshError::Transient(error.clone())),
                RefreshResult::Permanent { error } => Err(RefreshError::Permanent(error.clone())),
            };
            core.handle_refreshed(t, RefreshId(*attempt), result);
            out.raw(NONE);
        }
        Input::Timeout => {
            core.handle_timeout(t);
            out.raw(NONE);
        }
        Input::SetToken { token, expires_at } => {
            core.handle_set_token(t, fresh(token, *expires_at));
            out.raw(NONE);
        }
        Input::Invalidate { generation } => {
            core.handle_invalidate(t, Generation(*generation));
            out.raw(NONE);
        }
    }
}

/// Writes the state after an input: what came out, and what can be seen of
/// the core. `answer` has written the answer already.
fn state(
    core: &mut OCore,
    index: usize,
    now: u64,
    input: impl FnOnce(&mut Out<'_>),
    out: &mut Out<'_>,
    answer: impl FnOnce(&mut OCore, &mut Out<'_>),
) {
    use std::fmt::Write as _;
    let _ = write!(out.0, "{{\"#meta\":{{\"index\":{index}}},\"now\":");
    out.int(now).raw(",\"input\":");
    input(out);
    out.raw(",\"answer\":");
    answer(core, out);
    out.raw(",\"actions\":[");
    let mut first = true;
    while let Some(a) = core.poll_action() {
        if !std::mem::take(&mut first) {
            out.raw(",");
        }
        out.action(a);
    }
    let phase = match core.phase() {
        Phase::Idle => "Idle",
        Phase::Refreshing => "Refreshing",
        Phase::Failed => "Failed",
    };
    out.raw("],\"timeout\":")
        .opt(core.poll_timeout().map(Timestamp::as_nanos))
        .raw(",\"phase\":\"")
        .raw(phase)
        .raw("\",\"generation\":")
        .int(core.generation().0)
        .raw(",\"waiters\":")
        .int(core.waiters() as u64)
        .raw(",\"outstanding\":")
        .opt(core.outstanding_call().map(|a| a.0))
        .raw(",\"valid_until\":")
        .opt(core.snapshot().map(|s| s.valid_until.as_nanos()))
        .raw("}");
}

/// Writes the ITF trace of `script` on a fresh core to `buf` (one line of
/// JSON, no newline); `description` goes into the trace's `#meta`.
///
/// # Errors
///
/// The [`ConfigError`] of a configuration the core refuses (nothing is
/// written then).
pub fn write_trace(
    script: &Script,
    description: &str,
    buf: &mut String,
) -> Result<(), ConfigError> {
    let core: OCore = Core::new(script.config.clone())?;
    write_trace_of(core, script, description, buf);
    Ok(())
}

/// Writes the ITF trace of `script`'s inputs run on `core` (made with
/// `script.config`; a test may plant a bug in it) to `buf`.
pub fn write_trace_of(mut core: OCore, script: &Script, description: &str, buf: &mut String) {
    let out = &mut Out(buf);
    out.raw("{\"#meta\":{\"format\":\"ITF\",\"format-description\":\"https://apalache-mc.org/docs/adr/015adr-trace.html\",\"source\":\"tokenflight-sim\",\"description\":")
        .str(description)
        .raw("},\"vars\":[");
    for (i, v) in VARS.iter().enumerate() {
        if i > 0 {
            out.raw(",");
        }
        out.str(v);
    }
    out.raw("],\"states\":[");
    let init = variant("Init", json!({ "config": config_record(&script.config) }));
    state(
        &mut core,
        0,
        0,
        |out| {
            out.value(&init);
        },
        out,
        |_, out| {
            out.raw(NONE);
        },
    );
    for (i, (now, input)) in script.inputs.iter().enumerate() {
        out.raw(",");
        state(
            &mut core,
            i + 1,
            *now,
            |out| {
                out.input(input);
            },
            out,
            |core, out| apply(core, *now, input, out),
        );
    }
    out.raw("]}");
}

/// Runs `script` on a fresh core and returns its ITF trace; `description`
/// goes into the trace's `#meta`.
///
/// # Errors
///
/// The [`ConfigError`] of a configuration the core refuses.
///
/// # Examples
///
/// ```
/// use tokenflight::Config;
/// use tokenflight_sim::oracle;
/// use tokenflight_sim::script::{Input, Script};
///
/// let script = Script { config: Config::default(), inputs: vec![(0, Input::Acquire { id: 1 })] };
/// let trace = oracle::trace(&script, "one request").unwrap();
/// assert_eq!(trace["states"][1]["answer"]["tag"], "Wait");
/// assert_eq!(trace["states"][1]["actions"][0]["tag"], "StartRefresh");
/// ```
pub fn trace(script: &Script, description: &str) -> Result<Value, ConfigError> {
    let mut buf = String::new();
    write_trace(script, description, &mut buf)?;
    Ok(serde_json::from_str(&buf).expect("the trace writer writes JSON"))
}

/// The oracle's answer to one line, written to `buf`: the trace, or a typed
/// error object (`{"error": "json" | "schema", "detail": ...}` for a line
/// that is not a script, `{"error": "invalid_config", "kind": ...,
/// "detail": ...}` for a configuration the core refuses). Returns the
/// number of inputs run, `None` for an error.
pub fn answer_into(line: &str, buf: &mut String) -> Option<usize> {
    let script = match Script::parse(line) {
        Ok(s) => s,
        Err(e) => {
            buf.push_str(&json!({ "error": e.kind(), "detail": e.detail() }).to_string());
            return None;
        }
    };
    match write_trace(&script, "oracle", buf) {
        Ok(()) => Some(script.inputs.len()),
        Err(e) => {
            let v = json!({
                "error": "invalid_config",
                "kind": config_error_kind(&e),
                "detail": e.to_string(),
            });
            buf.push_str(&v.to_string());
            None
        }
    }
}

/// The oracle's answer to one line, as a value (see [`answer_into`]).
pub fn answer(line: &str) -> Value {
    let mut buf = String::new();
    answer_into(line, &mut buf);
    serde_json::from_str(&buf).expect("the oracle writes JSON")
}

/// What a batch run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Batch {
    /// Lines answered with a trace.
    pub traces: u64,
    /// Lines answered with an error.
    pub errors: u64,
    /// Inputs run, over all traces.
    pub inputs: u64,
}

/// Answers every line of `input` (blank lines are skipped) with one line of
/// `output`, in order.
///
/// # Errors
///
/// I/O errors only: a malformed line is answered, not fatal.
///
/// # Examples
///
/// ```
/// use tokenflight_sim::{oracle, random_script};
///
/// let mut input = random_script::draw(1).to_json().to_string();
/// input.push_str("\nnot a script\n");
/// let mut output = Vec::new();
/// let batch = oracle::run_batch(input.as_bytes(), &mut output).unwrap();
/// assert_eq!((batch.traces + batch.errors), 2);
/// let lines: Vec<&str> = std::str::from_utf8(&output).unwrap().lines().collect();
/// assert!(lines[1].contains("\"error\":\"json\""));
/// ```
pub fn run_batch(input: impl BufRead, mut output: impl Write) -> io::Result<Batch> {
    let mut batch = Batch::default();
    let mut buf = String::with_capacity(1 << 16);
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        buf.clear();
        match answer_into(&line, &mut buf) {
            Some(n) => {
                batch.traces += 1;
                batch.inputs += n as u64;
            }
            None => batch.errors += 1,
        }
        buf.push('\n');
        output.write_all(buf.as_bytes())?;
    }
    output.flush()?;
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_writer_encodes_inputs_as_scripts_do() {
        for script in crate::random_script::draw_many(0, 300) {
            let Ok(t) = trace(&script, "") else { continue };
            for (state, (_, input)) in t["states"].as_array().unwrap()[1..]
                .iter()
                .zip(&script.inputs)
            {
                assert_eq!(state["input"], crate::script::input_value(input));
            }
        }
    }

    #[test]
    fn a_malformed_line_is_answered_and_the_batch_goes_on() {
        let good = Script {
            config: tokenflight::Config::default(),
            inputs: vec![(0, Input::Acquire { id: 1 })],
        }
        .to_json()
        .to_string();
        let mut bad_config = Script {
            config: tokenflight::Config::default(),
            inputs: vec![],
        };
        bad_config.config.max_waiters = 0;
        let text = format!(
            "{good}\nnot json\n\n{{\"config\": 1}}\n{}\n{good}\n",
            bad_config.to_json()
        );
        let mut out = Vec::new();
        let batch = run_batch(text.as_bytes(), &mut out).unwrap();
        assert_eq!(
            batch,
            Batch {
                traces: 2,
                errors: 3,
                inputs: 2
            }
        );
        let lines: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[1]["error"], "json");
        assert_eq!(lines[2]["error"], "schema");
        assert_eq!(lines[3]["error"], "invalid_config");
        assert_eq!(lines[3]["kind"], "NoWaiters");
        assert_eq!(lines[0], lines[4]);
    }
}
