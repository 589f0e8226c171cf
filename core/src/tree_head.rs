//! Tree heads: what the log signs once per batch.

use crate::merkle::Hash;

/// An unsigned tree head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
    /// Milliseconds since the Unix epoch; never decreases along the log.
    pub timestamp_ms: u64,
}

/// A tree head with the opaque signature object its [`TreeHeadSigner`] made
/// (for vcon-scitt: a COSE_Sign1 over the detached root, see [`crate::receipt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTreeHead {
    pub head: TreeHead,
    pub signature: Vec<u8>,
}

impl SignedTreeHead {
    /// Storage record: size (u64 BE) ‖ timestamp ms (u64 BE) ‖ root ‖ signature.
    pub fn to_record(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(48 + self.signature.len());
        v.extend_from_slice(&self.head.size.to_be_bytes());
        v.extend_from_slice(&self.head.timestamp_ms.to_be_bytes());
        v.extend_from_slice(&self.head.root);
        v.extend_from_slice(&self.signature);
        v
    }

    pub fn from_record(b: &[u8]) -> Option<Self> {
        let size = u64::from_be_bytes(b.get(0..8)?.try_into().ok()?);
        let timestamp_ms = u64::from_be_bytes(b.get(8..16)?.try_into().ok()?);
        let root: Hash = b.get(16..48)?.try_into().ok()?;
        Some(SignedTreeHead {
            head: TreeHead {
                size,
                root,
                timestamp_ms,
            },
            signature: b[48..].to_vec(),
        })
    }
}

/// Checks stored tree-head signatures (fsck, the sequencer's read-back).
/// Needs no private key, so fsck runs with the public key set alone.
pub trait TreeHeadVerifier: Send + Sync {
    /// Must accept heads signed by any key the service ever used.
    fn verify(&self, head: &TreeHead, signature: &[u8]) -> Result<(), String>;
}

/// Signs tree heads for the log. The log calls it once per batch, only after
/// the new root was recomputed from stored data and checked.
pub trait TreeHeadSigner: TreeHeadVerifier + 'static {
    fn sign(&self, head: &TreeHead) -> Result<Vec<u8>, String>;
}
