//! A fast reader for well-formed scripts: serde straight into typed
//! structs, without a `serde_json::Value` tree in between (which is most of
//! the oracle's time otherwise). It accepts nothing the precise reader in
//! [`crate::script`] refuses; whatever it cannot read (a malformed line, a
//! lenient spelling such as a bare-string variant) goes to that reader,
//! which gives the answer and the error message.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::itf::get_opt;
use crate::script::{config_from_fields, Input, RefreshResult, Script};

/// An ITF integer: `{"#bigint": "N"}`, a JSON number or a decimal string.
struct Int(u64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ITF integer")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Int, E> {
                Ok(Int(n))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Int, E> {
                s.parse().map(Int).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Int, A::Error> {
                let mut n = None;
                while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    if k == "#bigint" {
                        let s: std::borrow::Cow<'de, str> = m.next_value()?;
                        n = Some(s.parse().map_err(de::Error::custom)?);
                    } else {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
                n.map(Int).ok_or_else(|| de::Error::custom("no #bigint"))
            }
        }
        d.deserialize_any(V)
    }
}

/// An option of an integer, read as the precise reader reads it.
struct Opt(Option<u64>);

impl<'de> Deserialize<'de> for Opt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        get_opt(&v).map(Opt).map_err(de::Error::custom)
    }
}

#[derive(Deserialize)]
#[serde(tag = "tag", content = "value")]
enum RawResult {
    Ok { token: String, expires_at: Opt },
    Transient { error: String },
    Permanent { error: String },
}

#[derive(Deserialize)]
#[serde(tag = "tag", content = "value")]
enum RawInput {
    Acquire {
        id: Int,
    },
    Reject {
        id: Int,
        token: String,
        generation: Int,
        send: Int,
    },
    Cancel {
        id: Int,
    },
    Refreshed {
        attempt: Int,
        result: RawResult,
    },
    Timeout(IgnoredAny),
    SetToken {
        token: String,
        expires_at: Opt,
    },
    Invalidate {
        generation: Int,
    },
}

#[derive(Deserialize)]
struct RawStep {
    now: Int,
    input: RawInput,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScript {
    config: serde_json::Map<String, Value>,
    inputs: Vec<RawStep>,
}

/// The script on `line`, if the fast reader can read it.
pub(crate) fn parse(line: &str) -> Option<Script> {
    let raw: RawScript = serde_json::from_str(line).ok()?;
    let config = config_from_fields(&raw.config).ok()?;
    let mut inputs = Vec::with_capacity(raw.inputs.len());
    for step in raw.inputs {
        let input = match step.input {
            RawInput::Acquire { id } => Input::Acquire { id: id.0 },
            RawInput::Reject {
                id,
                token,
                generation,
                send,
            } => Input::Reject {
                id: id.0,
                token,
                generation: generation.0,
                send: u32::try_from(send.0).ok()?,
            },
            RawInput::Cancel { id } => Input::Cancel { id: id.0 },
            RawInput::Refreshed { attempt, result } => Input::Refreshed {
                attempt: attempt.0,
                result: match result {
                    RawResult::Ok { token, expires_at } => RefreshResult::Ok {
                        token,
                        expires_at: expires_at.0,
                    },
                    RawResult::Transient { error } => RefreshResult::Transient { error },
                    RawResult::Permanent { error } => RefreshResult::Permanent { error },
                },
            },
            RawInput::Timeout(_) => Input::Timeout,
            RawInput::SetToken { token, expires_at } => Input::SetToken {
                token,
                expires_at: expires_at.0,
            },
            RawInput::Invalidate { generation } => Input::Invalidate {
                generation: generation.0,
            },
        };
        inputs.push((step.now.0, input));
    }
    Some(Script { config, inputs })
}
