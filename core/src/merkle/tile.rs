//! Tile layout: C2SP tlog-tiles addressing (256-wide tiles, levels of 8 tree
//! heights), stored with their interior rows.
//!
//! Tile `(level L, index N)` row 0 holds the perfect nodes at height `8L` with
//! indices `N*256 .. N*256+255` (level 0: leaf hashes); that row alone is the
//! C2SP tile body. Rows 1..=7 hold the nodes of heights `8L+1 ..= 8L+7` above
//! them, so any perfect node is one tile read away and proofs cost O(log n)
//! reads with no rehashing. The tile's own root (height `8L+8`) is an entry of
//! row 0 of tile `(L+1, N/256)`, not stored here.
//!
//! A partial tile of width `w` has `w >> r` nodes in row `r`; tiles only grow,
//! so an older partial tile is a prefix of the newer one and a reader never
//! needs a lock.

use super::{Hash, node_hash};

pub const HEIGHT: u32 = 8;
pub const WIDTH: usize = 1 << HEIGHT;
/// Serialized full tile: 2-byte width + (256+128+...+2) hashes.
pub const FULL_BYTES: usize = 2 + 510 * 32;

/// Addresses a tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub level: u8,
    pub index: u64,
}

/// "tile <level>/<index>": how logs, errors and fsck name a tile, so that
/// one grep finds a tile across all of them.
impl std::fmt::Display for TileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tile {}/{}", self.level, self.index)
    }
}

impl TileId {
    /// The tile holding the perfect node at `height`, `index`, and its row and
    /// offset inside that tile.
    pub fn locate(height: u8, index: u64) -> (TileId, usize, usize) {
        let level = height as u32 / HEIGHT;
        let row = height as u32 % HEIGHT;
        let per_tile_shift = HEIGHT - row;
        let tile = TileId {
            level: level as u8,
            index: index >> per_tile_shift,
        };
        let offset = (index & ((1u64 << per_tile_shift) - 1)) as usize;
        (tile, row as usize, offset)
    }

    /// Storage key: level byte then big-endian index, so tiles sort by level
    /// then position.
    pub fn key(&self) -> [u8; 9] {
        let mut k = [0u8; 9];
        k[0] = self.level;
        k[1..].copy_from_slice(&self.index.to_be_bytes());
        k
    }

    pub fn from_key(k: &[u8]) -> Option<TileId> {
        if k.len() != 9 {
            return None;
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&k[1..]);
        Some(TileId {
            level: k[0],
            index: u64::from_be_bytes(b),
        })
    }

    /// C2SP path segment for the index: `x001/x234/067`.
    pub fn c2sp_index_path(index: u64) -> String {
        let s = format!("{index}");
        let pad = (3 - s.len() % 3) % 3;
        let s = format!("{}{}", "0".repeat(pad), s);
        let groups: Vec<&str> = (0..s.len()).step_by(3).map(|i| &s[i..i + 3]).collect();
        let last = groups.len() - 1;
        groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                if i == last {
                    g.to_string()
                } else {
                    format!("x{g}")
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// Parses a C2SP tile path below `tile/`: `<L>/<N>[.p/<W>]`, N written as
/// `x001/x234/067`. Returns the tile and the requested partial width (None =
/// full). Strict: leading `x` groups, three digits each, L ≤ 63, 1 ≤ W ≤ 255.
pub fn parse_c2sp_path(segments: &[&str]) -> Option<(TileId, Option<usize>)> {
    let (level, rest) = segments.split_first()?;
    if level.is_empty() || level.len() > 2 || !level.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let level: u8 = level.parse().ok().filter(|l| *l <= 63)?;
    let (index_parts, width) = match rest {
        [parts @ .., last, w] if last.ends_with(".p") => {
            if w.starts_with('0') {
                return None;
            }
            let w: usize = w.parse().ok().filter(|w| (1..WIDTH).contains(w))?;
            let mut p: Vec<&str> = parts.to_vec();
            p.push(last.strip_suffix(".p")?);
            (p, Some(w))
        }
        parts => (parts.to_vec(), None),
    };
    let (last, prefix) = index_parts.split_last()?;
    let mut digits = String::new();
    for g in prefix {
        let g = g.strip_prefix('x')?;
        if g.len() != 3 || !g.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.push_str(g);
    }
    if last.len() != 3 || !last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.push_str(last);
    let index: u64 = digits.parse().ok()?;
    // Canonical form only (no redundant leading groups).
    if TileId::c2sp_index_path(index) != index_parts.join("/") {
        return None;
    }
    Some((TileId { level, index }, width))
}

/// Tile levels a u64-sized tree can have (8 bits per level, 2^64 leaves).
pub const MAX_LEVELS: usize = 9;

/// The C2SP path of hash tile `id` at `width` (`tile/<L>/<N>` when full,
/// `tile/<L>/<N>.p/<W>` when partial); `parse_c2sp_path` reads it back.
pub fn c2sp_path(id: TileId, width: usize) -> String {
    let n = TileId::c2sp_index_path(id.index);
    if width >= WIDTH {
        format!("tile/{}/{n}", id.level)
    } else {
        format!("tile/{}/{n}.p/{width}", id.level)
    }
}

/// Width of the tile at `level`, `index` in a tree of `size` leaves (0 if the
/// tile has no node yet, 256 if full).
pub fn width_at(id: TileId, size: u64) -> usize {
    // Levels 8..=63 are valid addresses (C2SP) but shift a u64 by ≥ 64 bits:
    // no node exists there. (A plain `>>` wraps in release builds; found by
    // the HTTP fuzz target as a 500 for `GET /tile/8/000.p/1`.)
    let nodes_at_level = size.checked_shr(HEIGHT * id.level as u32).unwrap_or(0);
    let first = id.index.saturating_mul(WIDTH as u64);
    nodes_at_level.saturating_sub(first).min(WIDTH as u64) as usize
}

/// One tile with all its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tile {
    /// rows[r] has `width >> r` hashes.
    rows: [Vec<Hash>; HEIGHT as usize],
}

impl Default for Tile {
    fn default() -> Self {
        Self::new()
    }
}

/// A stored tile that does not parse or whose rows do not hash up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error("tile bytes have length {0}, which no width explains")]
    BadLength(usize),
    #[error("tile width {0} is out of range")]
    BadWidth(usize),
    #[error("row {row} node {offset} does not equal the hash of its children")]
    InteriorMismatch { row: usize, offset: usize },
}

impl Tile {
    pub fn new() -> Self {
        Self {
            rows: Default::default(),
        }
    }

