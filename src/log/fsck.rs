//! fsck: re-read everything and report the first inconsistency.
//!
//! Checks, in order: entries are contiguous `0..size` and each one's leaf hash
//! is the stored level-0 tile node and maps back through the `leaves` index;
//! every tile has the width the size implies and interior nodes that hash up;
//! every row-0 node of a level ≥ 1 tile is the root of its child tile; every
//! signed head's root is recomputed from the tiles, its signature verifies,
//! and sizes and times never go backwards; every identity row names a stored
//! entry by its index and leaf.

use super::LogError;
use super::store::{CF_ENTRIES, CF_LEAVES, CF_TILES, Store, StoreNodes, be_u64};
use crate::merkle::tile::{Tile, TileId, WIDTH, width_at};
use crate::merkle::{self, NodeSource};
use crate::tree_head::TreeHeadVerifier;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FsckReport {
    pub size: u64,
    pub entries: u64,
    pub tiles: u64,
    pub heads: u64,
    pub latest_head_size: u64,
    /// Identity rows (entries appended with a caller-chosen identity).
    pub identities: u64,
}

fn bad<T>(m: String) -> Result<T, LogError> {
    Err(LogError::Corrupt(m))
}

/// Runs every check; `Err` names the first inconsistency found.
pub fn fsck(
    store: &Store,
    verifier: Option<&dyn TreeHeadVerifier>,
) -> Result<FsckReport, LogError> {
    let size = store.data_size()?;
    let mut nodes = StoreNodes::new(store);
    let entries = check_entries(store, &mut nodes, size)?;
    let tiles = check_tiles(store, size)?;
    let (heads, latest_head_size) = check_heads(store, &mut nodes, size, verifier)?;
    let identities = check_identities(store, &mut nodes, size)?;
    Ok(FsckReport {
        size,
        entries,
        tiles,
        heads,
        latest_head_size,
        identities,
    })
}

/// Every identity row points at a stored entry: its index is below the size
/// and its leaf is that entry's stored leaf (a duplicate by identity is
/// answered with that index and leaf); returns the row count.
fn check_identities(store: &Store, nodes: &mut StoreNodes, size: u64) -> Result<u64, LogError> {
    let mut rows = 0u64;
    for row in store.identities()? {
        let (identity, index, leaf) = row?;
        if index >= size || nodes.perfect_node(0, index)? != leaf {
            return bad(format!(
                "identity row {} names entry {index}, which is not stored with that leaf",
                hex::encode(identity)
            ));
        }
        rows += 1;
    }
    Ok(rows)
}

/// Entries are contiguous `0..size`, each hashes to its stored level-0
/// node, and the leaf index maps each hash back; returns the entry count.
fn check_entries(store: &Store, nodes: &mut StoreNodes, size: u64) -> Result<u64, LogError> {
    let mut entries = 0u64;
    for item in store.iter_cf(CF_ENTRIES)? {
        let (k, v) = item?;
        let Some(index) = be_u64(&k) else {
            return bad("an entry key is not 8 bytes".into());
        };
        if index != entries {
            return bad(format!(
                "entry {entries} is missing (next stored is {index})"
            ));
        }
        if index >= size {
            return bad(format!(
                "entry {index} is stored beyond the committed size {size}"
            ));
        }
        let leaf = store.leaf_hash(&v);
        if nodes.perfect_node(0, index)? != leaf {
            return bad(format!("entry {index} does not hash to its stored leaf"));
        }
        if store.index_of(&leaf)? != Some(index) {
            return bad(format!(
                "the leaf index does not map entry {index}'s hash back to it"
            ));
        }
        entries += 1;
    }
    if entries != size {
        return bad(format!(
            "{entries} entries stored, committed size is {size}"
        ));
    }
    let leaves = store.iter_cf(CF_LEAVES)?.count() as u64;
    if leaves != size {
        return bad(format!("{leaves} rows in the leaf index, expected {size}"));
    }
    Ok(entries)
}

/// Every tile has the width `size` implies and interior nodes that hash up,
/// and each row-0 node of a level ≥ 1 tile is the root of its child tile;
/// returns the tile count.
fn check_tiles(store: &Store, size: u64) -> Result<u64, LogError> {
    let mut tiles = 0u64;
    for item in store.iter_cf(CF_TILES)? {
        let (k, v) = item?;
        let Some(id) = TileId::from_key(&k) else {
            return bad("a tile key is malformed".into());
        };
        let tile = Tile::from_bytes(&v).map_err(|e| LogError::Corrupt(format!("{id}: {e}")))?;
        let want = width_at(id, size);
        if tile.width() != want {
            return bad(format!(
                "{id} has width {}, size {size} implies {want}",
                tile.width()
            ));
        }
        tile.check_interior()
            .map_err(|e| LogError::Corrupt(format!("{id}: {e}")))?;
        if id.level > 0 {
            for (j, node) in tile.row(0).iter().enumerate() {
                let Some(index) = id
                    .index
                    .checked_mul(WIDTH as u64)
                    .and_then(|i| i.checked_add(j as u64))
                else {
                    return bad(format!("{id} is beyond any tree size"));
                };
                let child = TileId {
                    level: id.level - 1,
                    index,
                };
                let ct = store
                    .tile(child)?
                    .ok_or_else(|| LogError::Corrupt(format!("{child} is missing")))?;
                if ct.full_root().as_ref() != Some(node) {
                    return bad(format!("{id} node {j} is not the root of {child}"));
                }
            }
        }
        tiles += 1;
    }
    Ok(tiles)
}

/// Every signed head's root is recomputed from the stored tree, its
/// signature verifies (when a verifier is given), and times never go
/// backwards; returns (head count, size of the latest head).
fn check_heads(
    store: &Store,
    nodes: &mut StoreNodes,
    size: u64,
    verifier: Option<&dyn TreeHeadVerifier>,
) -> Result<(u64, u64), LogError> {
    let mut heads = 0u64;
    let mut prev: Option<super::TreeHead> = None;
    for item in store.heads()? {
        let sth = item?;
        let h = sth.head;
        if h.size > size {
            return bad(format!(
                "a head is signed at size {} beyond the stored {size}",
                h.size
            ));
        }
        if merkle::root(nodes, h.size)? != h.root {
            return bad(format!(
                "the head at size {} does not match the stored tree",
                h.size
            ));
        }
        if let Some(v) = verifier {
            v.verify(&h, &sth.signature).map_err(|e| {
                LogError::Corrupt(format!("head at size {}: bad signature: {e}", h.size))
            })?;
        }
        if let Some(p) = prev
            && h.timestamp_ms < p.timestamp_ms
        {
            return bad(format!(
                "head at size {} is older than the head before it",
                h.size
            ));
        }
        prev = Some(h);
        heads += 1;
    }
    Ok((heads, prev.map(|h| h.size).unwrap_or(0)))
}
