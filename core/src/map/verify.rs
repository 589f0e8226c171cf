//! Standalone proof verification: needs nothing but SHA-256 and the proof
//! bytes. This is the part `vcon-verify` links.
//!
//! Proof encoding (torchwood `mpt`):
//! - inclusion: `(varint(B_i) ‖ H_i)*`, from the leaf up, B_i strictly
//!   decreasing, H_i the sibling's hash at the inner node of bit B_i;
//! - absence from a non-empty tree: `varint(len) ‖ altkey ‖ varint(len) ‖
//!   altval` (the leaf a lookup for the key reaches instead), then the
//!   inclusion path of that leaf; the key must agree with altkey at every B_i
//!   and differ from it;
//! - absence from the empty tree: the empty proof.
//!
//! Stricter than torchwood's `Verify` in two ways, both of which only reject
//! byte strings an honest prover never emits (spec-notes/vcon-map.md):
//! varints must be minimal, and bit positions must be below the key width
//! (256 for the map's 32-byte keys). A proof is therefore canonical: for a
//! given root, key and answer at most one byte string verifies.

use super::format::{self, EMPTY_ROOT, MAX_BIT, MAX_LEN, VarintError, bit, leaf_hash};
use super::{Hash, Key, Value};

/// Why a map proof was rejected. One variant per check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the empty tree contains no key")]
    EmptyTree,
    #[error("an absence proof against the empty tree must be empty ({len} bytes given)")]
    NonEmptyProofForEmptyTree { len: usize },
    #[error("an absence proof against a non-empty tree needs the alternative leaf")]
    MissingAltLeaf,
    #[error("malformed varint at byte {at}")]
    BadVarint { at: usize },
    #[error("proof ends inside a field starting at byte {at}")]
    Truncated { at: usize },
    #[error("alternative leaf field at byte {at} has length {len} (allowed: {allowed})")]
    AltLeafLength { at: usize, len: u64, allowed: u64 },
    #[error("the alternative leaf's key is the key itself")]
    AltKeyEqualsKey,
    #[error("bit position {bit} at byte {at} is out of range (max {max})")]
    BitOutOfRange { at: usize, bit: u64, max: u64 },
    #[error("bit position {bit} at byte {at} does not decrease (previous {previous})")]
    BitsNotDecreasing { at: usize, bit: u32, previous: u32 },
    #[error("the key and the alternative leaf's key disagree at bit {bit}")]
    AltKeyDisagrees { bit: u32 },
    #[error("the recomputed root does not match")]
    RootMismatch,
}

/// Checks that `proof` proves `key ↦ value` in the map with root `root`.
pub fn verify_inclusion(
    root: &Hash,
    key: &Key,
    value: &Value,
    proof: &[u8],
) -> Result<(), ProofError> {
    verify(root, key, Some(value), proof)
}

/// Checks that `proof` proves `key` absent from the map with root `root`.
pub fn verify_absence(root: &Hash, key: &Key, proof: &[u8]) -> Result<(), ProofError> {
    verify(root, key, None, proof)
}

/// Checks a lookup answer: `Some(value)` claims `key ↦ value`, `None` claims
/// that `key` is absent. Keys, values and alternative leaves are 32 bytes;
/// bit positions are below 256.
pub fn verify(
    root: &Hash,
    key: &Key,
    value: Option<&Value>,
    proof: &[u8],
) -> Result<(), ProofError> {
    verify_with(
        &Rules {
            alt_len: AltLen::Exactly(32),
            max_bit: 255,
        },
        root,
        key,
        value.map(|v| v.as_slice()),
        proof,
    )
}

/// torchwood's general format: keys and values are byte strings of any length
/// up to [`MAX_LEN`] in the alternative leaf, bit positions up to
/// [`MAX_BIT`]. The map never needs this; it exists so that torchwood's
/// variable-length vectors can be checked with the same code path.
pub fn verify_bytes(
    root: &Hash,
    key: &[u8],
    value: Option<&[u8]>,
    proof: &[u8],
) -> Result<(), ProofError> {
    verify_with(
        &Rules {
            alt_len: AltLen::AtMost(MAX_LEN as u64),
            max_bit: u64::from(MAX_BIT),
        },
        root,
        key,
        value,
        proof,
    )
}

