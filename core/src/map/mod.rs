//! The verifiable map: a path-compressed binary Merkle prefix tree from
//! 32-byte keys to 32-byte values, in the torchwood `mpt` hash and proof
//! format (spec-notes/vcon-map.md, "The tree format").
//!
//! - [`mod@format`]: node hashes, varints, key bits. Pure.
//! - [`verify()`], [`verify_inclusion`], [`verify_absence`]: the standalone
//!   verifier (SHA-256 and the proof bytes, nothing else).
//! - [`root_of_sorted`]: the whole-tree hash of sorted entries by the stack
//!   algorithm, independent of the tree code (test oracle, startup check).
//! - [`MapTree`]: the in-memory tree: batched insert or update, proofs,
//!   rollback of a batch.
//!
//! What the keys and values mean (which vCon, which state) is decided
//! elsewhere; here they are opaque 32-byte strings.

pub mod format;
mod tree;
mod treehash;
mod verify;

pub use crate::merkle::Hash;
pub use format::EMPTY_ROOT;
pub use tree::{MAX_ENTRIES, MapTree, Proof, Undo};
pub use treehash::{root_of_sorted, root_of_sorted_bytes};
pub use verify::{ProofError, verify, verify_absence, verify_bytes, verify_inclusion};

/// A map key (for vCons: derived from the uuid, see the key function).
pub type Key = [u8; 32];

/// A map value (for vCons: the hash of the state record).
pub type Value = [u8; 32];

/// Why the tree or the whole-tree hash refused its input. Nothing is changed
/// when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("key {} appears twice in one batch", hex::encode(key))]
    DuplicateKey { key: Key },
    #[error("the tree would exceed {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("this undo record is not for the tree's current state")]
    StaleUndo,
    #[error("entry {index} is not strictly after the previous one in key order")]
    NotSorted { index: usize },
    #[error(
        "entry {index} has a key or value longer than {} bytes",
        format::MAX_LEN
    )]
    TooLong { index: usize },
}
