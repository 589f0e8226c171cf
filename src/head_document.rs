//! The signed tree head as a CBOR document: what `GET /checkpoint` serves,
//! what the monitor reads, and (with `previous_size`) each
//! `vcon-scitt/heads/<size>` object in the bucket (proto/checkpoint.cddl).
//! One codec, so the three can never drift apart.

use ciborium::value::Value;

use crate::merkle::Hash;
use crate::tree_head::{SignedTreeHead, TreeHead};

/// A signed head, and in the bucket the size of the head before it: a
/// reader that knows size `a` walks back from the checkpoint's size to `a`
/// and so learns every head in between (a receipt is stable at the first
/// head that covers its entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadDocument {
    pub head: SignedTreeHead,
    /// `None` in `GET /checkpoint`; in the bucket, 0 before the first head.
    pub previous_size: Option<u64>,
}

impl HeadDocument {
    pub fn encode(&self) -> Vec<u8> {
        let h = &self.head;
        let mut m = vec![
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
        ];
        if let Some(p) = self.previous_size {
            m.push((
                Value::Text("previous_size".into()),
                Value::Integer(p.into()),
            ));
        }
        crate::cbor::encode(&Value::Map(m))
    }

    /// Decodes and checks the shape (not the signature: the reader checks
    /// that against the keys it trusts).
    pub fn decode(bytes: &[u8]) -> Result<HeadDocument, String> {
        let Value::Map(m) = crate::cbor::decode(bytes).map_err(|e| e.to_string())? else {
            return Err("not a CBOR map".into());
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
        let head = SignedTreeHead {
            head: TreeHead {
                size: uint("tree_size")?,
                root,
                timestamp_ms: uint("timestamp_ms")?,
            },
            signature: bytes("signed_tree_head")?.clone(),
        };
        let previous_size = match get("previous_size") {
            None => None,
            Some(_) => Some(uint("previous_size")?),
        };
        if let Some(p) = previous_size
            && p >= head.head.size
        {
            return Err(format!(
                "previous_size {p} is not below tree_size {}",
                head.head.size
            ));
        }
        Ok(HeadDocument {
            head,
            previous_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_document_round_trips_and_a_chain_that_does_not_go_back_is_refused() {
        let doc = HeadDocument {
            head: SignedTreeHead {
                head: TreeHead {
                    size: 300,
                    root: [5; 32],
                    timestamp_ms: 1_700_000_000_000,
                },
                signature: vec![1, 2, 3],
            },
            previous_size: Some(256),
        };
        assert_eq!(HeadDocument::decode(&doc.encode()), Ok(doc.clone()));
        let plain = HeadDocument {
            previous_size: None,
            ..doc.clone()
        };
        assert_eq!(HeadDocument::decode(&plain.encode()), Ok(plain));
        let bad = HeadDocument {
            previous_size: Some(300),
            ..doc
        };
        assert!(HeadDocument::decode(&bad.encode()).is_err());
        assert!(HeadDocument::decode(b"\x01").is_err());
    }
}
