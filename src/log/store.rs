//! RocksDB layout. Everything a batch adds goes in one `WriteBatch` with a
//! synced WAL, so after a crash a batch is either wholly present or absent.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `entries` | index (u64 BE) | entry bytes (see `proto/entry.cddl`) |
//! | `leaves` | leaf hash (32 B) | index (u64 BE) — dedup and entry-id lookup |
//! | `tiles` | level (u8) ‖ tile index (u64 BE) | [`Tile`] bytes (row 0 + interior rows) |
//! | `heads` | tree size (u64 BE) | [`SignedTreeHead`] record |
//! | `meta` | name | value (`size`: committed leaf count, u64 BE; `identities`: present once every entry has its identity row, see [`Store::backfill_identities`]; `leaf_rule`: the [`LeafRule`] name, fixed when the first entry's log was created, see [`Store::open_log`]) |
//! | `identities` | identity (32 B) | index (u64 BE) ‖ leaf (32 B): the entry registered under a caller-chosen identity, written by the sequencer in the entry's batch |
//! | `index` | secondary keys | written by the service layer in the same batch |

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Direction,
    IteratorMode, Options, WriteBatch, WriteOptions,
};

use super::{LogError, SignedTreeHead};
use crate::merkle::LeafRule;
use crate::merkle::tile::{Tile, TileId};
use crate::merkle::{Hash, NodeSource};

/// A raw (key, value) row.
pub type KeyValue = (Box<[u8]>, Box<[u8]>);

pub const CF_ENTRIES: &str = "entries";
pub const CF_LEAVES: &str = "leaves";
pub const CF_TILES: &str = "tiles";
pub const CF_HEADS: &str = "heads";
pub const CF_META: &str = "meta";
pub const CF_INDEX: &str = "index";
pub const CF_IDENTITIES: &str = "identities";
const ALL_CFS: [&str; 7] = [
    CF_ENTRIES,
    CF_LEAVES,
    CF_TILES,
    CF_HEADS,
    CF_META,
    CF_INDEX,
    CF_IDENTITIES,
];

const META_SIZE: &[u8] = b"size";
/// Present once every stored entry has its identity row (value: the number
/// of entries the backfill covered, u64 BE).
const META_IDENTITIES: &[u8] = b"identities";
/// How an entry becomes its leaf hash ([`LeafRule`] name). Absent in stores
/// written before the rule was a setting, all of which used `entry`.
const META_LEAF_RULE: &[u8] = b"leaf_rule";
/// The largest size known to be in the log's published history (u64 BE):
/// the publisher's last checkpoint (its lease's compare-and-swap, when
/// fenced), or the last head a follower verified from the bucket. It may
/// lag the log's published size: the publisher writes it after each round's
/// checkpoint, unsynced, and at resume the bucket's (which follows etcd's).
/// Heads above it may be unpublished (`crate::rewind`, which also asks etcd).
/// Absent: a store no publisher or follower wrote (nothing known).
const META_PUBLISHED: &[u8] = b"published";

/// Rows per write batch while backfilling identity rows: bounds the
/// memory a backfill of a large log holds at once.
const BACKFILL_BATCH: usize = 10_000;

/// What [`Store::backfill_identities`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backfill {
    /// Entries read.
    pub entries: u64,
    /// Identity rows written.
    pub rows: u64,
    /// Entries whose identity an earlier entry already had (registered
    /// twice before identities existed; the earlier one keeps the row).
    pub shared: u64,
}

fn identity_value(index: u64, leaf: &Hash) -> [u8; 40] {
    let mut v = [0u8; 40];
    v[..8].copy_from_slice(&index.to_be_bytes());
    v[8..].copy_from_slice(leaf);
    v
}

/// (index, leaf) from an identity row's value.
pub(crate) fn parse_identity_value(v: &[u8]) -> Option<(u64, Hash)> {
    if v.len() != 40 {
        return None;
    }
    let index = be_u64(&v[..8])?;
    let leaf: Hash = v[8..].try_into().ok()?;
    Some((index, leaf))
}

/// The store handle: a RocksDB instance shared by the sequencer (sole writer)
/// and any number of readers.
pub struct Store {
    db: DB,
    /// Read once at open: every component that hashes a stored entry (the
    /// sequencer's check before signing, fsck, backfills) asks the store, so
    /// one log never mixes rules.
    leaf_rule: LeafRule,
}