    pub fn width(&self) -> usize {
        self.rows[0].len()
    }

    pub fn is_full(&self) -> bool {
        self.width() == WIDTH
    }

    pub fn row(&self, r: usize) -> &[Hash] {
        &self.rows[r]
    }

    pub fn node(&self, row: usize, offset: usize) -> Option<&Hash> {
        self.rows.get(row)?.get(offset)
    }

    /// Appends a node to row 0 and completes the rows above. Returns the
    /// tile's root when this push filled the tile (it belongs to the parent).
    pub fn push(&mut self, node: Hash) -> Option<Hash> {
        debug_assert!(!self.is_full());
        self.rows[0].push(node);
        let mut r = 0;
        loop {
            let len = self.rows[r].len();
            if len % 2 == 1 {
                return None;
            }
            let parent = node_hash(&self.rows[r][len - 2], &self.rows[r][len - 1]);
            if r + 1 == HEIGHT as usize {
                return Some(parent);
            }
            self.rows[r + 1].push(parent);
            r += 1;
        }
    }

    /// The root of a full tile (the height-8 node above row 7).
    pub fn full_root(&self) -> Option<Hash> {
        if !self.is_full() {
            return None;
        }
        let top = &self.rows[HEIGHT as usize - 1];
        Some(node_hash(&top[0], &top[1]))
    }

    /// The C2SP tile body: row 0 concatenated.
    pub fn c2sp_bytes(&self) -> Vec<u8> {
        self.rows[0]
            .iter()
            .flat_map(|h| h.iter().copied())
            .collect()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let total: usize = self.rows.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(2 + total * 32);
        out.extend_from_slice(&(self.width() as u16).to_be_bytes());
        for row in &self.rows {
            for h in row {
                out.extend_from_slice(h);
            }
        }
        out
    }

    /// Parses stored bytes. Interior rows are taken as stored; call
    /// [`Tile::check_interior`] to recompute them (fsck, verify-before-sign).
    pub fn from_bytes(b: &[u8]) -> Result<Tile, TileError> {
        if b.len() < 2 {
            return Err(TileError::BadLength(b.len()));
        }
        let width = u16::from_be_bytes([b[0], b[1]]) as usize;
        if width == 0 || width > WIDTH {
            return Err(TileError::BadWidth(width));
        }
        let counts: Vec<usize> = (0..HEIGHT as usize).map(|r| width >> r).collect();
        let total: usize = counts.iter().sum();
        if b.len() != 2 + total * 32 {
            return Err(TileError::BadLength(b.len()));
        }
        let mut tile = Tile::new();
        let mut pos = 2;
        for (r, &count) in counts.iter().enumerate() {
            tile.rows[r].reserve_exact(count);
            for _ in 0..count {
                let mut h = [0u8; 32];
                h.copy_from_slice(&b[pos..pos + 32]);
                tile.rows[r].push(h);
                pos += 32;
            }
        }
        Ok(tile)
    }

    /// Recomputes every interior node from row 0 and compares.
    pub fn check_interior(&self) -> Result<(), TileError> {
        for r in 1..HEIGHT as usize {
            for (i, h) in self.rows[r].iter().enumerate() {
                let want = node_hash(&self.rows[r - 1][2 * i], &self.rows[r - 1][2 * i + 1]);
                if want != *h {
                    return Err(TileError::InteriorMismatch { row: r, offset: i });
                }
            }
        }
        Ok(())
    }

