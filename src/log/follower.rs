//! Following another copy of the log: appending entries and the heads that
//! sign them, as a read replica does from the bucket (and, later, a standby
//! catching up). Nothing is signed here; instead nothing is stored unless it
//! matches signatures already made: the tree is rebuilt from the entries
//! themselves (the same right-edge code as the sequencer, so the stored
//! tiles are the writer's bytes) and its root at every head's size must be
//! the root that head signs. The caller checks the head signatures.
//!
//! What the writer derived beside each entry at registration (the vCon
//! index, the map's state rows, registration identities) a follower derives
//! again through [`Beside`], into the same `WriteBatch`: the rows are
//! exactly as durable as the entries, and a follower's store is a writer's.

use rocksdb::WriteBatch;

use super::frontier::{Frontier, MAX_LEVELS};
use super::{LogError, SignedTreeHead, Store};
use crate::merkle::Hash;

/// Rows a follower writes beside the entries it appends. An error refuses
/// the whole append (nothing is written); after one, the implementation's
/// in-memory state may be ahead of the store and must be reloaded.
pub trait Beside {
    /// Entry `index` (its stored bytes and leaf hash), in log order.
    fn entry(
        &mut self,
        store: &Store,
        wb: &mut WriteBatch,
        index: u64,
        leaf: &Hash,
        entry: &[u8],
    ) -> Result<(), LogError>;
    /// After the last entry of the append.
    fn finish(&mut self, store: &Store, wb: &mut WriteBatch) -> Result<(), LogError>;
}

/// Appends `entries` at the store's current size, with `heads` (in size
/// order, each within the new entries, the last one at their end): one
/// synced `WriteBatch`, written only if every head's root is the root of
/// the rebuilt tree at its size. Returns the new size.
pub fn append_verified(
    store: &Store,
    entries: &[Vec<u8>],
    heads: &[SignedTreeHead],
    mut beside: Option<&mut dyn Beside>,
) -> Result<u64, LogError> {
    let base = store.data_size()?;
    let end = base + entries.len() as u64;
    match heads.last() {
        Some(h) if h.head.size == end => {}
        _ => {
            return Err(LogError::InvalidRequest(format!(
                "entries {base}..{end} must end at a signed head"
            )));
        }
    }
    let mut frontier = Frontier::load(store, base)?;
    let mut wb = WriteBatch::default();
    let mut done = Vec::new();
    let mut touched = [false; MAX_LEVELS];
    if let Some(h) = heads.first()
        && h.head.size <= base
    {
        return Err(LogError::InvalidRequest(format!(
            "a head at size {} is not above the stored size {base}",
            h.head.size
        )));
    }
    let mut next = heads.iter().peekable();
    for entry in entries {
        let leaf = store.leaf_hash(entry);
        store.put_entry(&mut wb, frontier.size, &leaf, entry)?;
        if let Some(b) = beside.as_deref_mut() {
            b.entry(store, &mut wb, frontier.size, &leaf, entry)?;
        }
        frontier.push(leaf, &mut done, &mut touched);
        while let Some(h) = next.next_if(|h| h.head.size == frontier.size) {
            if frontier.root() != h.head.root {
                return Err(LogError::Corrupt(format!(
                    "the entries do not hash to the root signed at size {}",
                    h.head.size
                )));
            }
            store.put_head(&mut wb, h)?;
        }
    }
    if let Some(h) = next.next() {
        return Err(LogError::InvalidRequest(format!(
            "the heads are not in size order (size {} was never reached)",
            h.head.size
        )));
    }
    if let Some(b) = beside {
        b.finish(store, &mut wb)?;
    }
    frontier.put_tiles(store, &mut wb, &done, &touched)?;
    store.put_data_size(&mut wb, end)?;
    // Every head appended here was signed and published elsewhere.
    store.put_published_size(&mut wb, end)?;
    store.write_synced(wb)?;
    Ok(end)
}
