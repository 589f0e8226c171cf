//! The whole-tree hash of a sorted list of entries, by the stack algorithm of
//! torchwood's `mpt/DESIGN.md` ("Whole Tree Hash"), with the real node hashes
//! of the format. It builds no tree, shares no code with [`super::MapTree`]
//! beyond the two hash functions, and so serves as the oracle the tests hold
//! the incremental tree to. It is also how a root is recomputed from stored
//! state rows (which a key-ordered scan yields sorted).

use std::cmp::Ordering;

use super::format::{self, EMPTY_ROOT, MAX_LEN, compare, leaf_hash};
use super::{Hash, Key, TreeError, Value};

/// The root of the map holding exactly `items`, which must be sorted by key
/// with no key twice (else [`TreeError::NotSorted`]).
pub fn root_of_sorted(items: &[(Key, Value)]) -> Result<Hash, TreeError> {
    root_of_sorted_bytes(items.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
}

/// The same for torchwood's general format: keys and values are byte strings
/// of at most [`MAX_LEN`] bytes, sorted in padded order
/// ([`format::compare`]).
pub fn root_of_sorted_bytes<'a>(
    items: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<Hash, TreeError> {
    let mut stack: Vec<Entry<'a>> = Vec::new();
    let mut previous: Option<&[u8]> = None;
    for (index, (key, value)) in items.into_iter().enumerate() {
        if key.len() > MAX_LEN || value.len() > MAX_LEN {
            return Err(TreeError::TooLong { index });
        }
        if let Some(p) = previous
            && compare(p, key).0 != Ordering::Less
        {
            return Err(TreeError::NotSorted { index });
        }
        previous = Some(key);
        stack.push(Entry {
            key,
            bits: u32::MAX,
            hash: leaf_hash(key, value),
        });
        reduce(&mut stack);
    }
    // Merge the right fringe.
    while let Some(y) = stack.pop() {
        match stack.pop() {
            None => return Ok(y.hash),
            Some(x) => stack.push(merge(&x, &y)),
        }
    }
    Ok(EMPTY_ROOT)
}

/// A completed subtree: the keys under it share their first `bits` bits with
/// `key` (`u32::MAX` for a leaf).
struct Entry<'a> {
    key: &'a [u8],
    bits: u32,
    hash: Hash,
}

fn overlap(x: &Entry<'_>, y: &Entry<'_>) -> u32 {
    x.bits.min(y.bits).min(compare(x.key, y.key).1)
}

fn merge<'a>(x: &Entry<'a>, y: &Entry<'a>) -> Entry<'a> {
    let b = overlap(x, y);
    Entry {
        key: x.key,
        bits: b,
        hash: format::inner_hash(b, &x.hash, &y.hash),
    }
}

/// While the top three are x, y, z and x, y join deeper than y, z, merge x
/// and y: z and everything after it join them higher up.
fn reduce(s: &mut Vec<Entry<'_>>) {
    while let [.., x, y, z] = s.as_slice() {
        if overlap(x, y) <= overlap(y, z) {
            break;
        }
        let m = merge(x, y);
        let n = s.len();
        s[n - 3] = m;
        s.swap_remove(n - 2); // moves z into y's place and drops y
    }
}