impl Store {
    /// Opens (creating if missing) a store whose leaf rule is the recorded
    /// one, or `entry` (RFC 9162's plain `SHA-256(0x00 ‖ entry)`, what the
    /// generic log and older stores use) if none is recorded.
    pub fn open(path: &Path) -> Result<Arc<Store>, LogError> {
        Self::open_inner(path, false, None)
    }

    /// Opens the store of a log, fixing its leaf rule on first use: a store
    /// with no entries and no recorded rule takes `new_log_rule` (recorded
    /// durably before any entry); a store with entries but no recorded rule
    /// predates the setting and is recorded as `entry`, the rule it was
    /// written under; a recorded rule is kept. The caller compares the
    /// result with what its configuration asked for.
    pub fn open_log(path: &Path, new_log_rule: LeafRule) -> Result<Arc<Store>, LogError> {
        Self::open_inner(path, false, Some(new_log_rule))
    }

    /// Opens without write access, for fsck against a live data dir.
    pub fn open_read_only(path: &Path) -> Result<Arc<Store>, LogError> {
        Self::open_inner(path, true, None)
    }

    /// The rule this log hashes its entries into leaves with.
    pub fn leaf_rule(&self) -> LeafRule {
        self.leaf_rule
    }

    /// The leaf hash of a stored entry under this log's rule.
    pub fn leaf_hash(&self, entry: &[u8]) -> Hash {
        self.leaf_rule.hash_entry(entry)
    }

    fn open_inner(
        path: &Path,
        read_only: bool,
        new_log_rule: Option<LeafRule>,
    ) -> Result<Arc<Store>, LogError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        // Refuse to open over a corrupt WAL tail silently: only a torn last
        // record (a crash mid-write) may be dropped.
        opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
        let cfs = ALL_CFS.iter().map(|name| {
            let mut o = Options::default();
            let mut bbo = BlockBasedOptions::default();
            match *name {
                // Statements and the vCon index rows (JSON) are compressible:
                // measured 2.1x for statements, see BENCHMARKS.md (storage).
                CF_ENTRIES | CF_INDEX => o.set_compression_type(DBCompressionType::Lz4),
                // Dedup reads a leaf and an identity per new statement, both
                // absent: the identities live in their own family (not among
                // the vCon rows, which are never point-read on the write
                // path) so that only these two carry bloom filters.
                CF_LEAVES | CF_IDENTITIES => {
                    // Dedup looks up mostly-absent keys: a bloom filter makes a miss
                    // cost no disk read.
                    bbo.set_bloom_filter(10.0, false);
                    o.set_compression_type(DBCompressionType::None);
                    // ...and in the memtable: a miss skips the skiplist search,
                    // which was the sequencer's largest RocksDB cost (profile in
                    // BENCHMARKS.md).
                    o.set_memtable_prefix_bloom_ratio(0.05);
                    o.set_memtable_whole_key_filtering(true);
                }
                _ => o.set_compression_type(DBCompressionType::None),
            }
            bbo.set_cache_index_and_filter_blocks(true);
            o.set_block_based_table_factory(&bbo);
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = if read_only {
            DB::open_cf_descriptors_read_only(&opts, path, cfs, false)
        } else {
            DB::open_cf_descriptors(&opts, path, cfs)
        }
        .map_err(|e| LogError::Storage(format!("opening {}: {e}", path.display())))?;
        let mut store = Store {
            db,
            leaf_rule: LeafRule::Entry,
        };
        match store.get(CF_META, META_LEAF_RULE)? {
            Some(name) => {
                store.leaf_rule = std::str::from_utf8(&name)
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| {
                        LogError::Corrupt(format!(
                            "meta leaf_rule {:?} names no known leaf rule",
                            String::from_utf8_lossy(&name)
                        ))
                    })?;
            }
            None => {
                if let Some(rule) = new_log_rule {
                    let fresh = store.data_size()? == 0;
                    store.leaf_rule = if fresh { rule } else { LeafRule::Entry };
                    let mut wb = WriteBatch::default();
                    wb.put_cf(
                        store.cf(CF_META)?,
                        META_LEAF_RULE,
                        store.leaf_rule.name().as_bytes(),
                    );
                    store.write_synced(wb)?;
                }
            }
        }
        Ok(Arc::new(store))
    }

