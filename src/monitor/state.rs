//! The monitor's own state: a RocksDB under `--state DIR`.
//!
//! | key | value |
//! |---|---|
//! | `meta/url` | where the log was last read (informative) |
//! | `meta/keys` | the pinned service keys (COSE_KeySet) |
//! | `meta/leaf_rule` | the log's leaf rule |
//! | `meta/position` | JSON `ReplayPosition` (next entry, last map root, delegates) |
//! | `meta/compact` | the compact range over the entries read |
//! | `meta/map_root` | the replay's map root when saved (checked at resume) |
//! | `meta/head` | the last signed head verified against the entries |
//! | `s` ‖ key | the CBOR state of one vCon |
//!
//! Everything is written in one `WriteBatch`, only at a map-root boundary
//! (every folded state is in the map), so a crash leaves the state of one
//! consistent position, and a restart resumes from it.

use std::path::Path;

use crate::keys::KeySet;
use crate::map::{Key, MapTree};
use crate::merkle::{CompactRange, Hash, LeafRule};
use crate::tree_head::{SignedTreeHead, TreeHead};
use crate::vcon::replay::{MapReplay, ReplayPosition, StateSource};
use crate::vcon::state::VconState;

const URL: &[u8] = b"meta/url";
const KEYS: &[u8] = b"meta/keys";
const LEAF_RULE: &[u8] = b"meta/leaf_rule";
const POSITION: &[u8] = b"meta/position";
const COMPACT: &[u8] = b"meta/compact";
const MAP_ROOT: &[u8] = b"meta/map_root";
const HEAD: &[u8] = b"meta/head";
const STATE_PREFIX: &[u8] = b"s";

pub struct MonitorState {
    db: rocksdb::DB,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl MonitorState {
    pub fn open(dir: &Path) -> Result<MonitorState, String> {
        crate::durable::create_private_dir_all(dir).map_err(err)?;
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        let db = rocksdb::DB::open(&o, dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(MonitorState { db })
    }

    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.db.get(k).map_err(err)
    }

    /// The pinned keys (None: not pinned yet; unreadable: an error, never
    /// silently re-fetched).
    pub fn keys(&self) -> Result<Option<KeySet>, String> {
        self.get(KEYS)?
            .map(|b| KeySet::parse_any(&b).map_err(|e| format!("meta/keys: {e}")))
            .transpose()
    }

    /// The pinned leaf rule (None: not pinned yet).
    pub fn leaf_rule(&self) -> Result<Option<LeafRule>, String> {
        self.get(LEAF_RULE)?
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .parse()
                    .map_err(|e| format!("meta/leaf_rule: {e}"))
            })
            .transpose()
    }

    /// The last size verified against a signed head (0: none yet).
    pub fn verified_size(&self) -> u64 {
        self.get(HEAD)
            .ok()
            .flatten()
            .and_then(|b| SignedTreeHead::from_record(&b))
            .map_or(0, |h| h.head.size)
    }

    /// Records the URL (where the log was last read; it may move), the
    /// keys and the leaf rule. A state that pinned another leaf rule is
    /// refused; one that follows another log fails on its first
    /// checkpoint (not signed by the pinned keys, or not the root of the
    /// entries the state has read).
    pub fn pin(&mut self, url: &str, keys: &KeySet, rule: LeafRule) -> Result<(), String> {
        if let Some(old) = self.leaf_rule()?
            && old != rule
        {
            return Err(format!("this state pinned leaf rule {old}, not {rule}"));
        }
        let mut wb = rocksdb::WriteBatch::default();
        wb.put(URL, url.as_bytes());
        wb.put(KEYS, keys.to_cose_keyset());
        wb.put(LEAF_RULE, rule.name().as_bytes());
        self.write(wb)
    }

    fn write(&self, wb: rocksdb::WriteBatch) -> Result<(), String> {
        let mut w = rocksdb::WriteOptions::default();
        w.set_sync(true);
        self.db.write_opt(wb, &w).map_err(err)
    }

    /// The replay and compact range where the last save left them; the map
    /// tree is rebuilt from the stored states and must have the saved root.
    pub fn resume(&self, keys: KeySet) -> Result<(MapReplay, CompactRange), String> {
        let pos: ReplayPosition = match self.get(POSITION)? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| format!("meta/position: {e}"))?,
            None => ReplayPosition::default(),
        };
        let compact = match self.get(COMPACT)? {
            Some(b) => CompactRange::from_bytes(&b).ok_or("meta/compact is not a compact range")?,
            None => CompactRange::new(),
        };
        if compact.size() != pos.next_index {
            return Err(format!(
                "meta/compact covers {} entries but the replay is at {}",
                compact.size(),
                pos.next_index
            ));
        }
        let mut items: Vec<(Key, Hash)> = Vec::new();
        for row in self.db.prefix_iterator(STATE_PREFIX) {
            let (k, v) = row.map_err(err)?;
            if !k.starts_with(STATE_PREFIX) {
                break;
            }
            let key: Key = k[STATE_PREFIX.len()..]
                .try_into()
                .map_err(|_| "a state key is not 32 bytes".to_string())?;
            items.push((key, VconState::from_cbor(&v).map_err(err)?.value()));
        }
        let mut tree = MapTree::with_capacity(items.len());
        tree.apply_batch(&items).map_err(err)?;
        if let Some(root) = self.get(MAP_ROOT)?
            && root != tree.root()
        {
            return Err("the map rebuilt from the stored vCon states is not the one saved: the state directory was altered".into());
        }
        Ok((MapReplay::resume(Some(keys), pos, tree), compact))
    }

    /// Saves the replay's changed states, its position and the compact
    /// range (and the head they were verified against) in one batch. Only
    /// at a map-root boundary.
    pub fn save(
        &mut self,
        replay: &mut MapReplay,
        compact: &CompactRange,
        head: Option<(&TreeHead, &[u8])>,
    ) -> Result<(), String> {
        if !replay.at_map_root() {
            return Err("saving between map-root entries".into());
        }
        let mut wb = rocksdb::WriteBatch::default();
        for (key, _, state) in replay.take_changed() {
            wb.put([STATE_PREFIX, &key].concat(), state.to_cbor());
        }
        wb.put(
            POSITION,
            serde_json::to_vec(replay.position()).map_err(err)?,
        );
        wb.put(COMPACT, compact.to_bytes());
        wb.put(MAP_ROOT, replay.tree().root());
        if let Some((h, sig)) = head {
            let rec = SignedTreeHead {
                head: *h,
                signature: sig.to_vec(),
            };
            wb.put(HEAD, rec.to_record());
        }
        self.write(wb)
    }
}

impl StateSource for MonitorState {
    fn state(&mut self, key: &Key) -> Result<Option<VconState>, String> {
        match self.get(&[STATE_PREFIX, key].concat())? {
            Some(v) => VconState::from_cbor(&v).map(Some).map_err(err),
            None => Ok(None),
        }
    }
}
