//! The Informal Trace Format's value encoding, as the conformance kit uses
//! it: integers are `{"#bigint": "N"}`, a variant is `{"tag": T, "value":
//! V}` (as Quint writes sum types), unit is `{"#tup": []}`, an option is the
//! variant `Some(v)` or `None(unit)`.
//!
//! Readers are lenient where it costs nothing: an integer may also be a
//! plain JSON number or a decimal string, so hand-written scripts stay
//! readable. Writers always write the canonical form.

use serde_json::{json, Value};

/// An ITF integer.
pub fn int(n: u64) -> Value {
    json!({ "#bigint": n.to_string() })
}

/// An ITF variant.
pub fn variant(tag: &str, value: Value) -> Value {
    json!({ "tag": tag, "value": value })
}

/// The ITF unit value.
pub fn unit() -> Value {
    json!({ "#tup": [] })
}

/// An ITF option of an integer.
pub fn option(v: Option<u64>) -> Value {
    match v {
        Some(n) => variant("Some", int(n)),
        None => variant("None", unit()),
    }
}

/// Reads an unsigned 64-bit integer: `{"#bigint": "N"}`, a JSON number or
/// a decimal string.
///
/// # Errors
///
/// A description of what was found instead.
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// use tokenflight_sim::itf::get_int;
///
/// assert_eq!(get_int(&json!({"#bigint": "18446744073709551615"})), Ok(u64::MAX));
/// assert_eq!(get_int(&json!(7)), Ok(7));
/// assert!(get_int(&json!(-1)).is_err());
/// ```
pub fn get_int(v: &Value) -> Result<u64, String> {
    let parsed = match v {
        Value::Object(o) => o.get("#bigint").and_then(Value::as_str).map(str::parse),
        Value::Number(n) => return n.as_u64().ok_or_else(|| format!("not a u64: {v}")),
        Value::String(s) => Some(s.parse()),
        _ => None,
    };
    match parsed {
        Some(Ok(n)) => Ok(n),
        Some(Err(_)) => Err(format!("integer out of range (0..=2^64-1): {v}")),
        None => Err(format!("not an integer: {v}")),
    }
}

/// Reads an ITF option of an integer; JSON `null` is also `None` and a bare
/// integer is also `Some`.
///
/// # Errors
///
/// A description of what was found instead.
pub fn get_opt(v: &Value) -> Result<Option<u64>, String> {
    if v.is_null() {
        return Ok(None);
    }
    match v.get("tag").and_then(Value::as_str) {
        Some("Some") => Ok(Some(get_int(&v["value"])?)),
        Some("None") => Ok(None),
        _ => get_int(v)
            .map(Some)
            .map_err(|_| format!("not an option: {v}")),
    }
}

/// The tag and value of a variant; a bare string is a variant with unit.
///
/// # Errors
///
/// A description of what was found instead.
pub fn get_variant(v: &Value) -> Result<(&str, &Value), String> {
    if let Some(tag) = v.as_str() {
        return Ok((tag, &Value::Null));
    }
    let tag = v
        .get("tag")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("not a variant (no \"tag\"): {v}"))?;
    Ok((tag, v.get("value").unwrap_or(&Value::Null)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_at_the_edges() {
        for n in [0, 1, u64::from(u32::MAX) + 1, u64::MAX] {
            assert_eq!(get_int(&int(n)), Ok(n));
            assert_eq!(get_opt(&option(Some(n))), Ok(Some(n)));
        }
        assert_eq!(get_opt(&option(None)), Ok(None));
        assert!(get_int(&json!({"#bigint": "18446744073709551616"})).is_err());
        assert!(get_int(&json!(1.5)).is_err());
        assert!(get_int(&json!("x")).is_err());
    }
}
