//! CBOR helpers over ciborium: bounded decoding that rejects trailing bytes,
//! and infallible encoding into a Vec.

use ciborium::value::Value;

/// Deepest nesting accepted anywhere in input (statements are shallow; this
/// only has to stop stack exhaustion).
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CborError {
    #[error("invalid CBOR: {0}")]
    Invalid(String),
    #[error("{0} trailing bytes after the CBOR item")]
    Trailing(usize),
}

/// Decodes exactly one CBOR item; nesting is limited to [`MAX_DEPTH`].
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    let mut rest = bytes;
    let v: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH)
        .map_err(|e| CborError::Invalid(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CborError::Trailing(rest.len()));
    }
    Ok(v)
}

/// Encodes a value. ciborium emits preferred (shortest) argument encodings
/// and keeps map order as given, so callers that build maps in RFC 8949
/// §4.2.1 key order get deterministic bytes.
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    if ciborium::ser::into_writer(v, &mut out).is_err() {
        out.clear();
    }
    out
}

pub fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

/// Looks up an integer label in a CBOR map.
pub fn map_get(m: &[(Value, Value)], label: i64) -> Option<&Value> {
    m.iter()
        .find(|(k, _)| as_i64(k) == Some(label))
        .map(|(_, v)| v)
}

pub fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => i64::try_from(i128::from(*i)).ok(),
        _ => None,
    }
}

pub fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Integer(i) => u64::try_from(i128::from(*i)).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_bytes_and_deep_nesting_are_rejected() {
        assert_eq!(decode(&[0x01, 0x02]), Err(CborError::Trailing(1)));
        let deep: Vec<u8> = std::iter::repeat_n(0x81u8, 100).chain([0x00]).collect();
        assert!(decode(&deep).is_err());
        let ok: Vec<u8> = std::iter::repeat_n(0x81u8, 10).chain([0x00]).collect();
        assert!(decode(&ok).is_ok());
    }
}