    /// Keeps only the first `width` nodes of row 0 (and what they complete).
    pub fn truncated(&self, width: usize) -> Tile {
        let mut t = Tile::new();
        for r in 0..HEIGHT as usize {
            let n = (width >> r).min(self.rows[r].len());
            t.rows[r] = self.rows[r][..n].to_vec();
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{MemoryTree, leaf_hash};

    #[test]
    fn c2sp_paths_match_the_spec_examples() {
        assert_eq!(TileId::c2sp_index_path(1234067), "x001/x234/067");
        assert_eq!(TileId::c2sp_index_path(0), "000");
        assert_eq!(TileId::c2sp_index_path(1000), "x001/000");
        let id = TileId {
            level: 1,
            index: 1234,
        };
        assert_eq!(c2sp_path(id, 256), "tile/1/x001/234");
        assert_eq!(c2sp_path(id, 17), "tile/1/x001/234.p/17");
        let p = c2sp_path(id, 17);
        let segs: Vec<&str> = p.split('/').skip(1).collect();
        assert_eq!(parse_c2sp_path(&segs), Some((id, Some(17))));
    }

    #[test]
    fn widths_match_the_spec_example_for_size_70000() {
        // tlog-tiles: size 70,000 → 273 full L0 tiles + partial width 112,
        // 1 full L1 tile + partial width 17, L2 partial width 1.
        assert_eq!(
            width_at(
                TileId {
                    level: 0,
                    index: 272
                },
                70_000
            ),
            256
        );
        assert_eq!(
            width_at(
                TileId {
                    level: 0,
                    index: 273
                },
                70_000
            ),
            112
        );
        assert_eq!(width_at(TileId { level: 1, index: 0 }, 70_000), 256);
        assert_eq!(width_at(TileId { level: 1, index: 1 }, 70_000), 17);
        assert_eq!(width_at(TileId { level: 2, index: 0 }, 70_000), 1);
        assert_eq!(
            width_at(
                TileId {
                    level: 0,
                    index: 274
                },
                70_000
            ),
            0
        );
        // Levels 8..=63 are addressable but hold no node.
        for level in [8, 9, 63] {
            assert_eq!(width_at(TileId { level, index: 0 }, u64::MAX), 0);
        }
    }

    #[test]
    fn a_full_tile_root_is_the_height_8_node_and_bytes_round_trip() {
        let leaves: Vec<Hash> = (0..256u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut tile = Tile::new();
        let mut root = None;
        for l in &leaves {
            root = tile.push(*l);
        }
        let tree = MemoryTree::from_leaf_hashes(leaves.iter().copied());
        assert_eq!(root, Some(tree.root_at(256)));
        assert_eq!(tile.full_root(), root);
        let bytes = tile.to_bytes();
        assert_eq!(bytes.len(), FULL_BYTES);
        let back = Tile::from_bytes(&bytes).unwrap();
        assert_eq!(back, tile);
        back.check_interior().unwrap();
        // A flipped interior bit is found.
        let mut bad = bytes.clone();
        bad[2 + 300 * 32] ^= 1;
        assert!(Tile::from_bytes(&bad).unwrap().check_interior().is_err());
        // Lengths that no width explains are refused.
        assert!(Tile::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn c2sp_tile_paths_parse_strictly() {
        assert_eq!(
            parse_c2sp_path(&["0", "000"]),
            Some((TileId { level: 0, index: 0 }, None))
        );
        assert_eq!(
            parse_c2sp_path(&["1", "x001", "x234", "067"]),
            Some((
                TileId {
                    level: 1,
                    index: 1234067
                },
                None
            ))
        );
        assert_eq!(
            parse_c2sp_path(&["0", "x001", "000.p", "112"]),
            Some((
                TileId {
                    level: 0,
                    index: 1000
                },
                Some(112)
            ))
        );
        for bad in [
            &["0", "0"][..],
            &["0", "x000", "001"],
            &["64", "000"],
            &["0", "000.p", "256"],
            &["0", "000.p", "0"],
            &["a", "000"],
        ] {
            assert_eq!(parse_c2sp_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn locate_finds_rows_and_offsets() {
        assert_eq!(TileId::locate(0, 0), (TileId { level: 0, index: 0 }, 0, 0));
        assert_eq!(
            TileId::locate(0, 257),
            (TileId { level: 0, index: 1 }, 0, 1)
        );
        assert_eq!(TileId::locate(3, 33), (TileId { level: 0, index: 1 }, 3, 1));
        assert_eq!(TileId::locate(8, 5), (TileId { level: 1, index: 0 }, 0, 5));
        assert_eq!(
            TileId::locate(9, 200),
            (TileId { level: 1, index: 1 }, 1, 72)
        );
    }
}
