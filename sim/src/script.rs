//! A script: a configuration and timed inputs for the core, as the
//! conformance kit reads and writes it (the ITF input encoding of
//! `spec/README.md`). The oracle runs scripts, the random generator draws
//! them, the vectors are made of them.
//!
//! Decoding is strict about shape (every config field present, no unknown
//! field, integers in range) so that a port that encodes something the
//! oracle would read differently hears about it, with a typed error.

use std::fmt;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokenflight::Config;

use crate::itf::{get_int, get_opt, get_variant, int, option, unit, variant};

/// One input to the core. Ids, generations and attempts are plain numbers
/// here: a script may name anything, forged or unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `handle_acquire(id)`.
    Acquire {
        /// The request.
        id: u64,
    },
    /// `handle_rejection(id, lease)` with the lease `(token, generation,
    /// send)`, which need not be one the core issued.
    Reject {
        /// The request.
        id: u64,
        /// The token the request carried.
        token: String,
        /// The lease's generation.
        generation: u64,
        /// The lease's send count.
        send: u32,
    },
    /// `handle_cancel(id)`.
    Cancel {
        /// The request.
        id: u64,
    },
    /// `handle_refreshed(attempt, result)`.
    Refreshed {
        /// The attempt answered.
        attempt: u64,
        /// Its answer.
        result: RefreshResult,
    },
    /// `handle_timeout()`.
    Timeout,
    /// `handle_set_token(token, expires_at)`: a login.
    SetToken {
        /// The token.
        token: String,
        /// Its expiry, ns.
        expires_at: Option<u64>,
    },
    /// `handle_invalidate(generation)`.
    Invalidate {
        /// The generation declared bad.
        generation: u64,
    },
}

/// What a refresh attempt answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshResult {
    /// A token, with its expiry (ns) if known.
    Ok {
        /// The token.
        token: String,
        /// Its expiry, ns.
        expires_at: Option<u64>,
    },
    /// A transient error (worth retrying).
    Transient {
        /// The refresher's message (not part of the contract).
        error: String,
    },
    /// A permanent error (a new login is needed).
    Permanent {
        /// The refresher's message (not part of the contract).
        error: String,
    },
}

/// A configuration and the inputs to run on a core made with it, each with
/// the time (ns) it is given at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The core's configuration (it may be invalid: running it then yields
    /// the configuration error).
    pub config: Config,
    /// `(now, input)`, in order.
    pub inputs: Vec<(u64, Input)>,
}

/// Why a script could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptError {
    /// The line is not JSON.
    Json(String),
    /// The JSON does not have the shape of a script (a missing or unknown
    /// field, a wrong type, an unknown tag, an integer out of range).
    Schema(String),
}

impl ScriptError {
    /// The error's kind as written in the oracle's error lines.
    pub fn kind(&self) -> &'static str {
        match self {
            ScriptError::Json(_) => "json",
            ScriptError::Schema(_) => "schema",
        }
    }

    /// What was wrong, in words.
    pub fn detail(&self) -> &str {
        match self {
            ScriptError::Json(d) | ScriptError::Schema(d) => d,
        }
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.detail())
    }
}

impl std::error::Error for ScriptError {}

/// A config field as the kit names it: counts as they are, durations as
/// `<name>_ns`.
struct Field {
    name: &'static str,
    get: fn(&Config) -> u64,
    set: fn(&mut Config, u64) -> Result<(), String>,
}

/// A duration in whole nanoseconds (saturating), as the kit writes them.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn narrow<T: TryFrom<u64>>(n: u64, what: &str) -> Result<T, String> {
    T::try_from(n).map_err(|_| format!("{what} out of range: {n}"))
}

