//! Strict COSE_Sign1 splitting shared by statements and receipts.
//!
//! We split the envelope ourselves over ciborium rather than through coset's
//! typed parser because (a) coset refuses unregistered algorithm ids at parse
//! time, and we owe the client a precise "Bad Signature Algorithm", and (b)
//! coset's `tbs_detached_data` asserts (panics) on attached payloads. coset
//! still builds every `Sig_structure` ([`sig_structure`]) and every object we
//! sign for clients.

use ciborium::value::Value;
use coset::{SignatureContext, sig_structure_data};

use crate::cbor::{self, as_i64};

/// The four parts of a tagged COSE_Sign1, with byte strings exactly as
/// received and the protected header decoded.
#[derive(Debug, Clone)]
pub struct Sign1Parts {
    pub protected: Vec<u8>,
    pub protected_map: Vec<(Value, Value)>,
    pub unprotected: Vec<(Value, Value)>,
    pub payload: Option<Vec<u8>>,
    pub signature: Vec<u8>,
}

/// Most parameters one header map may hold. Real statements and receipts
/// carry fewer than 20; the cap bounds every per-label check made before a
/// signature is verified (an unauthenticated 64 KiB body once held ~16,000
/// labels and cost ~230 ms of CPU in the uniqueness check alone).
pub const MAX_HEADER_LABELS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("{0}")]
    Cbor(String),
    #[error("not a COSE_Sign1: the outer item is not tag 18")]
    NotTag18,
    #[error("not a COSE_Sign1: {0}")]
    Shape(&'static str),
    #[error("the {where_} header repeats label {label}")]
    DuplicateLabel { where_: &'static str, label: String },
    #[error("the {where_} header has {count} parameters; at most {MAX_HEADER_LABELS} are accepted")]
    TooManyLabels { where_: &'static str, count: usize },
}

/// Splits a tagged COSE_Sign1; one CBOR item, no trailing bytes.
pub fn split(bytes: &[u8]) -> Result<Sign1Parts, SplitError> {
    let v = cbor::decode(bytes).map_err(|e| SplitError::Cbor(e.to_string()))?;
    let inner = match v {
        Value::Tag(18, inner) => *inner,
        Value::Tag(..) | Value::Array(_) => return Err(SplitError::NotTag18),
        _ => return Err(SplitError::NotTag18),
    };
    let Value::Array(parts) = inner else {
        return Err(SplitError::Shape("tag 18 does not hold an array"));
    };
    let [protected, unprotected, payload, signature]: [Value; 4] = parts
        .try_into()
        .map_err(|_| SplitError::Shape("the array must have exactly 4 elements"))?;
    let Value::Bytes(protected) = protected else {
        return Err(SplitError::Shape("protected header is not a bstr"));
    };
    let protected_map = if protected.is_empty() {
        Vec::new()
    } else {
        match cbor::decode(&protected)
            .map_err(|e| SplitError::Cbor(format!("protected header: {e}")))?
        {
            Value::Map(m) => m,
            _ => return Err(SplitError::Shape("protected header is not a map")),
        }
    };
    check_unique(&protected_map, "protected")?;
    let Value::Map(unprotected) = unprotected else {
        return Err(SplitError::Shape("unprotected header is not a map"));
    };
    check_unique(&unprotected, "unprotected")?;
    let payload = match payload {
        Value::Null => None,
        Value::Bytes(b) => Some(b),
        _ => return Err(SplitError::Shape("payload is neither a bstr nor nil")),
    };
    let Value::Bytes(signature) = signature else {
        return Err(SplitError::Shape("signature is not a bstr"));
    };
    Ok(Sign1Parts {
        protected,
        protected_map,
        unprotected,
        payload,
        signature,
    })
}

/// At most [`MAX_HEADER_LABELS`] labels, none repeated. Quadratic in the
/// label count, which the cap keeps at ≤ 2,016 comparisons.
fn check_unique(m: &[(Value, Value)], where_: &'static str) -> Result<(), SplitError> {
    if m.len() > MAX_HEADER_LABELS {
        return Err(SplitError::TooManyLabels {
            where_,
            count: m.len(),
        });
    }
    for (i, (k, _)) in m.iter().enumerate() {
        if m[..i].iter().any(|(k2, _)| k2 == k) {
            let label = as_i64(k)
                .map(|i| i.to_string())
                .unwrap_or_else(|| format!("{k:?}"));
            return Err(SplitError::DuplicateLabel { where_, label });
        }
    }
    Ok(())
}

/// RFC 9052 §4.4 Sig_structure for COSE_Sign1 over the protected bytes as
/// received, empty external AAD.
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let header = coset::ProtectedHeader {
        original_data: Some(protected.to_vec()),
        header: Default::default(),
    };
    sig_structure_data(SignatureContext::CoseSign1, header, None, &[], payload)
}

/// tag 18 [protected, unprotected, payload, signature] from parts.
pub fn encode_sign1(
    protected: &[u8],
    unprotected: Vec<(Value, Value)>,
    payload: Option<&[u8]>,
    sig: &[u8],
) -> Vec<u8> {
    cbor::encode(&Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(protected.to_vec()),
            Value::Map(unprotected),
            payload
                .map(|p| Value::Bytes(p.to_vec()))
                .unwrap_or(Value::Null),
            Value::Bytes(sig.to_vec()),
        ])),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coset_and_our_sig_structure_agree_with_the_rfc_layout() {
        let protected = cbor::encode(&Value::Map(vec![(cbor::int(1), cbor::int(-7))]));
        let ours = sig_structure(&protected, b"payload");
        let manual = cbor::encode(&Value::Array(vec![
            Value::Text("Signature1".into()),
            Value::Bytes(protected.clone()),
            Value::Bytes(vec![]),
            Value::Bytes(b"payload".to_vec()),
        ]));
        assert_eq!(ours, manual);
    }

    #[test]
    fn split_rejects_shapes_precisely() {
        let good = encode_sign1(&[0xa1, 0x01, 0x26], vec![], Some(b"p"), &[1, 2]);
        assert!(split(&good).is_ok());
        assert_eq!(split(&good[1..]).unwrap_err(), SplitError::NotTag18);
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(split(&trailing), Err(SplitError::Cbor(_))));
        // {1: -7, 1: -7}
        let dup = encode_sign1(&[0xa2, 0x01, 0x26, 0x01, 0x26], vec![], Some(b"p"), &[1]);
        assert!(matches!(
            split(&dup),
            Err(SplitError::DuplicateLabel { .. })
        ));
    }
}