    pub fn cf(&self, name: &str) -> Result<&ColumnFamily, LogError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| LogError::Corrupt(format!("column family {name} is missing")))
    }

    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        self.db.get_cf(self.cf(cf)?, key).map_err(storage)
    }

    /// Writes a batch with the WAL fsync'd before returning.
    pub fn write_synced(&self, batch: WriteBatch) -> Result<(), LogError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(storage)
    }

    /// Number of leaves whose data is durable (may exceed the latest signed
    /// head after a crash between the data write and the head write).
    pub fn data_size(&self) -> Result<u64, LogError> {
        match self.get(CF_META, META_SIZE)? {
            None => Ok(0),
            Some(v) => {
                be_u64(&v).ok_or_else(|| LogError::Corrupt("meta size is not 8 bytes".into()))
            }
        }
    }

    pub fn put_data_size(&self, batch: &mut WriteBatch, size: u64) -> Result<(), LogError> {
        batch.put_cf(self.cf(CF_META)?, META_SIZE, size.to_be_bytes());
        Ok(())
    }

    /// The size of the log's published history this store holds
    /// ([`META_PUBLISHED`]); `None` when nothing was recorded.
    pub fn published_size(&self) -> Result<Option<u64>, LogError> {
        match self.get(CF_META, META_PUBLISHED)? {
            None => Ok(None),
            Some(v) => be_u64(&v)
                .map(Some)
                .ok_or_else(|| LogError::Corrupt("meta published is not 8 bytes".into())),
        }
    }

    /// Records `size` as published, in `batch` (a follower's append).
    pub fn put_published_size(&self, batch: &mut WriteBatch, size: u64) -> Result<(), LogError> {
        batch.put_cf(self.cf(CF_META)?, META_PUBLISHED, size.to_be_bytes());
        Ok(())
    }

    /// Records `size` as published (the publisher, after a round). Not
    /// synced: the WAL write reaches disk with the sequencer's next synced
    /// batch, and a record lost in a crash only leaves an older published
    /// size, which is still in the log's history.
    pub fn record_published_size(&self, size: u64) -> Result<(), LogError> {
        let mut batch = WriteBatch::default();
        self.put_published_size(&mut batch, size)?;
        self.db.write(batch).map_err(storage)
    }

    pub fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, LogError> {
        self.get(CF_ENTRIES, &index.to_be_bytes())
    }

    pub fn index_of(&self, leaf: &Hash) -> Result<Option<u64>, LogError> {
        match self.get(CF_LEAVES, leaf)? {
            None => Ok(None),
            Some(v) => be_u64(&v)
                .map(Some)
                .ok_or_else(|| LogError::Corrupt("leaf index value is not 8 bytes".into())),
        }
    }

    /// The entry stored under a caller-chosen identity: (index, leaf).
    pub fn identity(&self, identity: &Hash) -> Result<Option<(u64, Hash)>, LogError> {
        match self.get(CF_IDENTITIES, identity)? {
            None => Ok(None),
            Some(v) => parse_identity_value(&v).map(Some).ok_or_else(|| {
                LogError::Corrupt("an identity row is not index (8 B) ‖ leaf (32 B)".into())
            }),
        }
    }

    pub fn put_identity(
        &self,
        batch: &mut WriteBatch,
        identity: &Hash,
        index: u64,
        leaf: &Hash,
    ) -> Result<(), LogError> {
        batch.put_cf(
            self.cf(CF_IDENTITIES)?,
            identity,
            identity_value(index, leaf),
        );
        Ok(())
    }

    /// Every identity row in key order, as (identity, index, leaf) (fsck).
    pub fn identities(
        &self,
    ) -> Result<impl Iterator<Item = Result<(Hash, u64, Hash), LogError>> + '_, LogError> {
        Ok(self.iter_cf(CF_IDENTITIES)?.map(|r| {
            let (k, v) = r?;
            let identity: Option<Hash> = k[..].try_into().ok();
            match (identity, parse_identity_value(&v)) {
                (Some(id), Some((index, leaf))) => Ok((id, index, leaf)),
                _ => Err(LogError::Corrupt(format!(
                    "identity row {} is malformed",
                    hex::encode(&k)
                ))),
            }
        }))
    }

    /// Gives every stored entry its identity row, once: databases written
    /// before identity rows existed have none, and a dedup that missed them
    /// would take a second copy of an old entry as new. `identity_of` is the
    /// caller's (the log does not know what its entries are); entries it
    /// returns None for get no row. When several entries share an identity
    /// the earliest keeps the row. Rows go in synced batches of
    /// [`BACKFILL_BATCH`], the `identities` marker with the last;
    /// an interrupted run starts over and rewrites the same rows.
    ///
    /// Runs before the sequencer starts (it writes outside it); returns None
    /// when the marker says it already ran.
    pub fn backfill_identities(
        &self,
        identity_of: &dyn Fn(&[u8]) -> Option<Hash>,
    ) -> Result<Option<Backfill>, LogError> {
        if self.get(CF_META, META_IDENTITIES)?.is_some() {
            return Ok(None);
        }
        let size = self.data_size()?;
        let mut done = Backfill::default();
        let mut wb = WriteBatch::default();
        let mut in_batch: std::collections::HashSet<Hash> = std::collections::HashSet::new();
        for item in self.iter_cf(CF_ENTRIES)? {
            let (k, entry) = item?;
            let Some(index) = be_u64(&k).filter(|&i| i < size) else {
                break;
            };
            done.entries += 1;
            if let Some(id) = identity_of(&entry) {
                let earlier = match self.identity(&id)? {
                    // Written by an interrupted run: this entry's own row.
                    Some((i, _)) => i != index,
                    None => in_batch.contains(&id),
                };
                if earlier {
                    done.shared += 1;
                } else {
                    let leaf = self.leaf_hash(&entry);
                    self.put_identity(&mut wb, &id, index, &leaf)?;
                    in_batch.insert(id);
                    done.rows += 1;
                }
            }
            if in_batch.len() >= BACKFILL_BATCH {
                self.write_synced(std::mem::take(&mut wb))?;
                in_batch.clear();
            }
        }
        wb.put_cf(
            self.cf(CF_META)?,
            META_IDENTITIES,
            done.entries.to_be_bytes(),
        );
        self.write_synced(wb)?;
        Ok(Some(done))
    }

    pub fn tile(&self, id: TileId) -> Result<Option<Tile>, LogError> {
        match self.get(CF_TILES, &id.key())? {
            None => Ok(None),
            Some(b) => Tile::from_bytes(&b)
                .map(Some)
                .map_err(|e| LogError::Corrupt(format!("{id}: {e}"))),
        }
    }

    pub fn put_tile(
        &self,
        batch: &mut WriteBatch,
        id: TileId,
        tile: &Tile,
    ) -> Result<(), LogError> {
        batch.put_cf(self.cf(CF_TILES)?, id.key(), tile.to_bytes());
        Ok(())
    }

    pub fn put_entry(
        &self,
        batch: &mut WriteBatch,
        index: u64,
        leaf: &Hash,
        entry: &[u8],
    ) -> Result<(), LogError> {
        batch.put_cf(self.cf(CF_ENTRIES)?, index.to_be_bytes(), entry);
        batch.put_cf(self.cf(CF_LEAVES)?, leaf, index.to_be_bytes());
        Ok(())
    }

    pub fn put_head(&self, batch: &mut WriteBatch, head: &SignedTreeHead) -> Result<(), LogError> {
        batch.put_cf(
            self.cf(CF_HEADS)?,
            head.head.size.to_be_bytes(),
            head.to_record(),
        );
        Ok(())
    }

    pub fn head(&self, size: u64) -> Result<Option<SignedTreeHead>, LogError> {
        match self.get(CF_HEADS, &size.to_be_bytes())? {
            None => Ok(None),
            Some(b) => from_record(&b).map(Some),
        }
    }

    /// The signed head with the largest size.
    pub fn latest_head(&self) -> Result<Option<SignedTreeHead>, LogError> {
        let mut it = self.db.iterator_cf(self.cf(CF_HEADS)?, IteratorMode::End);
        match it.next() {
            None => Ok(None),
            Some(Err(e)) => Err(storage(e)),
            Some(Ok((_, v))) => from_record(&v).map(Some),
        }
    }

    /// The first signed head whose tree contains leaf `index`: the head of the
    /// batch that included it. Receipts at that head are stable.
    pub fn first_head_covering(&self, index: u64) -> Result<Option<SignedTreeHead>, LogError> {
        let from = (index.saturating_add(1)).to_be_bytes();
        let mut it = self.db.iterator_cf(
            self.cf(CF_HEADS)?,
            IteratorMode::From(&from, Direction::Forward),
        );
        match it.next() {
            None => Ok(None),
            Some(Err(e)) => Err(storage(e)),
            Some(Ok((_, v))) => from_record(&v).map(Some),
        }
    }

    /// All signed heads in size order (fsck, audits).
    pub fn heads(
        &self,
    ) -> Result<impl Iterator<Item = Result<SignedTreeHead, LogError>> + '_, LogError> {
        Ok(self
            .db
            .iterator_cf(self.cf(CF_HEADS)?, IteratorMode::Start)
            .map(|r| r.map_err(storage).and_then(|(_, v)| from_record(&v))))
    }

    /// The signed heads above `size`, in size order (the publisher, which
    /// copies every head to object storage).
    pub fn heads_after(
        &self,
        size: u64,
    ) -> Result<impl Iterator<Item = Result<SignedTreeHead, LogError>> + '_, LogError> {
        let from = size.saturating_add(1).to_be_bytes();
        Ok(self
            .db
            .iterator_cf(
                self.cf(CF_HEADS)?,
                IteratorMode::From(&from, Direction::Forward),
            )
            .map(|r| r.map_err(storage).and_then(|(_, v)| from_record(&v))))
    }

    /// Raw iteration over a column family in key order.
    pub fn iter_cf<'a>(
        &'a self,
        cf: &str,
    ) -> Result<impl Iterator<Item = Result<KeyValue, LogError>> + 'a, LogError> {
        Ok(self
            .db
            .iterator_cf(self.cf(cf)?, IteratorMode::Start)
            .map(|r| r.map_err(storage)))
    }

    /// Raw iteration from a key onwards (secondary indexes).
    pub fn iter_from<'a>(
        &'a self,
        cf: &str,
        from: &[u8],
    ) -> Result<impl Iterator<Item = Result<KeyValue, LogError>> + 'a, LogError> {
        Ok(self
            .db
            .iterator_cf(self.cf(cf)?, IteratorMode::From(from, Direction::Forward))
            .map(|r| r.map_err(storage)))
    }

    pub fn get_index(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        self.get(CF_INDEX, key)
    }

    /// The first `index` row at or after `from` whose key starts with
    /// `prefix` (one seek).
    pub fn first_index_row(
        &self,
        prefix: &[u8],
        from: &[u8],
    ) -> Result<Option<KeyValue>, LogError> {
        let mut it = self.db.iterator_cf(
            self.cf(CF_INDEX)?,
            IteratorMode::From(from, Direction::Forward),
        );
        match it.next() {
            Some(Ok(kv)) if kv.0.starts_with(prefix) => Ok(Some(kv)),
            Some(Err(e)) => Err(storage(e)),
            _ => Ok(None),
        }
    }

    /// The last `index` row at or before `upto` whose key starts with
    /// `prefix` (one reverse seek): "the newest row of this kind before X".
    pub fn last_index_row(&self, prefix: &[u8], upto: &[u8]) -> Result<Option<KeyValue>, LogError> {
        let mut it = self.db.iterator_cf(
            self.cf(CF_INDEX)?,
            IteratorMode::From(upto, Direction::Reverse),
        );
        match it.next() {
            Some(Ok(kv)) if kv.0.starts_with(prefix) => Ok(Some(kv)),
            Some(Err(e)) => Err(storage(e)),
            _ => Ok(None),
        }
    }

    /// Writes `index` rows outside the sequencer, synced: for index
    /// migrations at start, which derive new rows from existing ones and
    /// never touch the log's own column families.
    pub fn put_index_rows(&self, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<(), LogError> {
        let mut b = WriteBatch::default();
        let cf = self.cf(CF_INDEX)?;
        for (k, v) in rows {
            b.put_cf(cf, k, v);
        }
        self.write_synced(b)
    }

    /// Test-only sabotage: overwrite a stored value without any checks.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn put_raw(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<(), LogError> {
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(cf)?, key, value);
        self.write_synced(b)
    }

    /// Test-only: makes the store look as if written before identity rows
    /// existed (every row and the backfill marker deleted).
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn forget_identities(&self) -> Result<(), LogError> {
        let mut b = WriteBatch::default();
        for row in self.identities()? {
            let (id, _, _) = row?;
            b.delete_cf(self.cf(CF_IDENTITIES)?, id);
        }
        b.delete_cf(self.cf(CF_META)?, META_IDENTITIES);
        self.write_synced(b)
    }

    /// A consistent point-in-time copy of the database (hard links where
    /// possible) in `dir`, which must not exist yet.
    pub fn checkpoint(&self, dir: &Path) -> Result<(), LogError> {
        let cp = rocksdb::checkpoint::Checkpoint::new(&self.db).map_err(storage)?;
        cp.create_checkpoint(dir).map_err(storage)
    }

    /// Flushes memtables (used before a checkpoint and by tests).
    pub fn flush(&self) -> Result<(), LogError> {
        for name in ALL_CFS {
            self.db.flush_cf(self.cf(name)?).map_err(storage)?;
        }
        Ok(())
    }

    /// Bytes each column family occupies: SST files on disk plus memtables
    /// (what the WAL holds until the next flush). For storage-per-entry
    /// figures (`fsck` prints them).
    pub fn cf_sizes(&self) -> Result<Vec<CfSize>, LogError> {
        let mut out = Vec::new();
        for name in ALL_CFS {
            let cf = self.cf(name)?;
            let p = |prop: &str| {
                self.db
                    .property_int_value_cf(cf, prop)
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            };
            out.push(CfSize {
                name: name.to_string(),
                sst_bytes: p("rocksdb.total-sst-files-size"),
                memtable_bytes: p("rocksdb.cur-size-all-mem-tables"),
                estimated_keys: p("rocksdb.estimate-num-keys"),
            });
        }
        Ok(out)
    }
}