/// Every field of [`Config`], in the order the kit writes them.
const FIELDS: [Field; 12] = [
    Field {
        name: "max_waiters",
        get: |c| c.max_waiters as u64,
        set: |c, n| {
            c.max_waiters = narrow(n, "max_waiters")?;
            Ok(())
        },
    },
    Field {
        name: "max_auth_retries",
        get: |c| u64::from(c.max_auth_retries),
        set: |c, n| {
            c.max_auth_retries = narrow(n, "max_auth_retries")?;
            Ok(())
        },
    },
    Field {
        name: "max_refresh_attempts",
        get: |c| u64::from(c.max_refresh_attempts),
        set: |c, n| {
            c.max_refresh_attempts = narrow(n, "max_refresh_attempts")?;
            Ok(())
        },
    },
    Field {
        name: "refresh_timeout_ns",
        get: |c| nanos(c.refresh_timeout),
        set: |c, n| {
            c.refresh_timeout = Duration::from_nanos(n);
            Ok(())
        },
    },
    Field {
        name: "refresh_abandon_after_ns",
        get: |c| nanos(c.refresh_abandon_after),
        set: |c, n| {
            c.refresh_abandon_after = Duration::from_nanos(n);
            Ok(())
        },
    },
    Field {
        name: "backoff_initial_ns",
        get: |c| nanos(c.backoff_initial),
        set: |c, n| {
            c.backoff_initial = Duration::from_nanos(n);
            Ok(())
        },
    },
    Field {
        name: "backoff_max_ns",
        get: |c| nanos(c.backoff_max),
        set: |c, n| {
            c.backoff_max = Duration::from_nanos(n);
            Ok(())
        },
    },
    Field {
        name: "cooldown_ns",
        get: |c| nanos(c.cooldown),
        set: |c, n| {
            c.cooldown = Duration::from_nanos(n);
            Ok(())
        },
    },
    Field {
        name: "expiry_skew_ns",
        get: |c| nanos(c.expiry_skew),
        set: |c, n| {
            c.expiry_skew = Duration::from_nanos(n);
            Ok(())
        },
    },
    Field {
        name: "skew_jitter_ns",
        get: |c| nanos(c.skew_jitter),
        set: |c, n| {
            c.skew_jitter = Duration::from_nanos(n);
            Ok(())
        },
    },
    Field {
        name: "safety_margin_ns",
        get: |c| nanos(c.safety_margin),
        set: |c, n| {
            c.safety_margin = Duration::from_nanos(n);
            Ok(())
        },
    },
    Field {
        name: "seed",
        get: |c| c.seed,
        set: |c, n| {
            c.seed = n;
            Ok(())
        },
    },
];

/// The config as an ITF record.
pub fn config_record(c: &Config) -> Value {
    let mut m = Map::new();
    for f in &FIELDS {
        m.insert(f.name.to_string(), int((f.get)(c)));
    }
    Value::Object(m)
}

/// Reads a config record: every field present, none unknown.
///
/// # Errors
///
/// The first missing, unknown or out-of-range field.
pub fn config_from(v: &Value) -> Result<Config, ScriptError> {
    let o = v
        .as_object()
        .ok_or_else(|| ScriptError::Schema(format!("config is not an object: {v}")))?;
    config_from_fields(o)
}

/// Reads a config record's fields: every field present, none unknown.
pub(crate) fn config_from_fields(o: &Map<String, Value>) -> Result<Config, ScriptError> {
    let schema = ScriptError::Schema;
    if let Some(k) = o.keys().find(|k| !FIELDS.iter().any(|f| f.name == *k)) {
        return Err(schema(format!("config: unknown field {k:?}")));
    }
    let mut c = Config::default();
    for f in &FIELDS {
        let raw = o
            .get(f.name)
            .ok_or_else(|| schema(format!("config: missing field {:?}", f.name)))?;
        let n = get_int(raw).map_err(|e| schema(format!("config.{}: {e}", f.name)))?;
        (f.set)(&mut c, n).map_err(|e| schema(format!("config.{}: {e}", f.name)))?;
    }
    Ok(c)
}

/// The input as an ITF variant.
pub fn input_value(input: &Input) -> Value {
    match input {
        Input::Acquire { id } => variant("Acquire", json!({ "id": int(*id) })),
        Input::Reject {
            id,
            token,
            generation,
            send,
        } => variant(
            "Reject",
            json!({
                "id": int(*id),
                "token": token,
                "generation": int(*generation),
                "send": int(u64::from(*send)),
            }),
        ),
        Input::Cancel { id } => variant("Cancel", json!({ "id": int(*id) })),
        Input::Refreshed { attempt, result } => {
            let result = match result {
                RefreshResult::Ok { token, expires_at } => variant(
                    "Ok",
                    json!({ "token": token, "expires_at": option(*expires_at) }),
                ),
                RefreshResult::Transient { error } => {
                    variant("Transient", json!({ "error": error }))
                }
                RefreshResult::Permanent { error } => {
                    variant("Permanent", json!({ "error": error }))
                }
            };
            variant(
                "Refreshed",
                json!({ "attempt": int(*attempt), "result": result }),
            )
        }
        Input::Timeout => variant("Timeout", unit()),
        Input::SetToken { token, expires_at } => variant(
            "SetToken",
            json!({ "token": token, "expires_at": option(*expires_at) }),
        ),
        Input::Invalidate { generation } => {
            variant("Invalidate", json!({ "generation": int(*generation) }))
        }
    }
}

fn field<'a>(v: &'a Value, tag: &str, name: &str) -> Result<&'a Value, String> {
    v.get(name)
        .ok_or_else(|| format!("{tag} lacks field {name:?}"))
}

fn int_field(v: &Value, tag: &str, name: &str) -> Result<u64, String> {
    get_int(field(v, tag, name)?).map_err(|e| format!("{tag}.{name}: {e}"))
}

