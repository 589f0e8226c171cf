//! The in-memory map: a path-compressed binary Merkle prefix tree over 32-byte
//! keys, held in two arenas (leaves and inner nodes) indexed by `u32`.
//!
//! - Leaves hold the key and value only (64 bytes); their hash is recomputed
//!   when a parent is rehashed or a proof needs it.
//! - Inner nodes hold the bit they split on, their two children and their
//!   hash (44 bytes).
//! - [`MapTree::apply_batch`] inserts or updates a batch, then rehashes every
//!   inner node the batch touched exactly once, bottom-up. It returns an
//!   [`Undo`] that restores the previous tree exactly ([`MapTree::rollback`]),
//!   for when the batch's storage write fails.
//!
//! There is no delete: a vCon, once in the map, stays (its lifecycle state is
//! part of its value).

use std::sync::atomic::{AtomicU64, Ordering};

use super::format::{EMPTY_ROOT, append_varint, bit32, first_difference, inner_hash, leaf_hash};
use super::{Hash, Key, TreeError, Value};

/// Leaf and inner-node indices share a `u32` with a one-bit tag, so each arena
/// holds at most 2^31 − 1 nodes.
pub const MAX_ENTRIES: usize = (1 << 31) - 1;

const LEAF: u32 = 1 << 31;

/// A child pointer: a leaf index with the top bit set, or an inner index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NodeRef(u32);

enum Node {
    Leaf(usize),
    Inner(usize),
}

impl NodeRef {
    // Callers only build refs for indices below MAX_ENTRIES (checked in
    // apply_batch before any node is created), so the casts are lossless.
    fn leaf(i: usize) -> Self {
        NodeRef(i as u32 | LEAF)
    }
    fn inner(i: usize) -> Self {
        NodeRef(i as u32)
    }
    fn get(self) -> Node {
        if self.0 & LEAF != 0 {
            Node::Leaf((self.0 & !LEAF) as usize)
        } else {
            Node::Inner(self.0 as usize)
        }
    }
}

#[derive(Debug, Clone)]
struct Leaf {
    key: Key,
    value: Value,
}

#[derive(Debug, Clone)]
struct Inner {
    hash: Hash,
    left: NodeRef,
    right: NodeRef,
    /// Keys below `left` have 0 at this bit, keys below `right` have 1, and
    /// all of them agree on every earlier bit.
    bit: u8,
    /// Changed in the current batch, hash not yet recomputed. Always false
    /// between batches.
    dirty: bool,
}

impl Inner {
    fn child(&self, side: u8) -> NodeRef {
        if side == 0 { self.left } else { self.right }
    }
}

/// A lookup answer with its proof, in torchwood's encoding; check it with
/// [`super::verify`] against [`MapTree::root`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The value if the key is present, `None` if it is absent.
    pub value: Option<Value>,
    /// The proof bytes: the path (inclusion), or the alternative leaf and its
    /// path (absence), or nothing (absence from the empty tree).
    pub bytes: Vec<u8>,
}

/// What [`MapTree::rollback`] needs to undo one [`MapTree::apply_batch`]:
/// the arena lengths, the root, and the previous contents of every existing
/// node the batch changed. Drop it to keep the batch.
#[derive(Debug)]
pub struct Undo {
    before: u64,
    after: u64,
    leaves_len: usize,
    inners_len: usize,
    root: Option<NodeRef>,
    root_hash: Hash,
    inners: Vec<(u32, Inner)>,
    leaves: Vec<(u32, Value)>,
}

impl Undo {
    /// How many existing nodes the batch changed (new nodes not counted).
    pub fn changed_nodes(&self) -> usize {
        self.inners.len() + self.leaves.len()
    }
}

/// Every tree state gets a number no other state of any tree has, so an
/// [`Undo`] can only be applied to the state it was made from.
fn next_state() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The in-memory map (see the module documentation).
#[derive(Debug)]
pub struct MapTree {
    leaves: Vec<Leaf>,
    inners: Vec<Inner>,
    root: Option<NodeRef>,
    root_hash: Hash,
    state: u64,
    /// Scratch: the inner nodes on the current lookup path.
    path: Vec<u32>,
}

impl Default for MapTree {
    fn default() -> Self {
        Self::new()
    }
}