#[cfg(test)]
mod header_cap_tests {
    use super::*;

    fn sign1(protected: Vec<(Value, Value)>, unprotected: Vec<(Value, Value)>) -> Vec<u8> {
        let protected = cbor::encode(&Value::Map(protected));
        cbor::encode(&Value::Tag(
            18,
            Box::new(Value::Array(vec![
                Value::Bytes(protected),
                Value::Map(unprotected),
                Value::Bytes(b"payload".to_vec()),
                Value::Bytes(vec![0; 64]),
            ])),
        ))
    }

    fn labels(n: i64) -> Vec<(Value, Value)> {
        (0..n)
            .map(|i| (cbor::int(1000 + i), cbor::int(0)))
            .collect()
    }

    /// Regression (security issue, finding 5): a header flood was accepted
    /// and checked in O(n²) before any signature check.
    #[test]
    fn header_floods_are_refused_before_any_per_label_work() {
        let cap = MAX_HEADER_LABELS as i64;
        assert!(split(&sign1(labels(cap), labels(cap))).is_ok());
        assert_eq!(
            split(&sign1(labels(16_000), Vec::new())).unwrap_err(),
            SplitError::TooManyLabels {
                where_: "protected",
                count: 16_000
            }
        );
        assert_eq!(
            split(&sign1(Vec::new(), labels(cap + 1))).unwrap_err(),
            SplitError::TooManyLabels {
                where_: "unprotected",
                count: MAX_HEADER_LABELS + 1
            }
        );
    }
}