fn str_field(v: &Value, tag: &str, name: &str) -> Result<String, String> {
    field(v, tag, name)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{tag}.{name} is not a string"))
}

fn opt_field(v: &Value, tag: &str, name: &str) -> Result<Option<u64>, String> {
    get_opt(field(v, tag, name)?).map_err(|e| format!("{tag}.{name}: {e}"))
}

/// Reads an input variant.
///
/// # Errors
///
/// What is wrong with it, in words.
pub fn input_from(v: &Value) -> Result<Input, String> {
    let (tag, val) = get_variant(v)?;
    Ok(match tag {
        "Acquire" => Input::Acquire {
            id: int_field(val, tag, "id")?,
        },
        "Reject" => Input::Reject {
            id: int_field(val, tag, "id")?,
            token: str_field(val, tag, "token")?,
            generation: int_field(val, tag, "generation")?,
            send: narrow(int_field(val, tag, "send")?, "Reject.send")?,
        },
        "Cancel" => Input::Cancel {
            id: int_field(val, tag, "id")?,
        },
        "Refreshed" => {
            let attempt = int_field(val, tag, "attempt")?;
            let (rtag, r) = get_variant(field(val, tag, "result")?)?;
            let result = match rtag {
                "Ok" => RefreshResult::Ok {
                    token: str_field(r, "Ok", "token")?,
                    expires_at: opt_field(r, "Ok", "expires_at")?,
                },
                "Transient" => RefreshResult::Transient {
                    error: str_field(r, "Transient", "error")?,
                },
                "Permanent" => RefreshResult::Permanent {
                    error: str_field(r, "Permanent", "error")?,
                },
                other => return Err(format!("unknown refresh result {other:?}")),
            };
            Input::Refreshed { attempt, result }
        }
        "Timeout" => Input::Timeout,
        "SetToken" => Input::SetToken {
            token: str_field(val, tag, "token")?,
            expires_at: opt_field(val, tag, "expires_at")?,
        },
        "Invalidate" => Input::Invalidate {
            generation: int_field(val, tag, "generation")?,
        },
        other => return Err(format!("unknown input {other:?}")),
    })
}

impl Script {
    /// The script as one JSON object: `{"config": {...}, "inputs": [{"now":
    /// N, "input": V}, ...]}`.
    pub fn to_json(&self) -> Value {
        let inputs: Vec<Value> = self
            .inputs
            .iter()
            .map(|(now, i)| json!({ "now": int(*now), "input": input_value(i) }))
            .collect();
        json!({ "config": config_record(&self.config), "inputs": inputs })
    }

    /// Reads a script from one line of JSON.
    ///
    /// # Errors
    ///
    /// [`ScriptError::Json`] if the line is not JSON, [`ScriptError::Schema`]
    /// if it is not a script.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde_json::json;
    /// use tokenflight::Config;
    /// use tokenflight_sim::script::{Input, Script};
    ///
    /// let mut v = Script { config: Config::default(), inputs: vec![] }.to_json();
    /// v["inputs"] = json!([{"now": {"#bigint": "5"}, "input": {"tag": "Acquire", "value": {"id": 1}}}]);
    /// let line = v.to_string();
    /// let s = Script::parse(&line).unwrap();
    /// assert_eq!(s.inputs, vec![(5, Input::Acquire { id: 1 })]);
    /// assert_eq!(Script::parse("{").unwrap_err().kind(), "json");
    /// ```
    pub fn parse(line: &str) -> Result<Script, ScriptError> {
        if let Some(script) = crate::fast_script::parse(line) {
            return Ok(script);
        }
        let v: Value = serde_json::from_str(line).map_err(|e| ScriptError::Json(e.to_string()))?;
        Script::from_json(&v)
    }

