//! RFC 9162 §2.1 Merkle tree maths: hashing, proof generation and proof
//! verification. Pure functions, no I/O: the log storage supplies nodes through
//! [`NodeSource`], the verifier needs nothing but hashes.
//!
//! Edge cases (decided in `spec-notes/merkle.md`):
//! - the empty tree's root is SHA-256 of the empty string ([`EMPTY_ROOT`]);
//! - an inclusion proof needs `index < size`; a size-1 tree has an empty path;
//! - a consistency proof between equal sizes is empty and the roots must match;
//!   from size 0 it is rejected (meaningless), as transparency-dev does;
//! - proof lengths are checked exactly before any hashing.

pub mod bundle;
pub mod compact;
pub mod leaf_rule;
pub mod tile;

pub use compact::CompactRange;

pub use leaf_rule::LeafRule;

use ring::digest;

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// MTH({}) = SHA-256("").
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Why a proof was rejected. One variant per check so tests can tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("proof has {got} hashes, expected exactly {want}")]
    WrongLength { got: usize, want: usize },
    #[error("first size {size1} is larger than second size {size2}")]
    SizesReversed { size1: u64, size2: u64 },
    #[error("a consistency proof from the empty tree is meaningless")]
    FromEmptyTree,
    #[error("the recomputed root does not match")]
    RootMismatch,
    #[error("the recomputed old root does not match the trusted old root")]
    OldRootMismatch,
}

/// SHA-256(0x00 || entry): RFC 9162 leaf hash.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[0x00]);
    ctx.update(entry);
    finish(ctx)
}

/// SHA-256 over the concatenation of `parts`: the one plain digest helper
/// (map keys and history chains, note key ids, leaf rules, index keys).
pub fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    finish(ctx)
}

/// SHA-256(0x01 || left || right): RFC 9162 interior node hash.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    let d = digest::digest(&digest::SHA256, &buf);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn finish(ctx: digest::Context) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The largest power of two strictly smaller than `n` (the RFC's `k`); `n >= 2`.
pub fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

fn bit_len(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// (inner, border) decomposition of an inclusion proof for `index` in `size`
/// (transparency-dev's `decompInclProof`): the first `inner` hashes are siblings
/// below the point where the path meets the right edge, the `border` ones are
/// left siblings on the right edge.
fn decompose_inclusion(index: u64, size: u64) -> (usize, usize) {
    let inner = bit_len(index ^ (size - 1)) as usize;
    let border = (index >> inner).count_ones() as usize;
    (inner, border)
}

/// Exact number of hashes in the inclusion proof of `index` in a tree of `size`.
pub fn inclusion_proof_len(index: u64, size: u64) -> Option<usize> {
    if index >= size {
        return None;
    }
    let (inner, border) = decompose_inclusion(index, size);
    Some(inner + border)
}

/// Exact number of hashes in the consistency proof from `size1` to `size2`.
pub fn consistency_proof_len(size1: u64, size2: u64) -> Option<usize> {
    if size1 == 0 || size1 > size2 {
        return None;
    }
    if size1 == size2 {
        return Some(0);
    }
    let (inner, border) = decompose_inclusion(size1 - 1, size2);
    let shift = size1.trailing_zeros() as usize;
    let seed = usize::from(!size1.is_power_of_two());
    Some(inner - shift + border + seed)
}

/// Computes the root that an inclusion proof commits to. A receipt carries a
/// detached root, so the verifier recomputes it and checks the signature over
/// the result rather than comparing against a claimed root.
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (inner, border) = decompose_inclusion(index, size);
    if proof.len() != inner + border {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want: inner + border,
        });
    }
    let mut h = chain_inner(*leaf, &proof[..inner], index);
    h = chain_border_right(h, &proof[inner..]);
    Ok(h)
}

/// RFC 9162 §2.1.3.2 with exact length checks.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if root_from_inclusion_proof(index, size, leaf, proof)? == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Checks a consistency proof against the trusted old root and returns the new
/// root it proves (for consistency receipts, whose root is detached).
pub fn root_from_consistency_proof(
    size1: u64,
    size2: u64,
    root1: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizesReversed { size1, size2 });
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want: 0,
            });
        }
        if size1 == 0 && *root1 != EMPTY_ROOT {
            return Err(ProofError::OldRootMismatch);
        }
        return Ok(*root1);
    }
    if size1 == 0 {
        return Err(ProofError::FromEmptyTree);
    }
    let (inner, border) = decompose_inclusion(size1 - 1, size2);
    let shift = size1.trailing_zeros() as usize;
    let inner = inner - shift;
    // When size1 is a perfect subtree its root is the seed; otherwise the proof
    // starts with the seed node.
    let (seed, rest) = if size1.is_power_of_two() {
        (*root1, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => {
                return Err(ProofError::WrongLength {
                    got: 0,
                    want: 1 + inner + border,
                });
            }
        }
    };
    if rest.len() != inner + border {
        let want = proof.len() - rest.len() + inner + border;
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    let mask = (size1 - 1) >> shift;
    let old = chain_border_right(
        chain_inner_right(seed, &rest[..inner], mask),
        &rest[inner..],
    );
    if old != *root1 {
        return Err(ProofError::OldRootMismatch);
    }
    Ok(chain_border_right(
        chain_inner(seed, &rest[..inner], mask),
        &rest[inner..],
    ))
}