impl MapTree {
    /// The empty map (root [`EMPTY_ROOT`]).
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// The empty map with room for `entries` keys without reallocating.
    pub fn with_capacity(entries: usize) -> Self {
        MapTree {
            leaves: Vec::with_capacity(entries),
            inners: Vec::with_capacity(entries.saturating_sub(1)),
            root: None,
            root_hash: EMPTY_ROOT,
            state: next_state(),
            path: Vec::with_capacity(64),
        }
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The root hash as of the last [`Self::apply_batch`] or
    /// [`Self::rollback`].
    pub fn root(&self) -> Hash {
        self.root_hash
    }

    /// Heap bytes held by the arenas (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        self.leaves.capacity() * std::mem::size_of::<Leaf>()
            + self.inners.capacity() * std::mem::size_of::<Inner>()
    }

    /// The leaf a lookup for `key` ends at, if the tree is not empty.
    fn walk(&self, key: &Key, mut path: Option<&mut Vec<u32>>) -> Option<usize> {
        let mut n = self.root?;
        loop {
            match n.get() {
                Node::Leaf(l) => return Some(l),
                Node::Inner(i) => {
                    if let Some(p) = path.as_deref_mut() {
                        // i < MAX_ENTRIES (see NodeRef).
                        p.push(i as u32);
                    }
                    let node = &self.inners[i];
                    n = node.child(bit32(key, node.bit));
                }
            }
        }
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &Key) -> Option<Value> {
        let l = self.walk(key, None)?;
        let leaf = &self.leaves[l];
        (leaf.key == *key).then_some(leaf.value)
    }

    fn hash_of(&self, n: NodeRef) -> Hash {
        match n.get() {
            Node::Leaf(l) => leaf_hash(&self.leaves[l].key, &self.leaves[l].value),
            Node::Inner(i) => self.inners[i].hash,
        }
    }

    /// The answer for `key` with its proof against [`Self::root`]: inclusion
    /// if present; if absent, the leaf the lookup reaches instead and its
    /// path (torchwood's rule), or the empty proof for the empty tree.
    pub fn prove(&self, key: &Key) -> Proof {
        let mut path = Vec::with_capacity(40);
        let Some(l) = self.walk(key, Some(&mut path)) else {
            return Proof {
                value: None,
                bytes: Vec::new(),
            };
        };
        let leaf = &self.leaves[l];
        let mut bytes = Vec::with_capacity(66 + 34 * path.len());
        let value = if leaf.key == *key {
            Some(leaf.value)
        } else {
            append_varint(&mut bytes, 32);
            bytes.extend_from_slice(&leaf.key);
            append_varint(&mut bytes, 32);
            bytes.extend_from_slice(&leaf.value);
            None
        };
        for &i in path.iter().rev() {
            let node = &self.inners[i as usize];
            let sibling = node.child(1 - bit32(key, node.bit));
            append_varint(&mut bytes, u64::from(node.bit));
            bytes.extend_from_slice(&self.hash_of(sibling));
        }
        Proof { value, bytes }
    }