    /// Reads a script from its JSON object.
    ///
    /// # Errors
    ///
    /// [`ScriptError::Schema`] if it is not a script.
    pub fn from_json(v: &Value) -> Result<Script, ScriptError> {
        let schema = ScriptError::Schema;
        let o = v
            .as_object()
            .ok_or_else(|| schema("a script is a JSON object".into()))?;
        if let Some(k) = o.keys().find(|k| *k != "config" && *k != "inputs") {
            return Err(schema(format!("unknown field {k:?}")));
        }
        let config = config_from(o.get("config").ok_or_else(|| schema("no config".into()))?)?;
        let raw = o
            .get("inputs")
            .and_then(Value::as_array)
            .ok_or_else(|| schema("no inputs array".into()))?;
        let mut inputs = Vec::with_capacity(raw.len());
        for (i, step) in raw.iter().enumerate() {
            let now = step
                .get("now")
                .ok_or_else(|| "no now".to_string())
                .and_then(get_int)
                .map_err(|e| schema(format!("inputs[{i}].now: {e}")))?;
            let input = step
                .get("input")
                .ok_or_else(|| "no input".to_string())
                .and_then(input_from)
                .map_err(|e| schema(format!("inputs[{i}].input: {e}")))?;
            inputs.push((now, input));
        }
        Ok(Script { config, inputs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_input() -> Vec<(u64, Input)> {
        vec![
            (0, Input::Acquire { id: 1 }),
            (
                1,
                Input::Reject {
                    id: 1,
                    token: "t".into(),
                    generation: u64::MAX,
                    send: u32::MAX,
                },
            ),
            (2, Input::Cancel { id: 1 }),
            (
                3,
                Input::Refreshed {
                    attempt: 1,
                    result: RefreshResult::Ok {
                        token: "t".into(),
                        expires_at: Some(u64::MAX),
                    },
                },
            ),
            (
                4,
                Input::Refreshed {
                    attempt: 2,
                    result: RefreshResult::Transient { error: "e".into() },
                },
            ),
            (
                5,
                Input::Refreshed {
                    attempt: 3,
                    result: RefreshResult::Permanent { error: "e".into() },
                },
            ),
            (6, Input::Timeout),
            (
                u64::MAX,
                Input::SetToken {
                    token: "t".into(),
                    expires_at: None,
                },
            ),
            (7, Input::Invalidate { generation: 0 }),
        ]
    }

    #[test]
    fn a_script_round_trips_through_json() {
        let mut config = Config::default();
        config.seed = u64::MAX;
        config.skew_jitter = Duration::from_nanos(1);
        let s = Script {
            config,
            inputs: every_input(),
        };
        let line = s.to_json().to_string();
        assert_eq!(Script::parse(&line), Ok(s));
    }

    /// The fast reader and the precise one read the same scripts the same
    /// way (the fast one may only give up).
    #[test]
    fn both_readers_agree() {
        let precise = |line: &str| {
            let v: Value = serde_json::from_str(line).unwrap();
            Script::from_json(&v)
        };
        for s in crate::random_script::draw_many(0, 500) {
            let line = s.to_json().to_string();
            assert_eq!(crate::fast_script::parse(&line).as_ref(), Some(&s));
            assert_eq!(precise(&line).as_ref(), Ok(&s));
        }
        let mut v = Script {
            config: Config::default(),
            inputs: every_input(),
        }
        .to_json();
        // Lenient spellings: plain numbers, decimal strings, null options.
        v["config"]["seed"] = json!(7);
        v["config"]["cooldown_ns"] = json!("123");
        v["inputs"][0]["now"] = json!("18446744073709551615");
        v["inputs"][7]["input"]["value"]["expires_at"] = json!(null);
        v["inputs"][3]["input"]["value"]["result"]["value"]["expires_at"] = json!(5);
        let line = v.to_string();
        let fast = crate::fast_script::parse(&line).expect("read fast");
        assert_eq!(Ok(fast), precise(&line));
        // What the precise reader refuses, the fast one does not read.
        for bad in [
            json!({"config": v["config"], "inputs": [], "extra": 1}),
            json!({"config": {"seed": 1}, "inputs": []}),
            json!({"config": v["config"], "inputs": [{"now": -1, "input": "Timeout"}]}),
            json!({"config": v["config"], "inputs": [{"now": 1.5, "input": {"tag": "Timeout", "value": {"#tup": []}}}]}),
            json!({"config": v["config"], "inputs": [{"now": 1, "input": {"tag": "Reject", "value": {"id": 1, "token": "t", "generation": 1, "send": 4294967296u64}}}]}),
        ] {
            let line = bad.to_string();
            assert!(precise(&line).is_err(), "{line}");
            assert!(crate::fast_script::parse(&line).is_none(), "{line}");
        }
    }

    #[test]
    fn malformed_scripts_are_typed() {
        let good = Script {
            config: Config::default(),
            inputs: vec![],
        }
        .to_json();
        let kind = |v: &Value| Script::from_json(v).unwrap_err();
        let mut missing = good.clone();
        missing["config"]
            .as_object_mut()
            .unwrap()
            .remove("cooldown_ns");
        assert!(kind(&missing).detail().contains("cooldown_ns"));
        let mut unknown = good.clone();
        unknown["config"]["cooldown_ms"] = json!(1);
        assert!(kind(&unknown).detail().contains("cooldown_ms"));
        let mut wide = good.clone();
        wide["config"]["max_auth_retries"] = int(1 << 40);
        assert!(kind(&wide).detail().contains("out of range"));
        let mut bad_tag = good;
        bad_tag["inputs"] = json!([{"now": 0, "input": {"tag": "Login", "value": {}}}]);
        let e = kind(&bad_tag);
        assert_eq!(e.kind(), "schema");
        assert!(e.detail().contains("inputs[0]"), "{e}");
        assert_eq!(Script::parse("not json").unwrap_err().kind(), "json");
    }
}
