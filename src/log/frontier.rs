//! The sequencer's in-memory right edge of the tree: the one partial tile
//! per level that is still growing. Every perfect node on the path from the
//! newest leaf to the root lives in one of them, so the sequencer computes
//! roots and the fresh entries' inclusion proofs without reading storage.

use super::LogError;
use super::store::Store;
use crate::merkle::tile::{HEIGHT, Tile, TileId, width_at};
use crate::merkle::{self, Hash, NodeSource};

pub use crate::merkle::tile::MAX_LEVELS;

/// The right edge: for each level, the partial tile still growing (maybe
/// empty). Every perfect node on the path to the root lives in one of them.
pub(super) struct Frontier {
    pub size: u64,
    pub tiles: Vec<Tile>,
}

impl Frontier {
    pub fn tile_id(&self, level: usize) -> TileId {
        TileId {
            level: level as u8,
            index: self.size.checked_shr(HEIGHT * level as u32).unwrap_or(0) >> HEIGHT,
        }
    }

    pub fn load(store: &Store, size: u64) -> Result<Frontier, LogError> {
        let mut f = Frontier {
            size,
            tiles: Vec::new(),
        };
        let mut level = 0usize;
        while level == 0 || size.checked_shr(HEIGHT * level as u32).unwrap_or(0) > 0 {
            let id = f.tile_id(level);
            let width = width_at(id, size);
            let tile = if width == 0 {
                Tile::new()
            } else {
                let t = store
                    .tile(id)?
                    .ok_or_else(|| LogError::Corrupt(format!("right-edge {id} is missing")))?;
                t.check_interior()
                    .map_err(|e| LogError::Corrupt(format!("{id}: {e}")))?;
                if t.width() < width {
                    return Err(LogError::Corrupt(format!(
                        "{id} has width {}, size {size} needs {width}",
                        t.width()
                    )));
                }
                // Tiles and the data size are written in one WriteBatch, so a
                // tile wider than `size` needs it to have been altered outside
                // the log (fsck reports that). The frontier is cut to `size`:
                // only leaves below the durable size ever count.
                t.truncated(width)
            };
            f.tiles.push(tile);
            level += 1;
            if level >= MAX_LEVELS {
                break;
            }
        }
        Ok(f)
    }

    /// Appends a leaf; full tiles are moved into `done`, partial ones marked.
    pub fn push(
        &mut self,
        leaf: Hash,
        done: &mut Vec<(TileId, Tile)>,
        touched: &mut [bool; MAX_LEVELS],
    ) {
        let mut node = leaf;
        let mut level = 0usize;
        loop {
            if self.tiles.len() <= level {
                self.tiles.push(Tile::new());
            }
            let id = self.tile_id(level);
            if let Some(t) = touched.get_mut(level) {
                *t = true;
            }
            match self.tiles[level].push(node) {
                None => break,
                Some(root) => {
                    done.push((id, std::mem::take(&mut self.tiles[level])));
                    node = root;
                    level += 1;
                }
            }
        }
        self.size += 1;
    }

    /// Adds to `wb` every tile a run of [`Frontier::push`]es changed: the
    /// ones completed (`done`) and the partial right-edge tiles of the
    /// levels `touched`. Returns their ids (the sequencer re-reads them
    /// before signing).
    pub fn put_tiles(
        &self,
        store: &Store,
        wb: &mut rocksdb::WriteBatch,
        done: &[(TileId, Tile)],
        touched: &[bool; MAX_LEVELS],
    ) -> Result<Vec<TileId>, LogError> {
        let mut written = Vec::with_capacity(done.len() + MAX_LEVELS);
        for (id, tile) in done {
            store.put_tile(wb, *id, tile)?;
            written.push(*id);
        }
        for (level, was) in touched.iter().enumerate() {
            if *was && level < self.tiles.len() && self.tiles[level].width() > 0 {
                let id = self.tile_id(level);
                store.put_tile(wb, id, &self.tiles[level])?;
                written.push(id);
            }
        }
        Ok(written)
    }

    pub fn root(&self) -> Hash {
        let mut src = FrontierNodes(self);
        merkle::root(&mut src, self.size).unwrap_or([0; 32])
    }
}

/// The right edge plus the tiles completed in the last batch: every sibling
/// on the path of a leaf from that batch is in one of them.
pub(super) struct MemoryNodes<'a> {
    pub frontier: &'a Frontier,
    pub done: &'a [(TileId, Tile)],
}

impl NodeSource for MemoryNodes<'_> {
    type Error = ();
    fn perfect_node(&mut self, height: u8, index: u64) -> Result<Hash, ()> {
        if let Ok(h) = FrontierNodes(self.frontier).perfect_node(height, index) {
            return Ok(h);
        }
        let (id, row, offset) = TileId::locate(height, index);
        self.done
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, t)| t.node(row, offset))
            .copied()
            .ok_or(())
    }
}

pub(super) struct FrontierNodes<'a>(pub &'a Frontier);

impl NodeSource for FrontierNodes<'_> {
    type Error = ();
    fn perfect_node(&mut self, height: u8, index: u64) -> Result<Hash, ()> {
        let (id, row, offset) = TileId::locate(height, index);
        let level = id.level as usize;
        if self.0.tile_id(level) != id {
            return Err(());
        }
        self.0
            .tiles
            .get(level)
            .and_then(|t| t.node(row, offset))
            .copied()
            .ok_or(())
    }
}