enum AltLen {
    Exactly(u64),
    AtMost(u64),
}

struct Rules {
    alt_len: AltLen,
    max_bit: u64,
}

/// A cursor over the proof bytes that reports offsets in its errors.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.at >= self.buf.len()
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.at..).unwrap_or(&[])
    }

    /// Reads a varint; values above `max` are reported through `too_large`.
    fn varint(
        &mut self,
        max: u64,
        too_large: impl FnOnce(usize, u64) -> ProofError,
    ) -> Result<u64, ProofError> {
        let at = self.at;
        match format::read_varint(self.rest(), max) {
            Ok((x, n)) => {
                self.at += n;
                Ok(x)
            }
            Err(VarintError::Truncated) => Err(ProofError::Truncated { at }),
            Err(VarintError::NonCanonical) => Err(ProofError::BadVarint { at }),
            Err(VarintError::TooLarge(x)) => Err(too_large(at, x)),
        }
    }

    fn bytes(&mut self, n: usize, field_at: usize) -> Result<&'a [u8], ProofError> {
        let rest = self.rest();
        let out = rest
            .get(..n)
            .ok_or(ProofError::Truncated { at: field_at })?;
        self.at += n;
        Ok(out)
    }

    /// A length-prefixed field of the alternative leaf.
    fn alt_field(&mut self, rules: &Rules) -> Result<&'a [u8], ProofError> {
        let at = self.at;
        let allowed = match rules.alt_len {
            AltLen::Exactly(n) | AltLen::AtMost(n) => n,
        };
        let len = self.varint(allowed, |at, len| ProofError::AltLeafLength {
            at,
            len,
            allowed,
        })?;
        if let AltLen::Exactly(n) = rules.alt_len
            && len != n
        {
            return Err(ProofError::AltLeafLength { at, len, allowed });
        }
        // len ≤ MAX_LEN here, so the conversion cannot fail.
        let len =
            usize::try_from(len).map_err(|_| ProofError::AltLeafLength { at, len, allowed })?;
        self.bytes(len, at)
    }
}

fn verify_with(
    rules: &Rules,
    root: &Hash,
    key: &[u8],
    value: Option<&[u8]>,
    proof: &[u8],
) -> Result<(), ProofError> {
    if *root == EMPTY_ROOT {
        return match value {
            Some(_) => Err(ProofError::EmptyTree),
            None if proof.is_empty() => Ok(()),
            None => Err(ProofError::NonEmptyProofForEmptyTree { len: proof.len() }),
        };
    }
    let mut r = Reader { buf: proof, at: 0 };
    let (leaf_key, mut h) = match value {
        Some(v) => (key, leaf_hash(key, v)),
        None => {
            if proof.is_empty() {
                return Err(ProofError::MissingAltLeaf);
            }
            let alt_key = r.alt_field(rules)?;
            let alt_value = r.alt_field(rules)?;
            if alt_key == key {
                return Err(ProofError::AltKeyEqualsKey);
            }
            (alt_key, leaf_hash(alt_key, alt_value))
        }
    };
    let mut previous: Option<u32> = None;
    while !r.is_empty() {
        let at = r.at;
        let max = rules.max_bit;
        let b = r.varint(max, |at, bit| ProofError::BitOutOfRange { at, bit, max })?;
        // b ≤ max_bit ≤ MAX_BIT < 2^32.
        let b = u32::try_from(b).map_err(|_| ProofError::BitOutOfRange { at, bit: b, max })?;
        if let Some(previous) = previous
            && b >= previous
        {
            return Err(ProofError::BitsNotDecreasing {
                at,
                bit: b,
                previous,
            });
        }
        let sibling: &Hash = r
            .bytes(32, r.at)?
            .try_into()
            .map_err(|_| ProofError::Truncated { at })?;
        let side = bit(key, b);
        if side != bit(leaf_key, b) {
            return Err(ProofError::AltKeyDisagrees { bit: b });
        }
        h = if side == 0 {
            format::inner_hash(b, &h, sibling)
        } else {
            format::inner_hash(b, sibling, &h)
        };
        previous = Some(b);
    }
    if h != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}