    /// Inserts or updates every `(key, value)` of `items`, then rehashes. The
    /// result does not depend on the order of `items`; a key may appear only
    /// once ([`TreeError::DuplicateKey`]). On error the tree is unchanged.
    /// The returned [`Undo`] restores the tree as it was before this call.
    pub fn apply_batch(&mut self, items: &[(Key, Value)]) -> Result<Undo, TreeError> {
        let mut sorted: Vec<&(Key, Value)> = items.iter().collect();
        sorted.sort_unstable_by_key(|item| item.0);
        if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(TreeError::DuplicateKey { key: w[0].0 });
        }
        // One new leaf and at most one new inner node per item.
        match self.leaves.len().checked_add(items.len()) {
            Some(n) if n <= MAX_ENTRIES => {}
            _ => return Err(TreeError::TooManyEntries),
        }
        let after = next_state();
        let mut undo = Undo {
            before: self.state,
            after,
            leaves_len: self.leaves.len(),
            inners_len: self.inners.len(),
            root: self.root,
            root_hash: self.root_hash,
            inners: Vec::new(),
            leaves: Vec::new(),
        };
        let mut path = std::mem::take(&mut self.path);
        for (key, value) in sorted {
            self.insert(key, value, &mut path, &mut undo);
        }
        self.path = path;
        self.root_hash = match self.root {
            None => EMPTY_ROOT,
            Some(r) => self.rehash(r),
        };
        self.state = after;
        Ok(undo)
    }

    fn insert(&mut self, key: &Key, value: &Value, path: &mut Vec<u32>, undo: &mut Undo) {
        path.clear();
        let Some(l) = self.walk(key, Some(path)) else {
            self.leaves.push(Leaf {
                key: *key,
                value: *value,
            });
            self.root = Some(NodeRef::leaf(self.leaves.len() - 1));
            return;
        };
        let Some(d) = first_difference(key, &self.leaves[l].key) else {
            // Present: update the value in place.
            if self.leaves[l].value == *value {
                return;
            }
            if l < undo.leaves_len {
                // l < MAX_ENTRIES (see NodeRef).
                undo.leaves.push((l as u32, self.leaves[l].value));
            }
            self.leaves[l].value = *value;
            self.mark_dirty(path, undo);
            return;
        };
        // Absent: the key leaves the lookup path at bit d, above the first
        // node on it that splits on a later bit (bits increase downwards, and
        // no node on the path splits on d itself: the key and the leaf agree
        // on every bit the path tested).
        let p = path
            .iter()
            .position(|&i| self.inners[i as usize].bit > d)
            .unwrap_or(path.len());
        let displaced = match path.get(p) {
            Some(&i) => NodeRef::inner(i as usize),
            None => NodeRef::leaf(l),
        };
        self.leaves.push(Leaf {
            key: *key,
            value: *value,
        });
        let new_leaf = NodeRef::leaf(self.leaves.len() - 1);
        let (left, right) = if bit32(key, d) == 0 {
            (new_leaf, displaced)
        } else {
            (displaced, new_leaf)
        };
        self.inners.push(Inner {
            hash: [0; 32],
            left,
            right,
            bit: d,
            dirty: true,
        });
        let new_inner = NodeRef::inner(self.inners.len() - 1);
        path.truncate(p);
        self.mark_dirty(path, undo);
        match path.last() {
            None => self.root = Some(new_inner),
            Some(&parent) => {
                let node = &mut self.inners[parent as usize];
                if bit32(key, node.bit) == 0 {
                    node.left = new_inner;
                } else {
                    node.right = new_inner;
                }
            }
        }
    }

    /// Marks the inner nodes of `path` dirty, saving each existing node's
    /// contents in `undo` the first time this batch touches it.
    fn mark_dirty(&mut self, path: &[u32], undo: &mut Undo) {
        for &i in path {
            let node = &mut self.inners[i as usize];
            if !node.dirty {
                if (i as usize) < undo.inners_len {
                    undo.inners.push((i, node.clone()));
                }
                node.dirty = true;
            }
        }
    }

    /// Recomputes the dirty inner nodes under `n` (each once) and returns
    /// `n`'s hash. Recursion depth is at most 256: bits strictly increase
    /// along a path.
    fn rehash(&mut self, n: NodeRef) -> Hash {
        let i = match n.get() {
            Node::Leaf(_) => return self.hash_of(n),
            Node::Inner(i) => i,
        };
        let node = &self.inners[i];
        if !node.dirty {
            return node.hash;
        }
        let (left, right, bit) = (node.left, node.right, node.bit);
        let lh = self.rehash(left);
        let rh = self.rehash(right);
        let node = &mut self.inners[i];
        node.hash = inner_hash(u32::from(bit), &lh, &rh);
        node.dirty = false;
        node.hash
    }

    /// Restores the tree to what it was before the [`Self::apply_batch`]
    /// that returned `undo`. Only valid while the tree is exactly in the
    /// state that batch left (undo several batches newest first); otherwise
    /// [`TreeError::StaleUndo`] and nothing changes.
    pub fn rollback(&mut self, undo: Undo) -> Result<(), TreeError> {
        if undo.after != self.state {
            return Err(TreeError::StaleUndo);
        }
        for (i, node) in undo.inners.into_iter().rev() {
            self.inners[i as usize] = node;
        }
        for (l, value) in undo.leaves.into_iter().rev() {
            self.leaves[l as usize].value = value;
        }
        self.leaves.truncate(undo.leaves_len);
        self.inners.truncate(undo.inners_len);
        self.root = undo.root;
        self.root_hash = undo.root_hash;
        self.state = undo.before;
        Ok(())
    }
}