/// One column family's footprint (see [`Store::cf_sizes`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CfSize {
    pub name: String,
    pub sst_bytes: u64,
    pub memtable_bytes: u64,
    pub estimated_keys: u64,
}

fn from_record(b: &[u8]) -> Result<SignedTreeHead, LogError> {
    SignedTreeHead::from_record(b)
        .ok_or_else(|| LogError::Corrupt(format!("tree head record of {} bytes", b.len())))
}

pub(crate) fn storage(e: rocksdb::Error) -> LogError {
    LogError::Storage(e.to_string())
}

pub(crate) fn be_u64(v: &[u8]) -> Option<u64> {
    let b: [u8; 8] = v.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

/// Perfect nodes read from stored tiles. Keeps the few tiles one proof touches.
pub struct StoreNodes<'a> {
    store: &'a Store,
    cache: Vec<(TileId, Tile)>,
}

impl<'a> StoreNodes<'a> {
    pub fn new(store: &'a Store) -> Self {
        Self {
            store,
            cache: Vec::with_capacity(8),
        }
    }
}

impl NodeSource for StoreNodes<'_> {
    type Error = LogError;
    fn perfect_node(&mut self, height: u8, index: u64) -> Result<Hash, LogError> {
        let (id, row, offset) = TileId::locate(height, index);
        let pos = match self.cache.iter().position(|(t, _)| *t == id) {
            Some(p) => p,
            None => {
                let tile = self
                    .store
                    .tile(id)?
                    .ok_or_else(|| LogError::Corrupt(format!("{id} is missing")))?;
                if self.cache.len() >= 16 {
                    self.cache.remove(0);
                }
                self.cache.push((id, tile));
                self.cache.len() - 1
            }
        };
        self.cache[pos].1.node(row, offset).copied().ok_or_else(|| {
            LogError::Corrupt(format!(
                "node h{height}/{index} is not in {id} (width {})",
                self.cache[pos].1.width()
            ))
        })
    }
}
