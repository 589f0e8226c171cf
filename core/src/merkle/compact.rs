//! A compact range over a log prefix `[0, size)`: the roots of the perfect
//! subtrees the prefix splits into (one per set bit of `size`, largest
//! first). It is all a follower needs to extend the tree leaf by leaf and
//! compute the root at any size it reaches, in O(log n) memory: the monitor
//! recomputes every signed head from the entries it reads with it.

use super::{EMPTY_ROOT, Hash, node_hash};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    /// Perfect subtree roots, left to right; subtree `i` has `2^h` leaves
    /// for the `i`-th set bit `h` of `size`, from the highest.
    peaks: Vec<Hash>,
}

impl CompactRange {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        // Each trailing 1 bit of the old size is a peak of equal height the
        // new leaf completes.
        let mut merges = self.size.trailing_ones();
        while merges > 0 {
            let Some(left) = self.peaks.pop() else { break };
            h = node_hash(&left, &h);
            merges -= 1;
        }
        self.peaks.push(h);
        self.size = self.size.saturating_add(1);
    }

    /// RFC 9162 MTH of the prefix: the peaks folded from the right.
    pub fn root(&self) -> Hash {
        let mut it = self.peaks.iter().rev();
        let Some(last) = it.next() else {
            return EMPTY_ROOT;
        };
        it.fold(*last, |acc, left| node_hash(left, &acc))
    }

    /// `u64be(size) ‖ peaks`: how a follower persists it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.size.to_be_bytes().to_vec();
        for p in &self.peaks {
            v.extend_from_slice(p);
        }
        v
    }

    /// Inverse of [`Self::to_bytes`]; None unless the peak count is the
    /// number of set bits of the size.
    pub fn from_bytes(b: &[u8]) -> Option<CompactRange> {
        let (size, rest) = b.split_first_chunk::<8>()?;
        let size = u64::from_be_bytes(*size);
        if rest.len() != size.count_ones() as usize * 32 {
            return None;
        }
        let peaks = rest
            .chunks_exact(32)
            .map(|c| c.try_into().ok())
            .collect::<Option<Vec<Hash>>>()?;
        Some(CompactRange { size, peaks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, reference_root};

    #[test]
    fn equals_the_reference_root_at_every_size_and_survives_a_round_trip() {
        let leaves: Vec<Hash> = (0..300u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut c = CompactRange::new();
        assert_eq!(c.root(), EMPTY_ROOT);
        for (i, l) in leaves.iter().enumerate() {
            c.push(*l);
            assert_eq!(c.size(), i as u64 + 1);
            assert_eq!(c.root(), reference_root(&leaves[..=i]), "size {}", i + 1);
            assert_eq!(CompactRange::from_bytes(&c.to_bytes()), Some(c.clone()));
        }
        let mut b = c.to_bytes();
        b.pop();
        assert_eq!(CompactRange::from_bytes(&b), None);
    }
}
