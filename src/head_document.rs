//! Signed tree heads as CBOR documents (proto/tree-head.cddl): what
//! `GET /checkpoint` serves and the monitor reads ([`HeadDocument`]), and
//! the `vcon-scitt/heads/<size>` objects in the bucket ([`HeadBatch`]). One
//! codec, so they can never drift apart.

use ciborium::value::Value;

use crate::merkle::Hash;
use crate::tree_head::{SignedTreeHead, TreeHead};

/// One signed head: `checkpoint` in proto/tree-head.cddl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadDocument {
    pub head: SignedTreeHead,
}

impl HeadDocument {
    pub fn encode(&self) -> Vec<u8> {
        crate::cbor::encode(&head_value(&self.head))
    }

    /// Decodes and checks the shape (not the signature: the reader checks
    /// that against the keys it trusts).
    pub fn decode(bytes: &[u8]) -> Result<HeadDocument, String> {
        let v = crate::cbor::decode(bytes).map_err(|e| e.to_string())?;
        Ok(HeadDocument {
            head: head_from_value(&v)?,
        })
    }
}

/// The signed heads of one publishing round, `vcon-scitt/heads/<size of
/// the last>` in the bucket (`published-heads` in proto/tree-head.cddl):
/// every head in `(previous_size, last]`, oldest first. `previous_size` is
/// the round before's last head (0 before the first), so a reader that
/// knows size `a` walks back from the checkpoint's size to `a` and learns
/// every head in between; a receipt is stable at the first head that covers
/// its entry. One object per round, not per head: a round covers tens of
/// batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadBatch {
    pub previous_size: u64,
    pub heads: Vec<SignedTreeHead>,
}

impl HeadBatch {
    pub fn encode(&self) -> Vec<u8> {
        crate::cbor::encode(&Value::Map(vec![
            (
                Value::Text("previous_size".into()),
                Value::Integer(self.previous_size.into()),
            ),
            (
                Value::Text("heads".into()),
                Value::Array(self.heads.iter().map(head_value).collect()),
            ),
        ]))
    }

    /// Decodes and checks the shape: at least one head, sizes strictly
    /// increasing, all above `previous_size`.
    pub fn decode(bytes: &[u8]) -> Result<HeadBatch, String> {
        let Value::Map(m) = crate::cbor::decode(bytes).map_err(|e| e.to_string())? else {
            return Err("not a CBOR map".into());
        };
        let get = |k: &str| {
            m.iter()
                .find(|(key, _)| key.as_text() == Some(k))
                .map(|(_, v)| v)
                .ok_or_else(|| format!("no {k}"))
        };
        let previous_size = crate::cbor::as_u64(get("previous_size")?)
            .ok_or("previous_size is not an unsigned integer")?;
        let Value::Array(items) = get("heads")? else {
            return Err("heads is not an array".into());
        };
        let heads = items
            .iter()
            .map(head_from_value)
            .collect::<Result<Vec<_>, _>>()?;
        let mut at = previous_size;
        for h in &heads {
            if h.head.size <= at {
                return Err(format!(
                    "head sizes must increase from previous_size {previous_size}: {} after {at}",
                    h.head.size
                ));
            }
            at = h.head.size;
        }
        if heads.is_empty() {
            return Err("no heads".into());
        }
        Ok(HeadBatch {
            previous_size,
            heads,
        })
    }
}

fn head_value(h: &SignedTreeHead) -> Value {
    Value::Map(vec![
        (
            Value::Text("tree_size".into()),
            Value::Integer(h.head.size.into()),
        ),
        (
            Value::Text("root".into()),
            Value::Bytes(h.head.root.to_vec()),
        ),
        (
            Value::Text("timestamp_ms".into()),
            Value::Integer(h.head.timestamp_ms.into()),
        ),
        (
            Value::Text("signed_tree_head".into()),
            Value::Bytes(h.signature.clone()),
        ),
    ])
}

fn head_from_value(v: &Value) -> Result<SignedTreeHead, String> {
    let Value::Map(m) = v else {
        return Err("a head is not a CBOR map".into());
    };
    let get = |k: &str| {
        m.iter()
            .find(|(key, _)| key.as_text() == Some(k))
            .map(|(_, v)| v)
    };
    let uint = |k: &str| -> Result<u64, String> {
        get(k)
            .and_then(crate::cbor::as_u64)
            .ok_or_else(|| format!("{k} is missing or not an unsigned integer"))
    };
    let bytes = |k: &str| -> Result<&Vec<u8>, String> {
        get(k)
            .and_then(Value::as_bytes)
            .ok_or_else(|| format!("{k} is missing or not a byte string"))
    };
    let root = <Hash>::try_from(bytes("root")?.as_slice())
        .map_err(|_| "root is not 32 bytes".to_string())?;
    Ok(SignedTreeHead {
        head: TreeHead {
            size: uint("tree_size")?,
            root,
            timestamp_ms: uint("timestamp_ms")?,
        },
        signature: bytes("signed_tree_head")?.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(size: u64) -> SignedTreeHead {
        SignedTreeHead {
            head: TreeHead {
                size,
                root: [size as u8; 32],
                timestamp_ms: 1_700_000_000_000 + size,
            },
            signature: vec![1, 2, 3],
        }
    }

    #[test]
    fn head_documents_and_batches_round_trip_and_a_batch_must_go_forward() {
        let doc = HeadDocument { head: head(300) };
        assert_eq!(HeadDocument::decode(&doc.encode()), Ok(doc));
        let batch = HeadBatch {
            previous_size: 256,
            heads: vec![head(270), head(300)],
        };
        assert_eq!(HeadBatch::decode(&batch.encode()), Ok(batch.clone()));
        for bad in [
            HeadBatch {
                previous_size: 270,
                ..batch.clone()
            },
            HeadBatch {
                previous_size: 0,
                heads: vec![head(300), head(270)],
            },
            HeadBatch {
                previous_size: 0,
                heads: vec![],
            },
        ] {
            assert!(HeadBatch::decode(&bad.encode()).is_err(), "{bad:?}");
        }
        assert!(HeadDocument::decode(b"\x01").is_err());
    }
}