/// RFC 9162 §2.1.4.2 with exact length checks.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &Hash,
    root2: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if size1 == size2 && size2 == 0 && *root2 != EMPTY_ROOT {
        return Err(ProofError::RootMismatch);
    }
    if root_from_consistency_proof(size1, size2, root1, proof)? == *root2 {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

fn chain_inner(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (i, h) in proof.iter().enumerate() {
        seed = if (index >> i) & 1 == 0 {
            node_hash(&seed, h)
        } else {
            node_hash(h, &seed)
        };
    }
    seed
}

fn chain_inner_right(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (i, h) in proof.iter().enumerate() {
        if (index >> i) & 1 == 1 {
            seed = node_hash(h, &seed);
        }
    }
    seed
}

fn chain_border_right(mut seed: Hash, proof: &[Hash]) -> Hash {
    for h in proof {
        seed = node_hash(h, &seed);
    }
    seed
}

/// Where proof generation gets hashes of *perfect* subtrees: the node at
/// `height` and `index` covers leaves `[index << height, (index + 1) << height)`.
/// Non-perfect right-edge nodes are derived from these, so a store only has to
/// keep complete subtrees, which never change once written.
pub trait NodeSource {
    type Error;
    fn perfect_node(&mut self, height: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// MTH(D[start:end]) for any range whose perfect parts the source holds.
pub fn subtree_root<S: NodeSource>(src: &mut S, start: u64, end: u64) -> Result<Hash, S::Error> {
    let n = end - start;
    if n == 0 {
        return Ok(EMPTY_ROOT);
    }
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return src.perfect_node(n.trailing_zeros() as u8, start / n);
    }
    let k = split_point(n);
    let left = subtree_root(src, start, start + k)?;
    let right = subtree_root(src, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// Root of the tree of `size` leaves, from perfect subtrees only.
pub fn root<S: NodeSource>(src: &mut S, size: u64) -> Result<Hash, S::Error> {
    subtree_root(src, 0, size)
}

/// RFC 9162 §2.1.3.1 PATH(index, D[size]), leaf to root. `index < size` is the
/// caller's contract (checked: an out-of-range index yields an empty proof that
/// no verifier accepts).
pub fn inclusion_proof<S: NodeSource>(
    src: &mut S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, S::Error> {
    let mut out = Vec::with_capacity(64);
    if index < size {
        path(src, index, 0, size, &mut out)?;
    }
    Ok(out)
}

fn path<S: NodeSource>(
    src: &mut S,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path(src, m, start, start + k, out)?;
        out.push(subtree_root(src, start + k, end)?);
    } else {
        path(src, m - k, start + k, end, out)?;
        out.push(subtree_root(src, start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.1 PROOF(size1, D[size2]). Empty when the sizes are equal or
/// `size1` is 0 (both are decided cases, see module docs).
pub fn consistency_proof<S: NodeSource>(
    src: &mut S,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, S::Error> {
    let mut out = Vec::with_capacity(64);
    if size1 > 0 && size1 < size2 {
        subproof(src, size1, 0, size2, true, &mut out)?;
    }
    Ok(out)
}

fn subproof<S: NodeSource>(
    src: &mut S,
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = end - start;
    if m == n {
        if !complete {
            out.push(subtree_root(src, start, end)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(src, m, start, start + k, complete, out)?;
        out.push(subtree_root(src, start + k, end)?);
    } else {
        subproof(src, m - k, start + k, end, false, out)?;
        out.push(subtree_root(src, start, start + k)?);
    }
    Ok(())
}

/// A whole tree in memory, every level kept: the test oracle and the tool for
/// building small trees (golden vectors, benches). Not the log's storage.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    /// levels[h][i] = perfect node at height h, index i.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    pub fn new() -> Self {
        Self {
            levels: vec![Vec::new()],
        }
    }

    pub fn from_leaf_hashes(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut t = Self::new();
        for l in leaves {
            t.push(l);
        }
        t
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut h = 0;
        let mut node = leaf;
        loop {
            if self.levels.len() <= h {
                self.levels.push(Vec::new());
            }
            self.levels[h].push(node);
            let len = self.levels[h].len();
            if len % 2 == 1 {
                break;
            }
            node = node_hash(&self.levels[h][len - 2], &self.levels[h][len - 1]);
            h += 1;
        }
    }

    pub fn size(&self) -> u64 {
        self.levels[0].len() as u64
    }

    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels[0].get(index as usize).copied()
    }

    pub fn root_at(&self, size: u64) -> Hash {
        let mut s = self;
        match root(&mut s, size) {
            Ok(h) => h,
            Err(never) => match never {},
        }
    }

    pub fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        let mut s = self;
        match inclusion_proof(&mut s, index, size) {
            Ok(p) => p,
            Err(never) => match never {},
        }
    }

    pub fn consistency(&self, size1: u64, size2: u64) -> Vec<Hash> {
        let mut s = self;
        match consistency_proof(&mut s, size1, size2) {
            Ok(p) => p,
            Err(never) => match never {},
        }
    }
}

impl NodeSource for &MemoryTree {
    type Error = std::convert::Infallible;
    fn perfect_node(&mut self, height: u8, index: u64) -> Result<Hash, Self::Error> {
        // The recursion only asks for nodes inside the requested size, which
        // callers keep within `size()`; a miss is a caller bug, answered with
        // an impossible hash so that any proof using it fails verification.
        Ok(self
            .levels
            .get(height as usize)
            .and_then(|l| l.get(index as usize))
            .copied()
            .unwrap_or([0xff; 32]))
    }
}

/// Straight-from-the-RFC recursive MTH over leaf hashes: a second, independent
/// definition used by tests to check the tiled and incremental code.
pub fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
        }
    }
}

/// Parses a 64-character hex hash.
pub fn from_hex(s: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}
